// Conv2D for wasm: our direct SIMD convolution (wasm/kernels.ts) where it applies, else stock
// (XNNPACK). In training the filter changes every step, and tfjs caches XNNPACK operators by
// filter, so the stock kernel rebuilds its operator - packed weights and an indirection buffer
// - on every call; the direct kernel needs neither.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './heap.js';
import { conv2d as simdConv2d, convFits, geometryOf } from './simd-module.js';
import { stockKernel } from './wasm-scope.js';

type TensorInfo = tf.TensorInfo;

function conv2d(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  const filter = args.inputs.filter as TensorInfo;
  const { strides, pad, dataFormat, dilations, dimRoundingMode } = args.attrs as unknown as tf.Conv2DAttrs;
  const dilated = dilations !== undefined && dilations !== 1 && !(Array.isArray(dilations) && dilations.every((d) => d === 1));
  if (dataFormat === 'NCHW' || dilated || x.dtype !== 'float32' || filter.dtype !== 'float32') {
    return stockKernel(tf.Conv2D).kernelFunc(args) as TensorInfo;
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  if (!convFits(info)) return stockKernel(tf.Conv2D).kernelFunc(args) as TensorInfo;
  const heap = asHeapBackend(args.backend);
  const y = heap.makeOutput(info.outShape, 'float32');
  simdConv2d(
    heap.typedArrayFromHeap(x) as Float32Array,
    heap.typedArrayFromHeap(filter) as Float32Array,
    geometryOf(info),
    heap.typedArrayFromHeap(y) as Float32Array,
  );
  return y;
}

export const conv2dConfig: tf.KernelConfig = {
  kernelName: tf.Conv2D,
  backendName: 'wasm',
  kernelFunc: conv2d,
};
