// Direct access to the wasm backend's heap, for memory-bound kernels where a tight JS loop
// beats the stock C++ (which e.g. transposes with an untiled strided loop).
import * as tf from '@tensorflow/tfjs';
import { registerHeap } from './simd-module.js';

type TensorInfo = tf.TensorInfo;

/** The part of tfjs-backend-wasm's BackendWasm that heap kernels use. */
export interface WasmHeapBackend extends tf.KernelBackend {
  /** Allocates an output tensor on the wasm heap (may grow memory: take views afterwards). */
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  /** A view of a tensor's bytes on the heap, typed by its dtype. */
  typedArrayFromHeap(t: TensorInfo): tf.TypedArray;
  /** Frees a tensor's heap memory. */
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

export function asHeapBackend(backend: {}): WasmHeapBackend {
  const b = backend as Partial<WasmHeapBackend>;
  if (typeof b.makeOutput !== 'function' || typeof b.typedArrayFromHeap !== 'function') {
    throw new Error('expected the tfjs wasm backend');
  }
  if (!seen.has(b)) {
    seen.add(b);
    const memory = heapMemory(b);
    if (memory !== undefined) registerHeap(memory);
  }
  return b as WasmHeapBackend;
}

const seen = new WeakSet<object>();

/** The WebAssembly.Memory behind the backend's heap (where its Emscripten module exposes it). */
function heapMemory(backend: object): WebAssembly.Memory | undefined {
  const module = (backend as { wasm?: { asm?: { memory?: unknown }; wasmMemory?: unknown; HEAPU8?: Uint8Array } }).wasm;
  const memory = module?.asm?.memory ?? module?.wasmMemory;
  // Only if it really is the heap the backend's typed arrays view.
  return memory instanceof WebAssembly.Memory && memory.buffer === module?.HEAPU8?.buffer ? memory : undefined;
}

export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/**
 * The same permutation on fewer axes: size-1 axes dropped and runs of input axes that stay
 * adjacent and in order in the output merged (e.g. [B,H,W,C] perm [3,1,2,0] is [B,HW,C] perm [2,1,0]).
 */
export function simplifyPermutation(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = shape.map((_, i) => i).filter((i) => shape[i] !== 1);
  const renumber = new Map(kept.map((axis, i) => [axis, i]));
  const s = kept.map((i) => shape[i]);
  const p = perm.filter((a) => shape[a] !== 1).map((a) => renumber.get(a) as number);
  // Groups of output positions whose input axes are consecutive.
  const groups: number[][] = [];
  for (const a of p) {
    const last = groups[groups.length - 1];
    if (last !== undefined && last[last.length - 1] + 1 === a) last.push(a);
    else groups.push([a]);
  }
  const byInputOrder = [...groups].sort((g, h) => g[0] - h[0]);
  const mergedShape = byInputOrder.map((g) => g.reduce((n, a) => n * s[a], 1));
  const mergedPerm = groups.map((g) => byInputOrder.indexOf(g));
  return { shape: mergedShape, perm: mergedPerm };
}

const TILE = 64;

/** dst = transpose(src, perm), both dense row-major; tiled so that neither side streams with a big stride. */
export function transposeArray(src: tf.TypedArray, shape: readonly number[], perm: readonly number[], dst: tf.TypedArray): void {
  const { shape: s, perm: p } = simplifyPermutation(shape, perm);
  const r = s.length;
  const size = s.reduce((n, d) => n * d, 1);
  if (r <= 1 || p.every((a, i) => a === i)) {
    (dst as Float32Array).set((src as Float32Array).subarray(0, size));
    return;
  }
  const inStrides = stridesOf(s);
  const outStrides = stridesOf(p.map((a) => s[a]));
  const outStrideOf = new Array<number>(r);
  p.forEach((a, i) => (outStrideOf[a] = outStrides[i]));
  const a = r - 1; // innermost input axis
  const q = p[r - 1]; // innermost output axis
  // Remaining axes, iterated odometer-style in output order.
  const outer = p.filter((x) => x !== a && x !== q);
  const odometer = new Odometer(
    outer.map((x) => s[x]),
    outer.map((x) => inStrides[x]),
    outer.map((x) => outStrideOf[x]),
  );
  if (q === a) {
    // Innermost axis stays innermost: copy contiguous runs.
    const run = s[a];
    for (let n = 0; n < odometer.count; n++) {
      const i = odometer.inBase;
      const o = odometer.outBase;
      // subarray() allocates; below a few hundred elements a plain loop is cheaper.
      if (run >= 256) (dst as Float32Array).set((src as Float32Array).subarray(i, i + run), o);
      else for (let j = 0; j < run; j++) dst[o + j] = src[i + j];
      odometer.next();
    }
    return;
  }
  const nA = s[a];
  const nQ = s[q];
  const inQ = inStrides[q];
  const outA = outStrideOf[a];
  for (let n = 0; n < odometer.count; n++) {
    const inBase = odometer.inBase;
    const outBase = odometer.outBase;
    for (let a0 = 0; a0 < nA; a0 += TILE) {
      const aEnd = Math.min(nA, a0 + TILE);
      for (let q0 = 0; q0 < nQ; q0 += TILE) {
        const qEnd = Math.min(nQ, q0 + TILE);
        for (let ia = a0; ia < aEnd; ia++) {
          let o = outBase + ia * outA + q0;
          let i = inBase + ia + q0 * inQ;
          for (let iq = q0; iq < qEnd; iq++) {
            dst[o++] = src[i];
            i += inQ;
          }
        }
      }
    }
    odometer.next();
  }
}

/** Walks a multi-index over `dims`, tracking the matching input and output offsets. */
class Odometer {
  readonly count: number;
  inBase = 0;
  outBase = 0;
  private readonly idx: number[];

  constructor(
    private readonly dims: number[],
    private readonly inStep: number[],
    private readonly outStep: number[],
  ) {
    this.count = dims.reduce((n, d) => n * d, 1);
    this.idx = dims.map(() => 0);
  }

  next(): void {
    for (let k = this.dims.length - 1; k >= 0; k--) {
      this.idx[k]++;
      this.inBase += this.inStep[k];
      this.outBase += this.outStep[k];
      if (this.idx[k] < this.dims[k]) return;
      this.inBase -= this.inStep[k] * this.dims[k];
      this.outBase -= this.outStep[k] * this.dims[k];
      this.idx[k] = 0;
    }
  }
}

/** Temporary float32 memory on the heap, for kernels that need scratch; free it after the call. */
export interface HeapScratch {
  /** A view of the scratch (take it after every other allocation: growing the heap detaches views). */
  view(): Float32Array | undefined;
  free(): void;
}

/** `floats` of scratch on the heap (none when 0). */
export function withScratch(heap: WasmHeapBackend, floats: number): HeapScratch {
  if (floats === 0) return { view: () => undefined, free: () => undefined };
  const info = heap.makeOutput([floats], 'float32');
  return {
    view: () => heap.typedArrayFromHeap(info) as Float32Array,
    free: () => void heap.disposeData(info.dataId),
  };
}
