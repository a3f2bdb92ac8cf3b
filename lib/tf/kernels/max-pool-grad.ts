// MaxPoolGrad for wasm: each pooling window sends its dy to the first maximum in row-major
// window order (the cpu backend's tie rule). Our SIMD kernel when C % 4 == 0, else a JS loop
// straight off the heap; one pass over x and dy either way.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './heap.js';
import { maxPoolGrad as simdMaxPoolGrad, maxPoolGradFits } from './simd-module.js';

type TensorInfo = tf.TensorInfo;

function maxPoolGrad(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const dy = args.inputs.dy as TensorInfo;
  const input = args.inputs.input as TensorInfo;
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth } = info;
  const { effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const { top, left } = info.padInfo;

  const heap = asHeapBackend(args.backend);
  const out = heap.makeOutput(input.shape, 'float32');
  const x = heap.typedArrayFromHeap(input) as Float32Array;
  const g = heap.typedArrayFromHeap(dy) as Float32Array;
  const dx = heap.typedArrayFromHeap(out) as Float32Array;
  if (maxPoolGradFits(c)) {
    const geometry = {
      batch: batchSize,
      inH: inHeight,
      inW: inWidth,
      inChannels: c,
      outH: outHeight,
      outW: outWidth,
      outChannels: c,
      filterH: fh,
      filterW: fw,
      strideH: strideHeight,
      strideW: strideWidth,
      padTop: top,
      padLeft: left,
    };
    simdMaxPoolGrad(x, g, geometry, dx);
    return out;
  }
  dx.fill(0);
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  const rowStride = inWidth * c;
  let gi = 0;
  for (let b = 0; b < batchSize; b++) {
    const xBatch = b * inHeight * rowStride;
    for (let oh = 0; oh < outHeight; oh++) {
      const r0 = oh * strideHeight - top;
      const rMin = Math.max(0, r0);
      const rMax = Math.min(inHeight, r0 + fh);
      for (let ow = 0; ow < outWidth; ow++, gi += c) {
        const c0 = ow * strideWidth - left;
        const cMin = Math.max(0, c0);
        const cMax = Math.min(inWidth, c0 + fw);
        best.fill(-Infinity);
        where.fill(-1);
        for (let r = rMin; r < rMax; r++) {
          for (let col = cMin; col < cMax; col++) {
            const p = xBatch + r * rowStride + col * c;
            for (let ch = 0; ch < c; ch++) {
              const v = x[p + ch];
              if (v > best[ch]) {
                best[ch] = v;
                where[ch] = p + ch;
              }
            }
          }
        }
        for (let ch = 0; ch < c; ch++) if (where[ch] >= 0) dx[where[ch]] += g[gi + ch];
      }
    }
  }
  return out;
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad,
};
