// Our own wasm SIMD kernels (wasm/kernels.ts, compiled by `npm run build`), instantiated per
// thread. The module keeps no data and imports the memory it works on, so one instance can run
// directly on the tfjs wasm backend's heap (registerHeap): operands are read and results
// written where the tensors live, no copies. Arrays elsewhere (another backend, plain JS arrays)
// go through a second instance with a memory of its own, copied in and out (~1 ms per 16 MB).
import { readFileSync } from 'node:fs';
import type * as tf from '@tensorflow/tfjs';

/** wasm/kernels.ts's exports; every argument is an i32 (pointers are byte offsets). */
interface KernelExports {
  conv2d(...args: number[]): void;
  conv2dFilterGrad(...args: number[]): void;
  matmul(...args: number[]): void;
  maxPoolGrad(...args: number[]): void;
  sumRows(...args: number[]): void;
}

type KernelName = keyof KernelExports;

interface Kernels {
  exports: KernelExports;
  memory: WebAssembly.Memory;
}

const MODULE_URL = new URL('../../../wasm/kernels.wasm', import.meta.url);
const PAGE = 65536;

let compiled: WebAssembly.Module | undefined;
let own: Kernels | undefined;
const heaps: Kernels[] = [];

function instantiate(memory: WebAssembly.Memory): Kernels {
  compiled ??= new WebAssembly.Module(readFileSync(MODULE_URL));
  const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as KernelExports;
  return { exports, memory };
}

/**
 * Lets the kernels run in place on a wasm heap (the tfjs wasm backend's memory). Returns false
 * when the module cannot import it (e.g. a shared memory); the copying path still works then.
 */
export function registerHeap(memory: WebAssembly.Memory): boolean {
  if (heaps.some((h) => h.memory === memory)) return true;
  try {
    heaps.push(instantiate(memory));
    return true;
  } catch {
    return false;
  }
}

/** How many heaps the kernels run on in place (tests check the tfjs wasm heap is one). */
export function registeredHeaps(): number {
  return heaps.length;
}

/** The registered heap that every (non-empty) array is a view of, if any. */
function heapOf(arrays: readonly Float32Array[]): Kernels | undefined {
  const buffer = arrays.find((a) => a.length > 0)?.buffer;
  const heap = heaps.find((h) => h.memory.buffer === buffer);
  return heap && arrays.every((a) => a.length === 0 || a.buffer === buffer) ? heap : undefined;
}

/** Grows the module's memory to at least `bytes` (offset 0 up; the module keeps no data of its own). */
function reserve(k: Kernels, bytes: number): void {
  const have = k.memory.buffer.byteLength;
  if (bytes > have) k.memory.grow(Math.ceil((bytes - have) / PAGE));
}

const align = (n: number): number => (n + 15) & ~15;

/** A convolution's shapes, NHWC: x [batch,inH,inW,inChannels] -> y [batch,outH,outW,outChannels]. */
export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inChannels: number;
  outH: number;
  outW: number;
  outChannels: number;
  filterH: number;
  filterW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

