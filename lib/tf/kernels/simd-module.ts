// Our own wasm SIMD kernels (wasm/kernels.ts, compiled by `npm run build`), one instance per
// thread. The module has its own memory: operands are copied in, which costs ~1 ms per 16 MB
// against the hundreds of ms the kernels save.
import { readFileSync } from 'node:fs';
import type * as tf from '@tensorflow/tfjs';

/** wasm/kernels.ts's exports; every argument is an i32 (pointers are byte offsets). */
interface KernelExports {
  memory: WebAssembly.Memory;
  conv2d(...args: number[]): void;
  conv2dFilterGrad(...args: number[]): void;
  matmul(...args: number[]): void;
  maxPoolGrad(...args: number[]): void;
  sumRows(...args: number[]): void;
}

type KernelName = Exclude<keyof KernelExports, 'memory'>;

const MODULE_URL = new URL('../../../wasm/kernels.wasm', import.meta.url);
const PAGE = 65536;

let instance: KernelExports | undefined;

function kernels(): KernelExports {
  if (instance === undefined) {
    const module = new WebAssembly.Module(readFileSync(MODULE_URL));
    instance = new WebAssembly.Instance(module, {}).exports as unknown as KernelExports;
  }
  return instance;
}

/** Grows the module's memory to at least `bytes` (offset 0 up; the module keeps no data of its own). */
function reserve(k: KernelExports, bytes: number): void {
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

/** Whether conv2dFilterGrad handles this layer (its register block is 8 output channels wide). */
export function filterGradFits(g: Pick<ConvGeometry, 'outChannels'>): boolean {
  return g.outChannels % 8 === 0;
}

/** Whether conv2d handles this layer (its register block is 8 output channels wide). */
export function convFits(g: Pick<ConvGeometry, 'outChannels'>): boolean {
  return g.outChannels % 8 === 0;
}

/**
 * Copies `inputs` into the module after one another, zeroes `scratch` bytes and then the output
 * behind them, runs `kernel` with their offsets followed by `args`, and copies the output into `out`.
 */
function run(kernel: KernelName, inputs: Float32Array[], out: Float32Array, args: number[], scratch = 0): void {
  const k = kernels();
  const offsets: number[] = [];
  let end = 0;
  for (const a of inputs) {
    offsets.push(end);
    end = align(end + a.byteLength);
  }
  const scratchAt = end;
  const outAt = align(scratchAt + scratch);
  reserve(k, outAt + out.byteLength);
  const heap = new Float32Array(k.memory.buffer);
  inputs.forEach((a, i) => heap.set(a, offsets[i] / 4));
  heap.fill(0, scratchAt / 4, outAt / 4 + out.length);
  const pointers = scratch > 0 ? [...offsets, outAt, scratchAt] : [...offsets, outAt];
  k[kernel](...pointers, ...args);
  out.set(heap.subarray(outAt / 4, outAt / 4 + out.length));
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
  run('conv2dFilterGrad', [x, dy], dw, convArgs(g));
}

const NO_BIAS = new Float32Array(0);

/**
 * y [B,OH,OW,Co] = x [B,H,W,Ci] convolved with w [KH,KW,Ci,Co] (dilation 1, zero padding), plus
 * `bias` [Co] when given, then ReLU when `relu`.
 */
export function conv2d(x: Float32Array, w: Float32Array, g: ConvGeometry, y: Float32Array, fused: { bias?: Float32Array; relu?: boolean } = {}): void {
  const bias = fused.bias ?? NO_BIAS;
  if (fused.bias !== undefined && bias.length !== g.outChannels) throw new Error(`conv2d: bias of ${bias.length} for ${g.outChannels} channels`);
  run('conv2d', [x, w, bias], y, [fused.bias ? 1 : 0, fused.relu ? 1 : 0, ...convArgs(g)]);
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
  ]);
}

/** out[c] = sum over r of x[r, c] (x is [rows, cols]), accumulated in double precision. */
export function sumRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  run('sumRows', [x], out, [rows, cols], cols * 8);
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
  run('matmul', [a, b, bias], c, [fused.bias ? 1 : 0, fused.relu ? 1 : 0, m, k, n]);
}
