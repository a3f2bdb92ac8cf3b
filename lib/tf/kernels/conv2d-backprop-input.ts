// Conv2DBackpropInput for wasm: the stock kernel is a scalar loop; this is one convolution, ours
// (wasm/kernels.ts) at stride 1 when Ci % 8 == 0, else XNNPACK's.
//
// dx[h] = sum_kh dy_up[h + pt - kh] * W[kh] (dy_up: dy with s-1 zeros after each row/col when the
// stride s > 1) is a stride-1 convolution of dy_up with the filter flipped in space and with its
// in/out channels swapped, padded by KH-1-pt on top.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend, withScratch } from './heap.js';
import { conv2d as simdConv2d, conv2dScratchFloats, convFits, type ConvGeometry } from './simd-module.js';
import { cropForPads, inScope, type WasmScope } from './wasm-scope.js';

type TensorInfo = tf.TensorInfo;

/** dy [B,OH,OW,C] -> [B,OH*sh,OW*sw,C] with dy at rows i*sh, cols j*sw and zeros elsewhere. */
function upsampleWithZeros(s: WasmScope, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  if (sh === 1 && sw === 1) return dy;
  const [b, oh, ow, c] = dy.shape;
  const spread = s.reshape(dy, [b, oh, 1, ow, 1, c]);
  const padded = s.pad(spread, [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  return s.reshape(padded, [b, oh * sh, ow * sw, c]);
}

function conv2dBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const dy = args.inputs.dy as TensorInfo;
  const filter = args.inputs.filter as TensorInfo;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (attrs.dataFormat === 'NCHW') throw new Error('wasm Conv2DBackpropInput supports NHWC only');
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { inHeight, inWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const upHeight = dy.shape[1] * strideHeight;
  const upWidth = dy.shape[2] * strideWidth;
  const top = filterHeight - 1 - info.padInfo.top;
  const left = filterWidth - 1 - info.padInfo.left;
  const bottom = inHeight - upHeight - top + filterHeight - 1;
  const right = inWidth - upWidth - left + filterWidth - 1;

  if (strideHeight === 1 && strideWidth === 1 && convFits({ outChannels: info.inChannels })) {
    return viaDirectConv(asHeapBackend(args.backend), dy, filter, info);
  }
  return inScope(args.backend as tf.KernelBackend, (s) => {
    const flipped = s.transpose(s.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    const cropped = cropForPads(s, upsampleWithZeros(s, dy, strideHeight, strideWidth), [top, bottom, left, right]);
    const dx = s.conv2d(cropped.x, flipped, cropped.pads, [1, 1]);
    return dx;
  });
}

/** Stride 1: dx = dy convolved with W flipped in space, channels swapped, padded by K-1-p. */
function viaDirectConv(heap: ReturnType<typeof asHeapBackend>, dy: TensorInfo, filter: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const { filterHeight: kh, filterWidth: kw, inChannels: ci, outChannels: co } = info;
  const g: ConvGeometry = {
    batch: info.batchSize,
    inH: info.outHeight,
    inW: info.outWidth,
    inChannels: co,
    outH: info.inHeight,
    outW: info.inWidth,
    outChannels: ci,
    filterH: kh,
    filterW: kw,
    strideH: 1,
    strideW: 1,
    padTop: kh - 1 - info.padInfo.top,
    padLeft: kw - 1 - info.padInfo.left,
  };
  // Everything on the heap, so the kernel runs in place; views only after the last allocation.
  const dx = heap.makeOutput(info.inShape, 'float32');
  const flippedScratch = withScratch(heap, kh * kw * co * ci);
  const convScratch = withScratch(heap, conv2dScratchFloats(g));
  const w = heap.typedArrayFromHeap(filter) as Float32Array;
  const flipped = flippedScratch.view() as Float32Array; // [KH,KW,Co,Ci]
  for (let h = 0; h < kh; h++) {
    for (let v = 0; v < kw; v++) {
      const src = ((kh - 1 - h) * kw + (kw - 1 - v)) * ci * co;
      const dst = (h * kw + v) * co * ci;
      for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) flipped[dst + o * ci + c] = w[src + c * co + o];
    }
  }
  simdConv2d(heap.typedArrayFromHeap(dy) as Float32Array, flipped, g, heap.typedArrayFromHeap(dx) as Float32Array, {}, convScratch.view());
  flippedScratch.free();
  convScratch.free();
  return dx;
}

export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropInput,
};
