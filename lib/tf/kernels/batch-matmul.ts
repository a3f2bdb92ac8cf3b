// BatchMatMul for wasm. The stock kernel uses XNNPACK only for one untransposed [M,K]x[K,N]
// product and otherwise a scalar loop; every matmul gradient is transposed, so this kernel
// transposes explicitly and always lands on the XNNPACK path, one product per batch entry.
import * as tf from '@tensorflow/tfjs';
import { inScope, type WasmScope } from './wasm-scope.js';

type TensorInfo = tf.TensorInfo;

const swapLast2 = [0, 2, 1];

/**
 * One [1,·,·] product. XNNPACK packs its right operand on every call (the cache is keyed by
 * tensor id, and gradients are new tensors), so besides the direct A·B we consider
 * C = (Bᵀ·Aᵀ)ᵀ and take whichever moves fewer elements: for the dense layer's
 * dx = dy·Wᵀ that packs the small dyᵀ instead of transposing and packing the big W.
 */
function product(s: WasmScope, a: TensorInfo, b: TensorInfo, tA: boolean, tB: boolean, m: number, k: number, n: number): TensorInfo {
  const direct = (tA ? m * k : 0) + (tB ? k * n : 0) + k * n;
  const swapped = (tA ? 0 : m * k) + (tB ? 0 : k * n) + k * m + m * n;
  if (direct <= swapped) {
    return s.matMul(tA ? s.transpose(a, swapLast2) : a, tB ? s.transpose(b, swapLast2) : b);
  }
  const ct = s.matMul(tB ? b : s.transpose(b, swapLast2), tA ? a : s.transpose(a, swapLast2));
  return s.transpose(ct, swapLast2);
}

function batchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): TensorInfo {
  const a = args.inputs.a as TensorInfo;
  const b = args.inputs.b as TensorInfo;
  const { transposeA: tA, transposeB: tB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error('wasm BatchMatMul supports float32 only');
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = tA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = tA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = tB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = tB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) throw new Error(`BatchMatMul: inner dimensions ${k} and ${kb} differ (shapes ${a.shape}, ${b.shape})`);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const batch = tf.util.sizeFromShape(outer);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) {
    throw new Error(`BatchMatMul: batch dims of ${a.shape} and ${b.shape} broadcast only when one is 1`);
  }

  return inScope(args.backend as tf.KernelBackend, (s) => {
    const a3 = s.reshape(a, [batchA, a.shape[ra - 2], a.shape[ra - 1]]);
    const b3 = s.reshape(b, [batchB, b.shape[rb - 2], b.shape[rb - 1]]);
    const entry = (x: TensorInfo, i: number): TensorInfo => (x.shape[0] === 1 ? x : s.slice(x, [i, 0, 0], [1, x.shape[1], x.shape[2]]));
    const parts: TensorInfo[] = [];
    for (let i = 0; i < batch; i++) parts.push(product(s, entry(a3, i), entry(b3, i), tA, tB, m, k, n));
    const joined = parts.length === 1 ? parts[0] : s.concat(parts, 0);
    return s.reshape(joined, [...outer, m, n]);
  });
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  kernelFunc: batchMatMul,
};
