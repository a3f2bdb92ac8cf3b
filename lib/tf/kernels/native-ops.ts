// The memory-bound ops between the native convolutions, computed by the addon's OpenMP loops
// (native/dnnl-kernels.cc) on the wasm heap in place: ReLU and its gradient (Step x Multiply),
// max pooling and its gradient, the bias gradient's Sum over leading axes, dropout's elementwise
// ops. On wasm each of these is one thread between multi-threaded convolutions. Cases not covered
// (other dtypes, broadcasts other than a scalar or a trailing block, other reductions) go to the
// kernel registered before.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from '../native-addon.js';
import { asHeapBackend } from './heap.js';

type TensorInfo = tf.TensorInfo;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };
type KernelFunc = (args: KernelArgs) => TensorInfo;

/** The op codes native/dnnl-kernels.cc reads. */
const UNARY = { relu: 0, step: 1, floor: 2 } as const;
const BINARY = { add: 0, sub: 1, mul: 2, div: 3 } as const;

/** Kernels of this module, by tfjs name. */
export const NATIVE_OP_KERNEL_NAMES = [
  tf.Relu,
  tf.Step,
  tf.Floor,
  tf.Add,
  tf.Sub,
  tf.Multiply,
  tf.RealDiv,
  tf.Cast,
  tf.Sum,
  tf.MaxPool,
  tf.MaxPoolGrad,
] as const;

let runs = 0;

/** Kernel calls this module's kernels computed natively (tests check the native route was taken). */
export function nativeOpRunCount(): number {
  return runs;
}

const f32 = (heap: ReturnType<typeof asHeapBackend>, t: TensorInfo): Float32Array => heap.typedArrayFromHeap(t) as Float32Array;
const size = (t: TensorInfo): number => tf.util.sizeFromShape(t.shape);

/** Allocates the output, then lets `body` fill it from views taken after the allocation. */
function compute(args: KernelArgs, outShape: number[], body: (heap: ReturnType<typeof asHeapBackend>, out: TensorInfo) => void): TensorInfo {
  const heap = asHeapBackend(args.backend);
  const out = heap.makeOutput(outShape, 'float32');
  try {
    body(heap, out);
  } catch (err) {
    heap.disposeData(out.dataId);
    throw err;
  }
  runs++;
  return out;
}

function unaryKernel(addon: NativeAddon, fallback: KernelFunc, op: number): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype !== 'float32' || size(x) === 0) return fallback(args);
    const alpha = op === UNARY.step ? ((args.attrs as unknown as tf.StepAttrs | undefined)?.alpha ?? 0) : 0;
    return compute(args, x.shape, (heap, y) => addon.unary(op, f32(heap, x), f32(heap, y), alpha));
  };
}

/** Whether `t` can repeat over `out`: the same size, a scalar, or the trailing dims of `out`. */
function repeatsOver(t: number[], out: number[]): boolean {
  const n = tf.util.sizeFromShape(t);
  if (n === 1 || n === tf.util.sizeFromShape(out)) return true;
  let i = 0;
  while (i < t.length && t[i] === 1) i++;
  const tail = t.slice(i);
  return tail.length <= out.length && tail.every((d, j) => d === out[out.length - tail.length + j]);
}

function binaryKernel(addon: NativeAddon, fallback: KernelFunc, op: number): KernelFunc {
  return (args) => {
    const a = args.inputs.a as TensorInfo;
    const b = args.inputs.b as TensorInfo;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = tf.util.sizeFromShape(outShape);
    const covered = n > 0 && (size(a) === n || size(b) === n) && repeatsOver(a.shape, outShape) && repeatsOver(b.shape, outShape);
    if (!covered) return fallback(args);
    return compute(args, outShape, (heap, out) => addon.binary(op, f32(heap, a), f32(heap, b), f32(heap, out)));
  };
}

interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