/** The geometry of a tfjs Conv2DInfo (NHWC). */
export function geometryOf(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inChannels: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outChannels: info.outChannels,
    filterH: info.filterHeight,
    filterW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** Whether conv2d and conv2dFilterGrad handle this layer (their register blocks are 8 output channels wide). */
export function convFits(g: Pick<ConvGeometry, 'outChannels'>): boolean {
  return g.outChannels % 8 === 0;
}

/**
 * Runs `kernel` with pointers to `inputs`, then the output (and `scratch` zeroed bytes, if any),
 * followed by `args`. `accumulates`: the kernel adds into its output, which must start at zero.
 * In place when everything lies on a registered heap and no scratch is needed; else copied.
 */
function run(kernel: KernelName, inputs: Float32Array[], out: Float32Array, args: number[], o: { accumulates: boolean; scratch?: number }): void {
  const scratch = o.scratch ?? 0;
  const heap = scratch === 0 ? heapOf([...inputs, out]) : undefined;
  if (heap !== undefined) {
    if (o.accumulates) out.fill(0);
    heap.exports[kernel](...inputs.map((a) => a.byteOffset), out.byteOffset, ...args);
    return;
  }
  own ??= instantiate(new WebAssembly.Memory({ initial: 0 }));
  const offsets: number[] = [];
  let end = 0;
  for (const a of inputs) {
    offsets.push(end);
    end = align(end + a.byteLength);
  }
  const scratchAt = end;
  const outAt = align(scratchAt + scratch);
  reserve(own, outAt + out.byteLength);
  const mem = new Float32Array(own.memory.buffer);
  inputs.forEach((a, i) => mem.set(a, offsets[i] / 4));
  mem.fill(0, scratchAt / 4, outAt / 4 + out.length);
  const pointers = scratch > 0 ? [...offsets, outAt, scratchAt] : [...offsets, outAt];
  own.exports[kernel](...pointers, ...args);
  out.set(mem.subarray(outAt / 4, outAt / 4 + out.length));
}

function convArgs(g: ConvGeometry): number[] {
  return [
    g.batch, g.inH, g.inW, g.inChannels,
    g.outH, g.outW, g.outChannels,
    g.filterH, g.filterW, g.strideH, g.strideW, g.padTop, g.padLeft,
  ];
}

/** dw [KH,KW,Ci,Co] = the filter gradient of x [B,H,W,Ci] and dy [B,OH,OW,Co] (NHWC, dense). */
export function conv2dFilterGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry, dw: Float32Array): void {
  run('conv2dFilterGrad', [x, dy], dw, convArgs(g), { accumulates: true });
}

const NO_BIAS = new Float32Array(0);

/**
 * y [B,OH,OW,Co] = x [B,H,W,Ci] convolved with w [KH,KW,Ci,Co] (dilation 1, zero padding), plus
 * `bias` [Co] when given, then ReLU when `relu`.
 */
export function conv2d(x: Float32Array, w: Float32Array, g: ConvGeometry, y: Float32Array, fused: { bias?: Float32Array; relu?: boolean } = {}): void {
  const bias = fused.bias ?? NO_BIAS;
  if (fused.bias !== undefined && bias.length !== g.outChannels) throw new Error(`conv2d: bias of ${bias.length} for ${g.outChannels} channels`);
  run('conv2d', [x, w, bias], y, [fused.bias ? 1 : 0, fused.relu ? 1 : 0, ...convArgs(g)], { accumulates: false });
}

/** Whether maxPoolGrad handles this layer (4 channels at a time). */
export function maxPoolGradFits(channels: number): boolean {
  return channels % 4 === 0;
}

/** dx [B,H,W,C]: each window's dy goes to the first maximum of x in row-major window order. */
export function maxPoolGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry, dx: Float32Array): void {
  run('maxPoolGrad', [x, dy], dx, [
    g.batch, g.inH, g.inW, g.inChannels,
    g.outH, g.outW, g.filterH, g.filterW, g.strideH, g.strideW, g.padTop, g.padLeft,
  ], { accumulates: true });
}

/** out[c] = sum over r of x[r, c] (x is [rows, cols]), accumulated in double precision. */
export function sumRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  run('sumRows', [x], out, [rows, cols], { accumulates: true, scratch: cols * 8 });
}

/** Whether matmul handles an [M,K] x [K,N] product (its register block is 8 columns wide). */
export function matmulFits(k: number, n: number): boolean {
  return k > 0 && n % 8 === 0;
}

/** c [M,N] = a [M,K] . b [K,N] (row-major), plus `bias` [N] when given, then ReLU when `relu`. */
export function matmul(
  a: Float32Array, b: Float32Array, m: number, k: number, n: number, c: Float32Array,
  fused: { bias?: Float32Array; relu?: boolean } = {},
): void {
  const bias = fused.bias ?? NO_BIAS;
  if (fused.bias !== undefined && bias.length !== n) throw new Error(`matmul: bias of ${bias.length} for ${n} columns`);
  run('matmul', [a, b, bias], c, [fused.bias ? 1 : 0, fused.relu ? 1 : 0, m, k, n], { accumulates: false });
}
