// _FusedMatMul (matmul + bias + activation: what tfjs-layers runs for a dense layer whose
// activation is linear, as in the notebook's model) for wasm: our SIMD matmul for an
// untransposed 2-D product with a per-column bias (or none) and linear or ReLU output, else stock.
// The stock kernel goes through XNNPACK, which repacks the weight matrix on every call - every
// training step.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './heap.js';
import { matmul as simdMatmul, matmulFits } from './simd-module.js';
import { stockKernel } from './stock.js';

type TensorInfo = tf.TensorInfo;

function fusedMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const a = args.inputs.a as TensorInfo;
  const b = args.inputs.b as TensorInfo;
  const bias = args.inputs.bias as TensorInfo | undefined;
  const { transposeA, transposeB, activation } = args.attrs as unknown as tf._FusedMatMulAttrs;
  // Rank 3 with a batch of 1 is how tfjs-core hands over a 2-D product.
  const plain = (t: TensorInfo) => t.dtype === 'float32' && (t.shape.length === 2 || (t.shape.length === 3 && t.shape[0] === 1));
  const m = a.shape[a.shape.length - 2];
  const k = a.shape[a.shape.length - 1];
  const n = b.shape[b.shape.length - 1];
  const act = activation ?? 'linear';
  const covered =
    plain(a) &&
    plain(b) &&
    !transposeA &&
    !transposeB &&
    b.shape[b.shape.length - 2] === k &&
    matmulFits(k, n) &&
    (act === 'linear' || act === 'relu') &&
    args.inputs.preluActivationWeights == null &&
    (bias == null || (bias.dtype === 'float32' && bias.shape.length <= 1 && tf.util.sizeFromShape(bias.shape) === n));
  if (!covered) return stockKernel(tf._FusedMatMul).kernelFunc(args) as TensorInfo;
  const heap = asHeapBackend(args.backend);
  const out = heap.makeOutput(a.shape.length === 3 ? [1, m, n] : [m, n], 'float32');
  simdMatmul(heap.typedArrayFromHeap(a) as Float32Array, heap.typedArrayFromHeap(b) as Float32Array, m, k, n, heap.typedArrayFromHeap(out) as Float32Array, {
    bias: bias ? (heap.typedArrayFromHeap(bias) as Float32Array) : undefined,
    relu: act === 'relu',
  });
  return out;
}

export const fusedMatMulConfig: tf.KernelConfig = {
  kernelName: tf._FusedMatMul,
  backendName: 'wasm',
  kernelFunc: fusedMatMul,
};
