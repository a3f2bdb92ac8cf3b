// Conv2DBackpropFilter for wasm (stock wasm has none), in one of three ways.
//
// dW[kh,kw,ci,co] = sum_{b,i,j} x[b, i*s+kh-pt, j*s+kw-pl, ci] * dy[b,i,j,co]
// - when Co % 8 == 0 (usually every layer): our own SIMD kernels (wasm/kernels.ts), Winograd for
//   3x3 stride-1 layers, which read x and dy in place, with no transposes and no packing;
// - else it is a stride-1 convolution with dilation s of x' = x^T [Ci,H,W,B] (batch and channels
//   swapped) by the "filter" dy' = [OH,OW,B,Co], whose output [Ci,KH,KW,Co] is dW up to a
//   transpose. Conv2D re-lays-out and packs its filter on every call (the cache is keyed by
//   tensor id), which costs about as much as a small layer's whole gradient, so:
// - when KH*KW*Ci is small (the first layer: 27), it is one matmul P^T . dy with the patch
//   matrix P^T [KH*KW*Ci, B*OH*OW] gathered straight onto the heap (27 rows: cheap).
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend, withScratch } from './heap.js';
import { conv2dFilterGrad as simdFilterGrad, convFits, filterGradScratchFloats, geometryOf } from './simd-module.js';
import { cropForPads, inScope, type WasmScope } from './wasm-scope.js';

type TensorInfo = tf.TensorInfo;

function conv2dBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  const dy = args.inputs.dy as TensorInfo;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (attrs.dataFormat === 'NCHW') throw new Error('wasm Conv2DBackpropFilter supports NHWC only');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  // Padding of x' so that the dilated "filter" dy' slides over exactly KH x KW positions;
  // negative = trailing rows/cols of x that no output reads (valid padding, stride > 1).
  const bottom = filterHeight - 1 + (outHeight - 1) * strideHeight - (inHeight - 1) - top;
  const right = filterWidth - 1 + (outWidth - 1) * strideWidth - (inWidth - 1) - left;

  if (convFits(info)) {
    const heap = asHeapBackend(args.backend);
    const g = geometryOf(info);
    const dw = heap.makeOutput(attrs.filterShape, 'float32');
    const scratch = withScratch(heap, filterGradScratchFloats(g)); // before any view: may grow the heap
    simdFilterGrad(
      heap.typedArrayFromHeap(x) as Float32Array,
      heap.typedArrayFromHeap(dy) as Float32Array,
      g,
      heap.typedArrayFromHeap(dw) as Float32Array,
      scratch.view(),
    );
    scratch.free();
    return dw;
  }
  if (filterHeight * filterWidth * info.inChannels <= PATCH_ROWS_LIMIT) {
    return inScope(args.backend as tf.KernelBackend, (s) => viaPatchMatMul(s, x, dy, info));
  }
  return inScope(args.backend as tf.KernelBackend, (s) => {
    const xT = s.transpose(x, [3, 1, 2, 0]);
    const dyT = s.transpose(dy, [1, 2, 0, 3]);
    const cropped = cropForPads(s, xT, [top, bottom, left, right]);
    const dwT = s.conv2d(cropped.x, dyT, cropped.pads, [strideHeight, strideWidth]);
    return s.transpose(dwT, [1, 2, 0, 3]);
  });
}

/** Above this many patch rows the patch matrix costs more memory traffic than the conv route. */
const PATCH_ROWS_LIMIT = 64;

/** P^T [KH*KW*Ci, B*OH*OW] (zeros where the window hangs over the padding), then P^T . dy. */
function viaPatchMatMul(s: WasmScope, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const rows = filterHeight * filterWidth * inChannels;
  const cols = batchSize * outHeight * outWidth;
  const heap = asHeapBackend(s.backend);
  const patchesT = s.track(heap.makeOutput([1, rows, cols], 'float32'));
  const xs = heap.typedArrayFromHeap(x) as Float32Array;
  const p = heap.typedArrayFromHeap(patchesT) as Float32Array;
  let o = 0;
  for (let kh = 0; kh < filterHeight; kh++) {
    for (let kw = 0; kw < filterWidth; kw++) {
      for (let ci = 0; ci < inChannels; ci++) {
        for (let b = 0; b < batchSize; b++) {
          for (let i = 0; i < outHeight; i++) {
            const r = i * strideHeight + kh - top;
            if (r < 0 || r >= inHeight) {
              p.fill(0, o, o + outWidth);
              o += outWidth;
              continue;
            }
            const rowBase = (b * inHeight + r) * inWidth * inChannels + ci;
            for (let j = 0; j < outWidth; j++) {
              const c = j * strideWidth + kw - left;
              p[o++] = c >= 0 && c < inWidth ? xs[rowBase + c * inChannels] : 0;
            }
          }
        }
      }
    }
  }
  const dw = s.matMul(patchesT, s.reshape(dy, [1, cols, outChannels]));
  return s.reshape(dw, [filterHeight, filterWidth, inChannels, outChannels]);
}

export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropFilter,
};
