// Our WebAssembly SIMD kernels (wasm/kernels.ts) against plain double-precision loops, on random
// geometries: every stride, padding, window and edge case their interior/edge splits must get right,
// and the Winograd routes of 3x3 stride-1 layers (partial tiles, every padding, several tile chunks).
import { describe, expect, test } from '@jest/globals';
import { Rng } from '../lib/model/rng.js';
import {
  conv2d,
  conv2dDirect,
  conv2dFilterGrad,
  conv2dFilterGradDirect,
  convFits,
  matmul,
  matmulFits,
  maxPoolGrad,
  maxPoolGradFits,
  rmspropStep,
  sumRows,
  winogradFits,
  type ConvGeometry,
} from '../lib/tf/kernels/simd-module.js';

const rng = new Rng(20261126);

function randomArray(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** A random geometry; `multiple` constrains [inChannels, outChannels]. */
function randomGeometry(multiple: [number, number]): ConvGeometry {
  const filterH = 1 + rng.int(5);
  const filterW = 1 + rng.int(5);
  const strideH = 1 + rng.int(3);
  const strideW = 1 + rng.int(3);
  const inH = filterH + rng.int(9);
  const inW = filterW + rng.int(9);
  const padTop = rng.int(filterH);
  const padLeft = rng.int(filterW);
  const padBottom = rng.int(filterH);
  const padRight = rng.int(filterW);
  return {
    batch: 1 + rng.int(3),
    inH,
    inW,
    inChannels: multiple[0] * (1 + rng.int(3)),
    outH: Math.floor((inH + padTop + padBottom - filterH) / strideH) + 1,
    outW: Math.floor((inW + padLeft + padRight - filterW) / strideW) + 1,
    outChannels: multiple[1] * (1 + rng.int(3)),
    filterH,
    filterW,
    strideH,
    strideW,
    padTop,
    padLeft,
  };
}

/** Calls f(b, i, j, kh, kw, ih, iw) for every output pixel and tap whose input pixel exists. */
function forTaps(g: ConvGeometry, f: (b: number, i: number, j: number, kh: number, kw: number, ih: number, iw: number) => void): void {
  for (let b = 0; b < g.batch; b++)
    for (let i = 0; i < g.outH; i++)
      for (let j = 0; j < g.outW; j++)
        for (let kh = 0; kh < g.filterH; kh++)
          for (let kw = 0; kw < g.filterW; kw++) {
            const ih = i * g.strideH + kh - g.padTop;
            const iw = j * g.strideW + kw - g.padLeft;
            if (ih >= 0 && ih < g.inH && iw >= 0 && iw < g.inW) f(b, i, j, kh, kw, ih, iw);
          }
}

function expectClose(got: Float32Array, want: Float64Array): void {
  expect(got).toHaveLength(want.length);
  let scale = 1;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let diff = 0;
  for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
  expect(diff).toBeLessThan(2e-5 * scale);
}

/** y = bias + x convolved with w, then ReLU if asked, in double precision. */
function convReference(g: ConvGeometry, x: Float32Array, w: Float32Array, fused: { bias?: Float32Array; relu?: boolean } = {}): Float64Array {
  const { inH, inW, inChannels: ci, outH, outW, outChannels: co, filterW: fw } = g;
  const want = new Float64Array(g.batch * outH * outW * co);
  if (fused.bias) for (let p = 0; p < want.length; p++) want[p] = fused.bias[p % co]!;
  forTaps(g, (b, i, j, kh, kw, ih, iw) => {
    for (let c = 0; c < ci; c++)
      for (let o = 0; o < co; o++)
        want[((b * outH + i) * outW + j) * co + o] += x[((b * inH + ih) * inW + iw) * ci + c] * w[((kh * fw + kw) * ci + c) * co + o];
  });
  if (fused.relu) for (let p = 0; p < want.length; p++) want[p] = Math.max(0, want[p]!);
  return want;
}

/** dw = sum over pixels of input times output gradient, in double precision. */
function filterGradReference(g: ConvGeometry, x: Float32Array, dy: Float32Array): Float64Array {
  const { inH, inW, inChannels: ci, outH, outW, outChannels: co, filterW: fw } = g;
  const want = new Float64Array(g.filterH * fw * ci * co);
  forTaps(g, (b, i, j, kh, kw, ih, iw) => {
    for (let c = 0; c < ci; c++)
      for (let o = 0; o < co; o++)
        want[((kh * fw + kw) * ci + c) * co + o] += x[((b * inH + ih) * inW + iw) * ci + c] * dy[((b * outH + i) * outW + j) * co + o];
  });
  return want;
}

/** Random operands of a convolution: input x, filter w, output gradient dy. */
function randomOperands(g: ConvGeometry): { x: Float32Array; w: Float32Array; dy: Float32Array } {
  return {
    x: randomArray(g.batch * g.inH * g.inW * g.inChannels),
    w: randomArray(g.filterH * g.filterW * g.inChannels * g.outChannels),
    dy: randomArray(g.batch * g.outH * g.outW * g.outChannels),
  };
}

/** A random 3x3 stride-1 geometry that takes the Winograd route; `big` spans several tile chunks. */
function randomWinogradGeometry(big: boolean): ConvGeometry {
  const pad = rng.int(3); // 0..2: valid, same, and the "full" padding of an input gradient
  const padEnd = rng.int(3);
  const inH = big ? 14 + rng.int(3) : 1 + rng.int(9);
  const inW = big ? 14 + rng.int(3) : 1 + rng.int(9);
  const g: ConvGeometry = {
    batch: big ? 2 : 1 + rng.int(3),
    inH,
    inW,
    inChannels: big ? 32 * (1 + rng.int(2)) : 4 * (1 + rng.int(3)),
    outH: inH + pad + padEnd - 2,
    outW: inW + pad + padEnd - 2,
    outChannels: big ? 64 : 8 * (1 + rng.int(3)),
    filterH: 3,
    filterW: 3,
    strideH: 1,
    strideW: 1,
    padTop: pad,
    padLeft: pad,
  };
  return g.outH > 0 && g.outW > 0 ? g : randomWinogradGeometry(big);
}

const CASES = 40;

describe('wasm SIMD kernels on random geometries', () => {
  test('conv2d = the direct sum over taps and channels', () => {
    for (let n = 0; n < CASES; n++) {
      const g = randomGeometry([1, 8]);
      const { x, w, dy } = randomOperands(g);
      const got = new Float32Array(dy.length);
      conv2d(x, w, g, got);
      expectClose(got, convReference(g, x, w));
    }
  });

  test('conv2dFilterGrad = the sum over pixels of input times output gradient', () => {
    for (let n = 0; n < CASES; n++) {
      // Any input channel count: multiples of 4 take the 4-channel block, the rest the tail.
      const g = randomGeometry([1 + rng.int(6), 8]);
      const { x, w, dy } = randomOperands(g);
      const got = new Float32Array(w.length);
      conv2dFilterGrad(x, dy, g, got);
      expectClose(got, filterGradReference(g, x, dy));
    }
  });

  test('Winograd conv2d (3x3, stride 1) = the direct sum, with bias and ReLU, odd sizes, every padding', () => {
    for (let n = 0; n < CASES; n++) {
      const g = randomWinogradGeometry(n % 10 === 0);
      expect(winogradFits(g)).toBe(true);
      const { x, w, dy } = randomOperands(g);
      const fused = { bias: n % 2 === 0 ? randomArray(g.outChannels) : undefined, relu: n % 3 === 0 };
      const got = new Float32Array(dy.length);
      conv2d(x, w, g, got, fused);
      expectClose(got, convReference(g, x, w, fused));
      const direct = new Float32Array(got.length);
      conv2dDirect(x, w, g, direct, fused);
      expectClose(direct, convReference(g, x, w, fused));
    }
  });

  test('Winograd conv2dFilterGrad (3x3, stride 1) = the sum over pixels, odd sizes, every padding', () => {
    for (let n = 0; n < CASES; n++) {
      const g = randomWinogradGeometry(n % 10 === 0);
      const { x, w, dy } = randomOperands(g);
      const got = new Float32Array(w.length);
      conv2dFilterGrad(x, dy, g, got);
      const want = filterGradReference(g, x, dy);
      expectClose(got, want);
      const direct = new Float32Array(got.length);
      conv2dFilterGradDirect(x, dy, g, direct);
      expectClose(direct, want);
    }
  });

  test('maxPoolGrad sends each window gradient to its first maximum (ties on a coarse grid)', () => {
    for (let n = 0; n < CASES; n++) {
      const g = randomGeometry([4, 1]);
      const c = g.inChannels;
      const { inH, inW, outH, outW } = g;
      // Values on a grid of 5 so windows often tie.
      const x = Float32Array.from({ length: g.batch * inH * inW * c }, () => rng.int(5));
      const dy = randomArray(g.batch * outH * outW * c);
      const want = new Float64Array(x.length);
      for (let b = 0; b < g.batch; b++)
        for (let i = 0; i < outH; i++)
          for (let j = 0; j < outW; j++)
            for (let ch = 0; ch < c; ch++) {
              let best = -Infinity;
              let at = -1;
              for (let kh = 0; kh < g.filterH; kh++)
                for (let kw = 0; kw < g.filterW; kw++) {
                  const ih = i * g.strideH + kh - g.padTop;
                  const iw = j * g.strideW + kw - g.padLeft;
                  if (ih < 0 || ih >= inH || iw < 0 || iw >= inW) continue;
                  const p = ((b * inH + ih) * inW + iw) * c + ch;
                  if (x[p] > best) [best, at] = [x[p], p];
                }
              if (at >= 0) want[at] += dy[((b * outH + i) * outW + j) * c + ch];
            }
      const got = new Float32Array(want.length);
      maxPoolGrad(x, dy, { ...g, outChannels: c }, got);
      expectClose(got, want);
    }
  });

  test('matmul = the row-by-column sums, with bias and ReLU, K in several chunks, any row count', () => {
    for (let t = 0; t < CASES; t++) {
      const m = 1 + rng.int(11);
      const k = 1 + rng.int(t % 4 === 0 ? 700 : 40); // K > 256 spans chunks
      const n = 8 * (1 + rng.int(4));
      const a = randomArray(m * k);
      const b = randomArray(k * n);
      const bias = t % 2 === 0 ? randomArray(n) : undefined;
      const relu = t % 3 === 0;
      const want = new Float64Array(m * n);
      for (let r = 0; r < m; r++)
        for (let j = 0; j < n; j++) {
          let acc = bias ? bias[j]! : 0;
          for (let q = 0; q < k; q++) acc += a[r * k + q]! * b[q * n + j]!;
          want[r * n + j] = relu ? Math.max(0, acc) : acc;
        }
      const got = new Float32Array(m * n);
      matmul(a, b, m, k, n, got, { bias, relu });
      expectClose(got, want);
    }
  });

  test('sumRows sums columns in double precision, any column count', () => {
    for (const [rows, cols] of [
      [1, 1],
      [7, 3],
      [300, 32],
      [1000, 10],
      [64, 517],
    ]) {
      const x = randomArray(rows * cols);
      const want = new Float64Array(cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[c] += x[r * cols + c];
      const got = new Float32Array(cols);
      sumRows(x, rows, cols, got);
      expect(Array.from(got)).toEqual(Array.from(Float32Array.from(want)));
    }
  });

  test('rmspropStep (two outputs, copied in and out) = Keras RMSprop rounded to float32 at every operation', () => {
    const f = Math.fround;
    for (const n of [1, 4, 7, 1030]) {
      const acc = randomArray(n).map(Math.abs);
      const w = randomArray(n);
      const g = randomArray(n);
      const [lr, rho, epsilon] = [0.01, 0.9, 1e-7];
      const accOut = new Float32Array(n);
      const wOut = new Float32Array(n);
      rmspropStep(acc, w, g, accOut, wOut, { lr, rho, epsilon });
      for (let i = 0; i < n; i++) {
        const a = f(f(acc[i]! * f(rho)) + f(f(g[i]! * g[i]!) * f(1 - rho)));
        expect(accOut[i]).toBe(a);
        expect(wOut[i]).toBe(f(w[i]! - f(f(g[i]! * f(lr)) / f(f(Math.sqrt(a)) + f(epsilon)))));
      }
    }
  });

  test('the fit predicates match the register blocks', () => {
    expect(convFits({ outChannels: 16 })).toBe(true);
    expect(convFits({ outChannels: 12 })).toBe(false);
    expect(matmulFits(10, 512)).toBe(true);
    expect(matmulFits(10, 10)).toBe(false);
    expect(matmulFits(0, 8)).toBe(false);
    expect(maxPoolGradFits(8)).toBe(true);
    expect(maxPoolGradFits(6)).toBe(false);
    const layer: ConvGeometry = {
      batch: 1,
      inH: 8,
      inW: 8,
      inChannels: 32,
      outH: 8,
      outW: 8,
      outChannels: 32,
      filterH: 3,
      filterW: 3,
      strideH: 1,
      strideW: 1,
      padTop: 1,
      padLeft: 1,
    };
    expect(winogradFits(layer)).toBe(true);
    expect(winogradFits({ ...layer, inChannels: 3 })).toBe(false); // an RGB input layer goes direct
    expect(winogradFits({ ...layer, strideH: 2 })).toBe(false);
    expect(winogradFits({ ...layer, filterW: 5 })).toBe(false);
  });
});
