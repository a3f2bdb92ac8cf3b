// Composes wasm kernels out of the wasm backend's own (stock) kernels, called at backend level:
// no engine bookkeeping, no tensors, just TensorInfos whose heap memory we free ourselves.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './heap.js';
import { matmul as simdMatmul, matmulFits } from './simd-module.js';
import { stockKernel } from './stock.js';
import { transposeOnHeap } from './transpose.js';

type TensorInfo = tf.TensorInfo;
type Attrs = tf.NamedAttrMap;

/**
 * Runs stock wasm kernels and disposes every intermediate it made, except what the body returns.
 * Reshape shares its input's buffer and bumps its refcount, so disposing by refcount is always right.
 */
export class WasmScope {
  private readonly made: TensorInfo[] = [];

  constructor(readonly backend: tf.KernelBackend) {}

  run(kernelName: string, inputs: Record<string, TensorInfo>, attrs: Attrs = {}): TensorInfo {
    const out = stockKernel(kernelName).kernelFunc({ inputs, backend: this.backend, attrs });
    if (Array.isArray(out)) throw new Error(`${kernelName}: expected one output`);
    this.made.push(out);
    return out;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  /** Takes ownership of a tensor made outside the scope (e.g. written straight to the heap). */
  track(t: TensorInfo): TensorInfo {
    this.made.push(t);
    return t;
  }

  /** Tiled heap transpose (the stock one is an untiled strided loop). */
  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.track(transposeOnHeap(this.backend, x, perm));
  }

  slice(x: TensorInfo, begin: number[], size: number[]): TensorInfo {
    return this.run('Slice', { x }, { begin, size });
  }

  pad(x: TensorInfo, paddings: Array<[number, number]>): TensorInfo {
    return this.run('PadV2', { x }, { paddings, constantValue: 0 });
  }

  concat(xs: TensorInfo[], axis: number): TensorInfo {
    // The stock Concat kernel takes its inputs as an array.
    const inputs = xs as unknown as tf.NamedTensorInfoMap;
    const out = stockKernel('Concat').kernelFunc({ inputs, backend: this.backend, attrs: { axis } });
    if (Array.isArray(out)) throw new Error('Concat: expected one output');
    this.made.push(out);
    return out;
  }

  reverse(x: TensorInfo, dims: number[]): TensorInfo {
    return this.run('Reverse', { x }, { dims });
  }

  /** XNNPACK convolution, stride 1, NHWC; `pads` are [top, bottom, left, right], all >= 0. */
  conv2d(x: TensorInfo, filter: TensorInfo, pads: readonly number[], dilations: [number, number]): TensorInfo {
    const [top, bottom, left, right] = pads;
    return this.run('Conv2D', { x, filter }, {
      strides: [1, 1],
      pad: [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dilations,
      dimRoundingMode: 'floor',
    } as unknown as Attrs);
  }

  /** Untransposed [1,M,K] x [1,K,N] matmul: our SIMD kernel when N % 8 == 0, else XNNPACK's. */
  matMul(a: TensorInfo, b: TensorInfo): TensorInfo {
    const [, m, k] = a.shape;
    const n = b.shape[2];
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !matmulFits(k, n)) {
      return this.run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
    }
    const heap = asHeapBackend(this.backend);
    const c = this.track(heap.makeOutput([1, m, n], 'float32'));
    simdMatmul(heap.typedArrayFromHeap(a) as Float32Array, heap.typedArrayFromHeap(b) as Float32Array, m, k, n, heap.typedArrayFromHeap(c) as Float32Array);
    return c;
  }

  /** Frees every intermediate except `keep`; returns `keep`. */
  finish(keep: TensorInfo): TensorInfo {
    for (const t of this.made) if (t !== keep) this.backend.disposeData(t.dataId);
    this.made.length = 0;
    return keep;
  }

  /** Frees everything (used when the body throws). */
  abort(): void {
    for (const t of this.made) this.backend.disposeData(t.dataId);
    this.made.length = 0;
  }
}

/** Runs `body` in a fresh scope, freeing intermediates whether it returns or throws. */
export function inScope(backend: tf.KernelBackend, body: (s: WasmScope) => TensorInfo): TensorInfo {
  const scope = new WasmScope(backend);
  try {
    return scope.finish(body(scope));
  } catch (err) {
    scope.abort();
    throw err;
  }
}

/**
 * Makes x's spatial extent (axes 1 and 2 of NHWC) match a convolution that wants padding
 * [top, bottom, left, right], some of which may be negative (= rows/cols the conv never reads).
 * Negative sides are cropped with a slice; returns the tensor and the non-negative pads left.
 */
export function cropForPads(s: WasmScope, x: TensorInfo, pads: readonly number[]): { x: TensorInfo; pads: number[] } {
  const [top, bottom, left, right] = pads;
  if (top >= 0 && bottom >= 0 && left >= 0 && right >= 0) return { x, pads: [...pads] };
  const [n, h, w, c] = x.shape;
  const cropTop = Math.max(0, -top);
  const cropLeft = Math.max(0, -left);
  const hKeep = h - cropTop - Math.max(0, -bottom);
  const wKeep = w - cropLeft - Math.max(0, -right);
  if (hKeep <= 0 || wKeep <= 0) throw new Error(`cropForPads: nothing left of ${x.shape} after pads ${pads}`);
  const cropped = s.slice(x, [0, cropTop, cropLeft, 0], [n, hKeep, wKeep, c]);
  return { x: cropped, pads: pads.map((p) => Math.max(0, p)) };
}
