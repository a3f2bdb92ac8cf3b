// Conv2D and FusedConv2D (conv + bias + activation: what tfjs-layers runs for a conv layer whose
// activation is linear, as in the notebook's model) for wasm: our direct SIMD convolution
// (wasm/kernels.ts) where it applies, else stock (XNNPACK). In training the filter changes every
// step, and tfjs caches XNNPACK operators by filter, so the stock kernels rebuild their operator -
// packed weights and an indirection buffer - on every call; the direct kernel needs neither.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend, withScratch } from './heap.js';
import { conv2d as simdConv2d, conv2dScratchFloats, convFits, geometryOf } from './simd-module.js';
import { stockKernel } from './stock.js';

type TensorInfo = tf.TensorInfo;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };

/** The geometry when our kernel covers the convolution (NHWC, float32, no dilation), else undefined. */
function directGeometry(x: TensorInfo, filter: TensorInfo, attrs: tf.Conv2DAttrs): tf.backend_util.Conv2DInfo | undefined {
  const { strides, pad, dataFormat, dilations, dimRoundingMode } = attrs;
  const dilated = dilations !== undefined && dilations !== 1 && !(Array.isArray(dilations) && dilations.every((d) => d === 1));
  if (dataFormat === 'NCHW' || dilated || x.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
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
  return convFits(info) ? info : undefined;
}

function run(args: KernelArgs, info: tf.backend_util.Conv2DInfo, fused: { bias?: TensorInfo; relu: boolean }): TensorInfo {
  const heap = asHeapBackend(args.backend);
  const g = geometryOf(info);
  const y = heap.makeOutput(info.outShape, 'float32');
  // Allocated before any view is taken: allocating may grow (and so detach) the heap.
  const scratch = withScratch(heap, conv2dScratchFloats(g));
  simdConv2d(
    heap.typedArrayFromHeap(args.inputs.x as TensorInfo) as Float32Array,
    heap.typedArrayFromHeap(args.inputs.filter as TensorInfo) as Float32Array,
    g,
    heap.typedArrayFromHeap(y) as Float32Array,
    { bias: fused.bias && (heap.typedArrayFromHeap(fused.bias) as Float32Array), relu: fused.relu },
    scratch.view(),
  );
  scratch.free();
  return y;
}

function conv2d(args: KernelArgs): TensorInfo {
  const info = directGeometry(args.inputs.x as TensorInfo, args.inputs.filter as TensorInfo, args.attrs as unknown as tf.Conv2DAttrs);
  if (info === undefined) return stockKernel(tf.Conv2D).kernelFunc(args) as TensorInfo;
  return run(args, info, { relu: false });
}

function fusedConv2d(args: KernelArgs): TensorInfo {
  const attrs = args.attrs as unknown as tf.FusedConv2DAttrs;
  const bias = args.inputs.bias as TensorInfo | undefined;
  const info = directGeometry(args.inputs.x as TensorInfo, args.inputs.filter as TensorInfo, attrs);
  const activation = attrs.activation ?? 'linear';
  // A per-channel bias (or none) and linear or ReLU output; prelu, leaky ReLU, broadcast biases: stock.
  const covered =
    info !== undefined &&
    (activation === 'linear' || activation === 'relu') &&
    args.inputs.preluActivationWeights == null &&
    (bias == null || (bias.dtype === 'float32' && tf.util.sizeFromShape(bias.shape) === info.outChannels && bias.shape.length <= 1));
  if (!covered) return stockKernel(tf.FusedConv2D).kernelFunc(args) as TensorInfo;
  return run(args, info, { bias: bias ?? undefined, relu: activation === 'relu' });
}

export const conv2dConfig: tf.KernelConfig = {
  kernelName: tf.Conv2D,
  backendName: 'wasm',
  kernelFunc: conv2d,
};

export const fusedConv2dConfig: tf.KernelConfig = {
  kernelName: tf.FusedConv2D,
  backendName: 'wasm',
  kernelFunc: fusedConv2d,
};
