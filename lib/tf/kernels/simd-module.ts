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
  winogradConv3x3(...args: number[]): void;
  winogradFilterGrad3x3(...args: number[]): void;
  rmsprop(...args: number[]): void;
  mapPixels(...args: number[]): void;
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
 * mapPixels (wasm/kernels.ts) on a memory of the caller's own (the data loader's pixel mapping,
 * lib/dataset/pixel-map.ts), sharing this thread's compiled module.
 */
export function pixelMapperOn(memory: WebAssembly.Memory): (pixels: number, table: number, out: number, n: number, channels: number) => void {
  const { exports } = instantiate(memory);
  return (pixels, table, out, n, channels) => exports.mapPixels(pixels, table, out, n, channels);
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

let copiedRuns = 0;

/** Kernel calls so far that took the copying path (tests check the heap path stays in place). */
export function copiedRunCount(): number {
  return copiedRuns;
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

/** How a kernel uses its output and scratch memory. */
interface RunOptions {
  /** The kernel adds into its output, which must start at zero. */
  accumulates: boolean;
  /** Zeroed scratch bytes the kernel needs (its pointer follows the output's). */
  scratchBytes?: number;
  /** Caller-provided scratch on the same heap (at least scratchBytes), so the kernel can run in place. */
  scratch?: Float32Array;
}

/**
 * Runs `kernel` with pointers to `inputs`, then the output(s) (and scratch, if any), followed by
 * `args`. In place when everything, scratch included, lies on one registered heap; else copied
 * into the module's own memory and back.
 */
function run(kernel: KernelName, inputs: Float32Array[], output: Float32Array | Float32Array[], args: number[], o: RunOptions): void {
  const outs = Array.isArray(output) ? output : [output];
  const scratchBytes = o.scratchBytes ?? 0;
  const scratch = scratchBytes > 0 && o.scratch !== undefined && o.scratch.byteLength >= scratchBytes ? [o.scratch] : [];
  const heap = scratchBytes === 0 || scratch.length > 0 ? heapOf([...inputs, ...outs, ...scratch]) : undefined;
  if (heap !== undefined) {
    if (o.accumulates) for (const out of outs) out.fill(0);
    scratch[0]?.fill(0, 0, scratchBytes / 4);
    heap.exports[kernel](...inputs.map((a) => a.byteOffset), ...outs.map((a) => a.byteOffset), ...scratch.map((a) => a.byteOffset), ...args);
    return;
  }
  copiedRuns++;
  own ??= instantiate(new WebAssembly.Memory({ initial: 0 }));
  // Layout: inputs, scratch, outputs (zeroed from scratch on).
  const offsets: number[] = [];
  let end = 0;
  for (const a of inputs) {
    offsets.push(end);
    end = align(end + a.byteLength);
  }
  const scratchAt = end;
  end = align(scratchAt + scratchBytes);
  const outAt: number[] = [];
  for (const out of outs) {
    outAt.push(end);
    end = align(end + out.byteLength);
  }
  reserve(own, end);
  const mem = new Float32Array(own.memory.buffer);
  inputs.forEach((a, i) => mem.set(a, offsets[i] / 4));
  mem.fill(0, scratchAt / 4, end / 4);
  const pointers = scratchBytes > 0 ? [...offsets, ...outAt, scratchAt] : [...offsets, ...outAt];
  own.exports[kernel](...pointers, ...args);
  outs.forEach((out, i) => out.set(mem.subarray(outAt[i] / 4, outAt[i] / 4 + out.length)));
}

function convArgs(g: ConvGeometry): number[] {
  return [g.batch, g.inH, g.inW, g.inChannels, g.outH, g.outW, g.outChannels, g.filterH, g.filterW, g.strideH, g.strideW, g.padTop, g.padLeft];
}

/** Scratch floats conv2dFilterGrad needs for this geometry (0 on the direct route). */
export function filterGradScratchFloats(g: ConvGeometry): number {
  return conv2dScratchFloats(g);
}

/**
 * dw [KH,KW,Ci,Co] = the filter gradient of x [B,H,W,Ci] and dy [B,OH,OW,Co] (NHWC, dense).
 * `scratch` (filterGradScratchFloats(g) floats on the same heap) lets Winograd run in place.
 */
export function conv2dFilterGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry, dw: Float32Array, scratch?: Float32Array): void {
  if (winogradFits(g)) {
    const args = [g.batch, g.inH, g.inW, g.inChannels, g.outH, g.outW, g.outChannels, g.padTop, g.padLeft, winogradChunk(g)];
    run('winogradFilterGrad3x3', [x, dy], dw, args, { accumulates: false, scratchBytes: filterGradScratchFloats(g) * 4, scratch });
    return;
  }
  conv2dFilterGradDirect(x, dy, g, dw);
}

/** conv2dFilterGrad always by the direct kernel, never Winograd (tests compare the routes). */
export function conv2dFilterGradDirect(x: Float32Array, dy: Float32Array, g: ConvGeometry, dw: Float32Array): void {
  run('conv2dFilterGrad', [x, dy], dw, convArgs(g), { accumulates: true });
}

const NO_BIAS = new Float32Array(0);

/**
 * Whether conv2d takes the Winograd F(2x2, 3x3) route: 3x3 filters at stride 1, input channels in
 * blocks of 4 (an RGB input layer goes direct). 16 multiplies per 2x2 outputs instead of 36.
 */
export function winogradFits(g: ConvGeometry): boolean {
  return g.filterH === 3 && g.filterW === 3 && g.strideH === 1 && g.strideW === 1 && g.inChannels % 4 === 0 && g.outChannels % 8 === 0;
}

/** Tiles per Winograd pass: its transformed inputs and products (16 x tiles x (ci + co) floats) stay in L2. */
function winogradChunk(g: ConvGeometry): number {
  return Math.max(16, Math.floor(8192 / (g.inChannels + g.outChannels)) & ~3);
}

/** Scratch floats conv2d needs for this geometry (0 on the direct route); pass them to run in place. */
export function conv2dScratchFloats(g: ConvGeometry): number {
  if (!winogradFits(g)) return 0;
  // Transformed filter (or filter gradient), transformed tiles and products, an edge patch.
  return 16 * (g.inChannels * g.outChannels + winogradChunk(g) * (g.inChannels + g.outChannels) + g.inChannels);
}

/**
 * y [B,OH,OW,Co] = x [B,H,W,Ci] convolved with w [KH,KW,Ci,Co] (dilation 1, zero padding), plus
 * `bias` [Co] when given, then ReLU when `relu`. `scratch` (conv2dScratchFloats(g) floats on the
 * same heap) lets the Winograd route run in place.
 */
export function conv2d(
  x: Float32Array,
  w: Float32Array,
  g: ConvGeometry,
  y: Float32Array,
  fused: { bias?: Float32Array; relu?: boolean } = {},
  scratch?: Float32Array,
): void {
  const bias = fused.bias ?? NO_BIAS;
  if (fused.bias !== undefined && bias.length !== g.outChannels) throw new Error(`conv2d: bias of ${bias.length} for ${g.outChannels} channels`);
  const flags = [fused.bias ? 1 : 0, fused.relu ? 1 : 0];
  if (winogradFits(g)) {
    const args = [...flags, g.batch, g.inH, g.inW, g.inChannels, g.outH, g.outW, g.outChannels, g.padTop, g.padLeft, winogradChunk(g)];
    run('winogradConv3x3', [x, w, bias], y, args, { accumulates: false, scratchBytes: conv2dScratchFloats(g) * 4, scratch });
    return;
  }
  conv2dDirect(x, w, g, y, fused);
}

/** conv2d always by direct convolution, never Winograd (the speed probe and tests compare the routes). */
export function conv2dDirect(x: Float32Array, w: Float32Array, g: ConvGeometry, y: Float32Array, fused: { bias?: Float32Array; relu?: boolean } = {}): void {
  const bias = fused.bias ?? NO_BIAS;
  run('conv2d', [x, w, bias], y, [fused.bias ? 1 : 0, fused.relu ? 1 : 0, ...convArgs(g)], { accumulates: false });
}

/** Whether maxPoolGrad handles this layer (4 channels at a time). */
export function maxPoolGradFits(channels: number): boolean {
  return channels % 4 === 0;
}

/** dx [B,H,W,C]: each window's dy goes to the first maximum of x in row-major window order. */
export function maxPoolGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry, dx: Float32Array): void {
  run('maxPoolGrad', [x, dy], dx, [g.batch, g.inH, g.inW, g.inChannels, g.outH, g.outW, g.filterH, g.filterW, g.strideH, g.strideW, g.padTop, g.padLeft], {
    accumulates: true,
  });
}

