// Sum for wasm. Bias gradients sum a [B,H,W,C] tensor over its leading axes; the stock kernel
// first transposes the whole tensor (untiled) to put them innermost. Summing rows straight off
// the heap (our SIMD kernel, double-precision accumulators) is one streaming pass. Every other
// reduction goes to the stock kernel.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './heap.js';
import { sumRows } from './simd-module.js';
import { stockKernel } from './stock.js';

type TensorInfo = tf.TensorInfo;

/** Number of leading axes reduced, when `axes` is exactly 0..k-1 with k < rank; else -1. */
function leadingAxesCount(axes: number[], rank: number): number {
  const sorted = [...axes].sort((a, b) => a - b);
  if (sorted.length === 0 || sorted.length >= rank) return -1;
  return sorted.every((a, i) => a === i) ? sorted.length : -1;
}

function sum(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const k = leadingAxesCount(axes, x.shape.length);
  if (x.dtype !== 'float32' || k < 0) return stockKernel(tf.Sum).kernelFunc(args) as TensorInfo;

  const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
  const cols = tf.util.sizeFromShape(x.shape.slice(k));
  const outShape = keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k);
  const heap = asHeapBackend(args.backend);
  const out = heap.makeOutput(outShape, 'float32');
  sumRows(heap.typedArrayFromHeap(x) as Float32Array, rows, cols, heap.typedArrayFromHeap(out) as Float32Array);
  return out;
}

export const sumConfig: tf.KernelConfig = {
  kernelName: tf.Sum,
  backendName: 'wasm',
  kernelFunc: sum,
};