/** float32 to float32 is the input itself (buffers are immutable): one more reference, no copy. */
function castKernel(fallback: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    const { dtype } = args.attrs as unknown as tf.CastAttrs;
    const backend = args.backend as Partial<RefCountingBackend>;
    if (x.dtype !== 'float32' || dtype !== 'float32' || typeof backend.incRef !== 'function') return fallback(args);
    backend.incRef(x.dataId);
    runs++;
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/** Number of leading axes reduced, when `axes` is exactly 0..k-1 with k < rank; else -1. */
function leadingAxesCount(axes: number[], rank: number): number {
  const sorted = [...axes].sort((p, q) => p - q);
  if (sorted.length === 0 || sorted.length >= rank) return -1;
  return sorted.every((a, i) => a === i) ? sorted.length : -1;
}

function sumKernel(addon: NativeAddon, fallback: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
    const k = leadingAxesCount(tf.util.parseAxisParam(axis, x.shape), x.shape.length);
    if (x.dtype !== 'float32' || k < 0 || size(x) === 0) return fallback(args);
    const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
    const cols = tf.util.sizeFromShape(x.shape.slice(k));
    const outShape = keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k);
    return compute(args, outShape, (heap, out) => addon.sumRows(f32(heap, x), rows, cols, f32(heap, out)));
  };
}

/** [n, h, w, c, fh, fw, oh, ow, sh, sw, padTop, padLeft], as the addon reads it. */
export function poolGeometry(info: tf.backend_util.Conv2DInfo): Int32Array {
  return Int32Array.from([
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.effectiveFilterHeight,
    info.effectiveFilterWidth,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
  ]);
}

function poolInfo(xShape: number[], attrs: tf.MaxPoolAttrs): tf.backend_util.Conv2DInfo {
  const shape = xShape as [number, number, number, number];
  return tf.backend_util.computePool2DInfo(shape, attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
}

function maxPoolKernel(addon: NativeAddon, fallback: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype !== 'float32' || x.shape.length !== 4 || size(x) === 0) return fallback(args);
    const info = poolInfo(x.shape, args.attrs as unknown as tf.MaxPoolAttrs);
    if (info.outHeight < 1 || info.outWidth < 1) return fallback(args);
    return compute(args, info.outShape, (heap, y) => addon.maxPool(poolGeometry(info), f32(heap, x), f32(heap, y)));
  };
}

function maxPoolGradKernel(addon: NativeAddon, fallback: KernelFunc): KernelFunc {
  return (args) => {
    const dy = args.inputs.dy as TensorInfo;
    const x = args.inputs.input as TensorInfo;
    if (x.dtype !== 'float32' || dy.dtype !== 'float32' || x.shape.length !== 4 || size(x) === 0) return fallback(args);
    const info = poolInfo(x.shape, args.attrs as unknown as tf.MaxPoolGradAttrs);
    if (size(dy) !== tf.util.sizeFromShape(info.outShape) || size(dy) === 0) return fallback(args);
    return compute(args, x.shape, (heap, dx) => addon.maxPoolGrad(poolGeometry(info), f32(heap, x), f32(heap, dy), f32(heap, dx)));
  };
}

/** This module's kernels; `previous(name)` is the kernel each falls back to. */
export function nativeOpKernels(addon: NativeAddon, previous: (name: string) => KernelFunc): Record<(typeof NATIVE_OP_KERNEL_NAMES)[number], KernelFunc> {
  return {
    [tf.Relu]: unaryKernel(addon, previous(tf.Relu), UNARY.relu),
    [tf.Step]: unaryKernel(addon, previous(tf.Step), UNARY.step),
    [tf.Floor]: unaryKernel(addon, previous(tf.Floor), UNARY.floor),
    [tf.Add]: binaryKernel(addon, previous(tf.Add), BINARY.add),
    [tf.Sub]: binaryKernel(addon, previous(tf.Sub), BINARY.sub),
    [tf.Multiply]: binaryKernel(addon, previous(tf.Multiply), BINARY.mul),
    [tf.RealDiv]: binaryKernel(addon, previous(tf.RealDiv), BINARY.div),
    [tf.Cast]: castKernel(previous(tf.Cast)),
    [tf.Sum]: sumKernel(addon, previous(tf.Sum)),
    [tf.MaxPool]: maxPoolKernel(addon, previous(tf.MaxPool)),
    [tf.MaxPoolGrad]: maxPoolGradKernel(addon, previous(tf.MaxPoolGrad)),
  };
}