/** out[c] = sum over r of x[r, c] (x is [rows, cols]), accumulated in double precision. */
export function sumRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  run('sumRows', [x], out, [rows, cols], { accumulates: true, scratchBytes: cols * 8 });
}

/** Whether matmul handles an [M,K] x [K,N] product (its register block is 8 columns wide). */
export function matmulFits(k: number, n: number): boolean {
  return k > 0 && n % 8 === 0;
}

/** c [M,N] = a [M,K] . b [K,N] (row-major), plus `bias` [N] when given, then ReLU when `relu`. */
export function matmul(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  c: Float32Array,
  fused: { bias?: Float32Array; relu?: boolean } = {},
): void {
  const bias = fused.bias ?? NO_BIAS;
  if (fused.bias !== undefined && bias.length !== n) throw new Error(`matmul: bias of ${bias.length} for ${n} columns`);
  run('matmul', [a, b, bias], c, [fused.bias ? 1 : 0, fused.relu ? 1 : 0, m, k, n], { accumulates: false });
}

/** Keras RMSprop hyper-parameters for one step. */
export interface RmspropStep {
  lr: number;
  rho: number;
  epsilon: number;
}

/**
 * One Keras RMSprop step in float32, in Keras' order of operations (bit-identical to the same
 * formula as tensor ops): accOut = acc·ρ + g²·(1−ρ); wOut = w − g·lr / (√accOut + ε).
 */
export function rmspropStep(acc: Float32Array, w: Float32Array, g: Float32Array, accOut: Float32Array, wOut: Float32Array, h: RmspropStep): void {
  const n = g.length;
  if (acc.length !== n || w.length !== n || accOut.length !== n || wOut.length !== n) throw new Error('rmsprop: operands differ in size');
  // 1 - rho in double, then rounded, as tfjs rounds the scalar operand of tf.mul(x, 1 - rho).
  run('rmsprop', [acc, w, g], [accOut, wOut], [n, h.lr, h.rho, 1 - h.rho, h.epsilon], { accumulates: false });
}
