// Transpose for wasm: the stock kernel walks the output with an untiled strided read (e.g.
// [B,H,W,C] -> [C,H,W,B] reads 128 KB apart); this one merges axes and copies in tiles.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend, transposeArray } from './heap.js';
import { stockKernel } from './stock.js';

type TensorInfo = tf.TensorInfo;

export function transposeOnHeap(backend: {}, x: TensorInfo, perm: readonly number[]): TensorInfo {
  const heap = asHeapBackend(backend);
  const out = heap.makeOutput(
    perm.map((a) => x.shape[a]),
    x.dtype,
  );
  // Views only after makeOutput: allocating may grow (and so detach) the heap.
  transposeArray(heap.typedArrayFromHeap(x), x.shape, perm, heap.typedArrayFromHeap(out));
  return out;
}

function transpose(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  const { perm } = args.attrs as unknown as tf.TransposeAttrs;
  if (x.dtype === 'string' || x.dtype === 'complex64') {
    return stockKernel(tf.Transpose).kernelFunc(args) as TensorInfo;
  }
  return transposeOnHeap(args.backend, x, perm);
}

export const transposeConfig: tf.KernelConfig = {
  kernelName: tf.Transpose,
  backendName: 'wasm',
  kernelFunc: transpose,
};
