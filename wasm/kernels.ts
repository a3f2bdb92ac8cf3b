// AssemblyScript (compiled to wasm SIMD by `npm run build`; see lib/tf/kernels/simd-module.ts).
// Kernels that XNNPACK, as tfjs-backend-wasm exposes it, can only reach through big transposes
// and per-call weight packing. Pointers are byte offsets into the memory the module imports (it
// keeps no data of its own): lib/tf/kernels/simd-module.ts instantiates it on the tfjs wasm
// backend's heap, so operands are read and results written where the tensors live; only arrays
// outside that heap are copied into a separate instance's memory and back.

/**
 * Conv2D filter gradient, NHWC, accumulated into dw (the caller zeroes it):
 *   dw[kh,kw,ci,co] += sum_{b,i,j} x[b, i*sh+kh-pt, j*sw+kw-pl, ci] * dy[b,i,j,co]
 * Windows hanging over the padding contribute zero, so out-of-range pixels are skipped.
 * Per output row and tap, the pixels' outer products x^T dy (matmulTransposedA: 4 input x 8
 * output channels in registers), whose x and dy rows sit in L1; input channels past the last
 * multiple of 4 go one at a time. Needs co % 8 == 0.
 */
export function conv2dFilterGrad(
  x: usize, dy: usize, dw: usize,
  batch: i32, inH: i32, inW: i32, ci: i32,
  outH: i32, outW: i32, co: i32,
  kH: i32, kW: i32, sh: i32, sw: i32, pt: i32, pl: i32,
): void {
  const xPixel = <usize>ci << 2; // bytes per x pixel
  const dyPixel = <usize>co << 2;
  const xStep = xPixel * <usize>sw;
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < outH; i++) {
      const dyRow = dy + <usize>((b * outH + i) * outW) * dyPixel;
      for (let kh = 0; kh < kH; kh++) {
        const ih = i * sh + kh - pt;
        if (ih < 0 || ih >= inH) continue;
        const xRow = x + <usize>((b * inH + ih) * inW) * xPixel;
        for (let kw = 0; kw < kW; kw++) {
          // Output columns j whose input column j*sw+kw-pl lies inside [0, inW).
          let j0 = 0;
          while (j0 * sw + kw - pl < 0) j0++;
          let j1 = outW;
          while (j1 > j0 && (j1 - 1) * sw + kw - pl >= inW) j1--;
          if (j1 <= j0) continue;
          const n = j1 - j0;
          const xStart = xRow + <usize>(j0 * sw + kw - pl) * xPixel;
          const dyStart = dyRow + <usize>j0 * dyPixel;
          const dwTap = dw + <usize>((kh * kW + kw) * ci) * dyPixel;
          const ci4 = ci & ~3;
          matmulTransposedA(xStart, xStep, dyStart, dwTap, n, ci4, co);
          // Leftover input channels (e.g. an RGB input layer), one at a time.
          for (let c = ci4; c < ci; c++) {
            const dwRow = dwTap + <usize>c * dyPixel;
            const xc = xStart + (<usize>c << 2);
            for (let o = 0; o < co; o += 8) {
              const d = dwRow + (<usize>o << 2);
              let a0 = v128.load(d);
              let a1 = v128.load(d, 16);
              let xp = xc;
              let gp = dyStart + (<usize>o << 2);
              for (let k = 0; k < n; k++) {
                const v = v128.load32_splat(xp);
                a0 = f32x4.add(a0, f32x4.mul(v, v128.load(gp)));
                a1 = f32x4.add(a1, f32x4.mul(v, v128.load(gp, 16)));
                xp += xStep;
                gp += dyPixel;
              }
              v128.store(d, a0);
              v128.store(d, a1, 16);
            }
          }
        }
      }
    }
  }
}

/**
 * Direct 2-D convolution, NHWC, dilation 1, zeros outside the input, optionally with a bias
 * (hasBias) and ReLU (relu) fused in:
 *   y[b,i,j,o] = act(bias[o] + sum_{kh,kw,c} x[b, i*sh+kh-pt, j*sw+kw-pl, c] * w[kh,kw,c,o])
 * Register block: 4 output pixels of a row x 8 output channels (8 f32x4 accumulators) over all
 * taps and input channels; pixels whose windows cross the left/right edge go one at a time.
 * Needs co % 8 == 0. (XNNPACK, as tfjs calls it, rebuilds its operator - packed weights and an
 * indirection buffer of 9 pointers per output pixel - whenever the filter changes: every step.)
 */
export function conv2d(
  x: usize, w: usize, bias: usize, y: usize, hasBias: i32, relu: i32,
  batch: i32, inH: i32, inW: i32, ci: i32,
  outH: i32, outW: i32, co: i32,
  kH: i32, kW: i32, sh: i32, sw: i32, pt: i32, pl: i32,
): void {
  const xPixel = <usize>ci << 2;
  const yPixel = <usize>co << 2;
  const wTap = <usize>ci * yPixel; // bytes per filter tap [ci, co]
  const xStep = xPixel * <usize>sw; // next output pixel's input pixel
  // At stride 1 a window row's taps are adjacent pixels, so its (kw, c) pairs are one run of
  // kW*ci floats in x and of kW*ci filter rows in w: one long loop instead of kW short ones.
  const taps = sw == 1 ? 1 : kW;
  const span = sw == 1 ? kW * ci : ci;
  // Output columns whose whole window lies inside the input row.
  let jIn0 = 0;
  while (jIn0 < outW && jIn0 * sw - pl < 0) jIn0++;
  let jIn1 = outW;
  while (jIn1 > jIn0 && (jIn1 - 1) * sw + kW - 1 - pl >= inW) jIn1--;
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < outH; i++) {
      const yRow = y + <usize>((b * outH + i) * outW) * yPixel;
      const xImage = x + <usize>(b * inH * inW) * xPixel;
      let kh0 = 0;
      while (i * sh + kh0 - pt < 0) kh0++;
      let kh1 = kH;
      while (kh1 > kh0 && i * sh + kh1 - 1 - pt >= inH) kh1--;
      for (let o = 0; o < co; o += 8) {
        const wCol = w + (<usize>o << 2);
        const b0 = hasBias ? v128.load(bias + (<usize>o << 2)) : f32x4.splat(0);
        const b1 = hasBias ? v128.load(bias + (<usize>o << 2), 16) : f32x4.splat(0);
        let j = 0;
        while (j < outW) {
          if (j >= jIn0 && j + 4 <= jIn1) {
            let a00 = b0, a01 = b1, a10 = b0, a11 = b1;
            let a20 = b0, a21 = b1, a30 = b0, a31 = b1;
            for (let kh = kh0; kh < kh1; kh++) {
              const xTapRow = xImage + <usize>((i * sh + kh - pt) * inW + j * sw - pl) * xPixel;
              for (let kw = 0; kw < taps; kw++) {
                let xp = xTapRow + <usize>kw * xPixel;
                let wp = wCol + <usize>(kh * kW + kw) * wTap;
                for (let c = 0; c < span; c++) {
                  const g0 = v128.load(wp);
                  const g1 = v128.load(wp, 16);
                  const v0 = v128.load32_splat(xp);
                  const v1 = v128.load32_splat(xp + xStep);
                  const v2 = v128.load32_splat(xp + 2 * xStep);
                  const v3 = v128.load32_splat(xp + 3 * xStep);
                  a00 = f32x4.add(a00, f32x4.mul(v0, g0));
                  a01 = f32x4.add(a01, f32x4.mul(v0, g1));
                  a10 = f32x4.add(a10, f32x4.mul(v1, g0));
                  a11 = f32x4.add(a11, f32x4.mul(v1, g1));
                  a20 = f32x4.add(a20, f32x4.mul(v2, g0));
                  a21 = f32x4.add(a21, f32x4.mul(v2, g1));
                  a30 = f32x4.add(a30, f32x4.mul(v3, g0));
                  a31 = f32x4.add(a31, f32x4.mul(v3, g1));
                  xp += 4;
                  wp += yPixel;
                }
              }
            }
            if (relu) {
              const z = f32x4.splat(0);
              a00 = f32x4.max(a00, z);
              a01 = f32x4.max(a01, z);
              a10 = f32x4.max(a10, z);
              a11 = f32x4.max(a11, z);
              a20 = f32x4.max(a20, z);
              a21 = f32x4.max(a21, z);
              a30 = f32x4.max(a30, z);
              a31 = f32x4.max(a31, z);
            }
            const d = yRow + <usize>j * yPixel + (<usize>o << 2);
            v128.store(d, a00);
            v128.store(d, a01, 16);
            v128.store(d + yPixel, a10);
            v128.store(d + yPixel, a11, 16);
            v128.store(d + 2 * yPixel, a20);
            v128.store(d + 2 * yPixel, a21, 16);
            v128.store(d + 3 * yPixel, a30);
            v128.store(d + 3 * yPixel, a31, 16);
            j += 4;
          } else {
            // One pixel, checking every tap's column.
            let a0 = b0, a1 = b1;
            for (let kh = kh0; kh < kh1; kh++) {
              const xr = xImage + <usize>((i * sh + kh - pt) * inW) * xPixel;
              for (let kw = 0; kw < kW; kw++) {
                const c0 = j * sw + kw - pl;
                if (c0 < 0 || c0 >= inW) continue;
                let xp = xr + <usize>c0 * xPixel;
                let wp = wCol + <usize>(kh * kW + kw) * wTap;
                for (let c = 0; c < ci; c++) {
                  const v = v128.load32_splat(xp);
                  a0 = f32x4.add(a0, f32x4.mul(v, v128.load(wp)));
                  a1 = f32x4.add(a1, f32x4.mul(v, v128.load(wp, 16)));
                  xp += 4;
                  wp += yPixel;
                }
              }
            }
            if (relu) {
              a0 = f32x4.max(a0, f32x4.splat(0));
              a1 = f32x4.max(a1, f32x4.splat(0));
            }
            const d = yRow + <usize>j * yPixel + (<usize>o << 2);
            v128.store(d, a0);
            v128.store(d, a1, 16);
            j++;
          }
        }
      }
    }
  }
}

/**
 * Max-pool gradient, NHWC, accumulated into dx (the caller zeroes it): each window sends its
 * dy to the first maximum of x in row-major window order (the cpu backend's tie rule). Two
 * passes per window and 4 channels: the maximum, then the first position holding it.
 * Needs c % 4 == 0.
 */
export function maxPoolGrad(
  x: usize, dy: usize, dx: usize,
  batch: i32, inH: i32, inW: i32, c: i32,
  outH: i32, outW: i32, fH: i32, fW: i32, sh: i32, sw: i32, pt: i32, pl: i32,
): void {
  const pixel = <usize>c << 2;
  let g = dy;
  for (let b = 0; b < batch; b++) {
    const image = <usize>(b * inH * inW) * pixel;
    for (let i = 0; i < outH; i++) {
      const r0 = i * sh - pt;
      const rMin = r0 < 0 ? 0 : r0;
      const rMax = r0 + fH > inH ? inH : r0 + fH;
      for (let j = 0; j < outW; j++) {
        const c0 = j * sw - pl;
        const cMin = c0 < 0 ? 0 : c0;
        const cMax = c0 + fW > inW ? inW : c0 + fW;
        for (let ch = 0; ch < c; ch += 4) {
          const lane = <usize>ch << 2;
          let best = f32x4.splat(-Infinity);
          for (let r = rMin; r < rMax; r++) {
            for (let col = cMin; col < cMax; col++) {
              const v = v128.load(x + image + <usize>(r * inW + col) * pixel + lane);
              best = v128.bitselect(v, best, f32x4.gt(v, best));
            }
          }
          const grad = v128.load(g + lane);
          // A window with no maximum above -Infinity sends nothing (as in the cpu backend).
          let found = f32x4.eq(best, f32x4.splat(-Infinity));
          for (let r = rMin; r < rMax; r++) {
            for (let col = cMin; col < cMax; col++) {
              const at = image + <usize>(r * inW + col) * pixel + lane;
              const hit = v128.andnot(f32x4.eq(v128.load(x + at), best), found);
              found = v128.or(found, hit);
              v128.store(dx + at, f32x4.add(v128.load(dx + at), v128.and(grad, hit)));
            }
          }
        }
        g += pixel;
      }
    }
  }
}

/**
 * out[c] = sum_r x[r, c] for x [rows, cols], accumulated in double precision (like the cpu
 * backend) in `acc` (cols doubles, zeroed by the caller), then rounded to float.
 */
export function sumRows(x: usize, out: usize, acc: usize, rows: i32, cols: i32): void {
  const vecCols = cols & ~3;
  let p = x;
  for (let r = 0; r < rows; r++) {
    let col = 0;
    for (; col < vecCols; col += 4) {
      const v = v128.load(p + (<usize>col << 2));
      const a = acc + (<usize>col << 3);
      v128.store(a, f64x2.add(v128.load(a), f64x2.promote_low_f32x4(v)));
      v128.store(a, f64x2.add(v128.load(a, 16), f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1))), 16);
    }
    for (; col < cols; col++) {
      const a = acc + (<usize>col << 3);
      store<f64>(a, load<f64>(a) + <f64>load<f32>(p + (<usize>col << 2)));
    }
    p += <usize>cols << 2;
  }
  for (let col = 0; col < cols; col++) store<f32>(out + (<usize>col << 2), <f32>load<f64>(acc + (<usize>col << 3)));
}

/** K is processed in chunks of this many: a chunk of b (KC x N floats) stays in L2. */
const KC = 256;

/**
 * c [M,N] = act(bias + a [M,K] . b [K,N]), all row-major, bias [N] if hasBias, ReLU if relu.
 * Register block: 4 rows x 8 columns (8 f32x4 accumulators, kept in c between K chunks); rows
 * past the last multiple of 4 go one at a time. Needs n % 8 == 0. (XNNPACK, as tfjs calls it,
 * repacks b on every call: in training b is a weight that changes every step.)
 */
export function matmul(a: usize, b: usize, bias: usize, c: usize, hasBias: i32, relu: i32, m: i32, k: i32, n: i32): void {
  const rowA = <usize>k << 2;
  const rowB = <usize>n << 2;
  const m4 = m & ~3;
  for (let k0 = 0; k0 < k; k0 += KC) {
    const kc = k - k0 < KC ? k - k0 : KC;
    const first = k0 == 0;
    const last = k0 + kc >= k;
    for (let r = 0; r < m; r += 4) {
      const rows = r < m4 ? 4 : 1;
      if (rows == 1) {
        // Tail rows, one at a time.
        for (let q = r; q < m; q++) matmulRow(a, b, bias, c, hasBias, relu, q, k0, kc, first, last, rowA, rowB, n);
        break;
      }
      for (let j = 0; j < n; j += 8) {
        const cp = c + <usize>r * rowB + (<usize>j << 2);
        let a00: v128, a01: v128, a10: v128, a11: v128, a20: v128, a21: v128, a30: v128, a31: v128;
        if (first) {
          const b0 = hasBias ? v128.load(bias + (<usize>j << 2)) : f32x4.splat(0);
          const b1 = hasBias ? v128.load(bias + (<usize>j << 2), 16) : f32x4.splat(0);
          a00 = b0; a01 = b1; a10 = b0; a11 = b1; a20 = b0; a21 = b1; a30 = b0; a31 = b1;
        } else {
          a00 = v128.load(cp); a01 = v128.load(cp, 16);
          a10 = v128.load(cp + rowB); a11 = v128.load(cp + rowB, 16);
          a20 = v128.load(cp + 2 * rowB); a21 = v128.load(cp + 2 * rowB, 16);
          a30 = v128.load(cp + 3 * rowB); a31 = v128.load(cp + 3 * rowB, 16);
        }
        let p0 = a + <usize>r * rowA + (<usize>k0 << 2);
        let p1 = p0 + rowA;
        let p2 = p1 + rowA;
        let p3 = p2 + rowA;
        let bp = b + <usize>k0 * rowB + (<usize>j << 2);
        for (let q = 0; q < kc; q++) {
          const g0 = v128.load(bp);
          const g1 = v128.load(bp, 16);
          const v0 = v128.load32_splat(p0);
          const v1 = v128.load32_splat(p1);
          const v2 = v128.load32_splat(p2);
          const v3 = v128.load32_splat(p3);
          a00 = f32x4.add(a00, f32x4.mul(v0, g0));
          a01 = f32x4.add(a01, f32x4.mul(v0, g1));
          a10 = f32x4.add(a10, f32x4.mul(v1, g0));
          a11 = f32x4.add(a11, f32x4.mul(v1, g1));
          a20 = f32x4.add(a20, f32x4.mul(v2, g0));
          a21 = f32x4.add(a21, f32x4.mul(v2, g1));
          a30 = f32x4.add(a30, f32x4.mul(v3, g0));
          a31 = f32x4.add(a31, f32x4.mul(v3, g1));
          p0 += 4; p1 += 4; p2 += 4; p3 += 4;
          bp += rowB;
        }
        if (last && relu) {
          const z = f32x4.splat(0);
          a00 = f32x4.max(a00, z); a01 = f32x4.max(a01, z); a10 = f32x4.max(a10, z); a11 = f32x4.max(a11, z);
          a20 = f32x4.max(a20, z); a21 = f32x4.max(a21, z); a30 = f32x4.max(a30, z); a31 = f32x4.max(a31, z);
        }
        v128.store(cp, a00); v128.store(cp, a01, 16);
        v128.store(cp + rowB, a10); v128.store(cp + rowB, a11, 16);
        v128.store(cp + 2 * rowB, a20); v128.store(cp + 2 * rowB, a21, 16);
        v128.store(cp + 3 * rowB, a30); v128.store(cp + 3 * rowB, a31, 16);
      }
    }
  }
}

/** One row of matmul for one K chunk. */
function matmulRow(
  a: usize, b: usize, bias: usize, c: usize, hasBias: i32, relu: i32,
  row: i32, k0: i32, kc: i32, first: bool, last: bool, rowA: usize, rowB: usize, n: i32,
): void {
  for (let j = 0; j < n; j += 8) {
    const cp = c + <usize>row * rowB + (<usize>j << 2);
    let a0: v128, a1: v128;
    if (first) {
      a0 = hasBias ? v128.load(bias + (<usize>j << 2)) : f32x4.splat(0);
      a1 = hasBias ? v128.load(bias + (<usize>j << 2), 16) : f32x4.splat(0);
    } else {
      a0 = v128.load(cp);
      a1 = v128.load(cp, 16);
    }
    let p = a + <usize>row * rowA + (<usize>k0 << 2);
    let bp = b + <usize>k0 * rowB + (<usize>j << 2);
    for (let q = 0; q < kc; q++) {
      const v = v128.load32_splat(p);
      a0 = f32x4.add(a0, f32x4.mul(v, v128.load(bp)));
      a1 = f32x4.add(a1, f32x4.mul(v, v128.load(bp, 16)));
      p += 4;
      bp += rowB;
    }
    if (last && relu) {
      a0 = f32x4.max(a0, f32x4.splat(0));
      a1 = f32x4.max(a1, f32x4.splat(0));
    }
    v128.store(cp, a0);
    v128.store(cp, a1, 16);
  }
}

// ---- Winograd F(2x2, 3x3): 3x3 stride-1 convolutions with 16 multiplies per 2x2 outputs, not 36 ----
//
// Per 2x2 output tile, with d the 4x4 input patch and g a 3x3 filter:
//   y = A^T [ (G g G^T) (.) (B^T d B) ] A
// The elementwise product, summed over input channels, is 16 independent matrix products
// (one per position of the 4x4 transform): [tiles, ci] . [ci, co], run by `matmul` above.
// Transforms are SIMD over 4 channels. Coefficients are 0, +-1 and +-1/2: exact in float32.

/** u [16, ci, co] = G g G^T for each (ci, co) of w [3, 3, ci, co]. Needs co % 4 == 0. */
function winogradFilter(w: usize, u: usize, ci: i32, co: i32): void {
  const tap = <usize>(ci * co) << 2; // bytes between filter taps, and between u positions
  const half = f32x4.splat(0.5);
  for (let c = 0; c < ci; c++) {
    for (let o = 0; o < co; o += 4) {
      const at = <usize>(c * co + o) << 2;
      const g = w + at;
      const g00 = v128.load(g), g01 = v128.load(g + tap), g02 = v128.load(g + 2 * tap);
      const g10 = v128.load(g + 3 * tap), g11 = v128.load(g + 4 * tap), g12 = v128.load(g + 5 * tap);
      const g20 = v128.load(g + 6 * tap), g21 = v128.load(g + 7 * tap), g22 = v128.load(g + 8 * tap);
      // G g: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2.
      const s0 = f32x4.add(g00, g20), s1 = f32x4.add(g01, g21), s2 = f32x4.add(g02, g22);
      const t10 = f32x4.mul(f32x4.add(s0, g10), half), t11 = f32x4.mul(f32x4.add(s1, g11), half), t12 = f32x4.mul(f32x4.add(s2, g12), half);
      const t20 = f32x4.mul(f32x4.sub(s0, g10), half), t21 = f32x4.mul(f32x4.sub(s1, g11), half), t22 = f32x4.mul(f32x4.sub(s2, g12), half);
      const d = u + at;
      winogradFilterRow(d, tap, g00, g01, g02, half);
      winogradFilterRow(d + 4 * tap, tap, t10, t11, t12, half);
      winogradFilterRow(d + 8 * tap, tap, t20, t21, t22, half);
      winogradFilterRow(d + 12 * tap, tap, g20, g21, g22, half);
    }
  }
}

/** One row of (G g) times G^T: r0, (r0+r1+r2)/2, (r0-r1+r2)/2, r2. */
@inline function winogradFilterRow(d: usize, tap: usize, r0: v128, r1: v128, r2: v128, half: v128): void {
  const s = f32x4.add(r0, r2);
  v128.store(d, r0);
  v128.store(d + tap, f32x4.mul(f32x4.add(s, r1), half));
  v128.store(d + 2 * tap, f32x4.mul(f32x4.sub(s, r1), half));
  v128.store(d + 3 * tap, r2);
}

/** One row of B^T d (its 4 columns) times B, stored at 4 consecutive positions `pos` apart. */
@inline function winogradInputRow(v: usize, pos: usize, t0: v128, t1: v128, t2: v128, t3: v128): void {
  v128.store(v, f32x4.sub(t0, t2));
  v128.store(v + pos, f32x4.add(t1, t2));
  v128.store(v + 2 * pos, f32x4.sub(t2, t1));
  v128.store(v + 3 * pos, f32x4.sub(t1, t3));
}

/**
 * B^T d B for one tile and 4 channels, d being the 4x4 patch at `d` (rows `row` bytes apart,
 * pixels `px` apart); stored at v + p * pos for the 16 positions p. B^T's rows combine two
 * patch rows each (d0-d2, d1+d2, d2-d1, d1-d3), so rows 1 and 2 stay loaded and rows 0 and 3
 * are loaded when needed: 12 live vectors, no spills.
 */
@inline function winogradInputTile(d: usize, row: usize, px: usize, v: usize, pos: usize): void {
  const r1 = d + row;
  const r2 = d + 2 * row;
  const d10 = v128.load(r1), d11 = v128.load(r1 + px), d12 = v128.load(r1 + 2 * px), d13 = v128.load(r1 + 3 * px);
  const d20 = v128.load(r2), d21 = v128.load(r2 + px), d22 = v128.load(r2 + 2 * px), d23 = v128.load(r2 + 3 * px);
  winogradInputRow(v + 4 * pos, pos, f32x4.add(d10, d20), f32x4.add(d11, d21), f32x4.add(d12, d22), f32x4.add(d13, d23));
  winogradInputRow(v + 8 * pos, pos, f32x4.sub(d20, d10), f32x4.sub(d21, d11), f32x4.sub(d22, d12), f32x4.sub(d23, d13));
  const r3 = d + 3 * row;
  winogradInputRow(
    v + 12 * pos, pos,
    f32x4.sub(d10, v128.load(r3)), f32x4.sub(d11, v128.load(r3 + px)), f32x4.sub(d12, v128.load(r3 + 2 * px)), f32x4.sub(d13, v128.load(r3 + 3 * px)),
  );
  winogradInputRow(
    v, pos,
    f32x4.sub(v128.load(d), d20), f32x4.sub(v128.load(d + px), d21), f32x4.sub(v128.load(d + 2 * px), d22), f32x4.sub(v128.load(d + 3 * px), d23),
  );
}

/**
 * Transforms the tile whose 4x4 input patch starts at (r0, c0) of `image`, all channels, into
 * v (channel c of position p at v + p * pos + 4c). A patch that crosses the image's edge is first
 * gathered, zero-padded, into `patch` (16 pixels), so the transform itself never checks bounds.
 */
function winogradInputTiles(image: usize, patch: usize, v: usize, pos: usize, r0: i32, c0: i32, inH: i32, inW: i32, ci: i32): void {
  const xPixel = <usize>ci << 2;
  let d = image + <usize>(r0 * inW + c0) * xPixel;
  let row = <usize>inW * xPixel;
  if (r0 < 0 || c0 < 0 || r0 + 4 > inH || c0 + 4 > inW) {
    for (let r = 0; r < 4; r++) {
      for (let s = 0; s < 4; s++) {
        const to = patch + <usize>(r * 4 + s) * xPixel;
        const ih = r0 + r;
        const iw = c0 + s;
        if (ih >= 0 && ih < inH && iw >= 0 && iw < inW) memory.copy(to, image + <usize>(ih * inW + iw) * xPixel, xPixel);
        else memory.fill(to, 0, xPixel);
      }
    }
    d = patch;
    row = 4 * xPixel;
  }
  for (let c = 0; c < ci; c += 4) {
    const at = <usize>c << 2;
    winogradInputTile(d + at, row, xPixel, v + at, pos);
  }
}

/**
 * Input transforms of tiles t0 .. t0 + n - 1 (2x2 output tiles numbered image by image, row by
 * row, tilesW per row) into v [16, n, ci]: the first step of both Winograd kernels.
 */
function winogradInputChunk(
  x: usize, patch: usize, v: usize, t0: i32, n: i32, perImage: i32, tilesW: i32, inH: i32, inW: i32, ci: i32, pt: i32, pl: i32,
): void {
  const vPos = <usize>(n * ci) << 2;
  for (let t = 0; t < n; t++) {
    const tile = t0 + t;
    const b = tile / perImage;
    const k = tile - b * perImage;
    const th = k / tilesW;
    const image = x + <usize>(b * inH * inW) * (<usize>ci << 2);
    winogradInputTiles(image, patch, v + (<usize>(t * ci) << 2), vPos, 2 * th - pt, 2 * (k - th * tilesW) - pl, inH, inW, ci);
  }
}

/**
 * Where output tile `tile` starts: its top-left output pixel (flat index over batch, rows and
 * columns) times 4, plus 2 if the tile has a second row and 1 if it has a second column (the
 * last row/column of an odd-sized output has only one).
 */
@inline function tileOutput(tile: i32, perImage: i32, tilesW: i32, outH: i32, outW: i32): i32 {
  const b = tile / perImage;
  const k = tile - b * perImage;
  const th = k / tilesW;
  const i0 = 2 * th;
  const j0 = 2 * (k - th * tilesW);
  return (((b * outH + i0) * outW + j0) << 2) | (i0 + 1 < outH ? 2 : 0) | (j0 + 1 < outW ? 1 : 0);
}

/**
 * 3x3 stride-1 convolution, NHWC, zeros outside the input, optional bias and ReLU, as `conv2d`
 * computes it, by Winograd F(2x2, 3x3). Tiles are processed `chunk` at a time through scratch:
 * u [16, ci, co] (the transformed filter), then v [16, chunk, ci] and m [16, chunk, co], which
 * stay in L2, then a 16-pixel patch for tiles at the image's edge. Needs ci % 4 == 0 and co % 8 == 0.
 */
export function winogradConv3x3(
  x: usize, w: usize, bias: usize, y: usize, scratch: usize, hasBias: i32, relu: i32,
  batch: i32, inH: i32, inW: i32, ci: i32, outH: i32, outW: i32, co: i32, pt: i32, pl: i32, chunk: i32,
): void {
  const u = scratch;
  const v = u + (<usize>(16 * ci * co) << 2);
  const m = v + (<usize>(16 * chunk * ci) << 2);
  const patch = m + (<usize>(16 * chunk * co) << 2);
  winogradFilter(w, u, ci, co);
  const yPixel = <usize>co << 2;
  const tilesW = (outW + 1) >> 1;
  const perImage = ((outH + 1) >> 1) * tilesW;
  const total = batch * perImage;
  const zero = f32x4.splat(0);
  for (let t0 = 0; t0 < total; t0 += chunk) {
    const n = total - t0 < chunk ? total - t0 : chunk;
    const vPos = <usize>(n * ci) << 2; // bytes between positions in v
    const mPos = <usize>(n * co) << 2;
    winogradInputChunk(x, patch, v, t0, n, perImage, tilesW, inH, inW, ci, pt, pl);
    for (let p = 0; p < 16; p++) {
      matmul(v + <usize>p * vPos, u + (<usize>(p * ci * co) << 2), 0, m + <usize>p * mPos, 0, 0, n, ci, co);
    }
    for (let t = 0; t < n; t++) {
      const at = tileOutput(t0 + t, perImage, tilesW, outH, outW);
      const down = (at & 2) != 0;
      const right = (at & 1) != 0;
      const yp = y + <usize>(at >> 2) * yPixel;
      for (let o = 0; o < co; o += 4) {
        const mp = m + (<usize>(t * co + o) << 2);
        // A^T M: rows m0 + m1 + m2 and m1 - m2 - m3, for each of the 4 columns.
        const c0 = winogradOutputCol(mp, mPos, 0);
        const c1 = winogradOutputCol(mp, mPos, 1);
        const c2 = winogradOutputCol(mp, mPos, 2);
        const c3 = winogradOutputCol(mp, mPos, 3);
        const h0 = winogradOutputCol(mp, mPos, 4);
        const h1 = winogradOutputCol(mp, mPos, 5);
        const h2 = winogradOutputCol(mp, mPos, 6);
        const h3 = winogradOutputCol(mp, mPos, 7);
        const bo = hasBias ? v128.load(bias + (<usize>o << 2)) : zero;
        let y00 = f32x4.add(f32x4.add(f32x4.add(c0, c1), c2), bo);
        let y01 = f32x4.add(f32x4.sub(f32x4.sub(c1, c2), c3), bo);
        let y10 = f32x4.add(f32x4.add(f32x4.add(h0, h1), h2), bo);
        let y11 = f32x4.add(f32x4.sub(f32x4.sub(h1, h2), h3), bo);
        if (relu) {
          y00 = f32x4.max(y00, zero); y01 = f32x4.max(y01, zero);
          y10 = f32x4.max(y10, zero); y11 = f32x4.max(y11, zero);
        }
        const d = yp + (<usize>o << 2);
        v128.store(d, y00);
        if (right) v128.store(d + yPixel, y01);
        if (down) {
          const d1 = d + <usize>outW * yPixel;
          v128.store(d1, y10);
          if (right) v128.store(d1 + yPixel, y11);
        }
      }
    }
  }
}

/**
 * Column `which` & 3 of A^T M for one tile and 4 channels: row 0 (m0 + m1 + m2) when which < 4,
 * else row 1 (m1 - m2 - m3), where mr is M's row r at that column.
 */
@inline function winogradOutputCol(mp: usize, mPos: usize, which: i32): v128 {
  const col = <usize>(which & 3);
  const m0 = v128.load(mp + col * mPos);
  const m1 = v128.load(mp + (4 + col) * mPos);
  const m2 = v128.load(mp + (8 + col) * mPos);
  const m3 = v128.load(mp + (12 + col) * mPos);
  return which < 4 ? f32x4.add(f32x4.add(m0, m1), m2) : f32x4.sub(f32x4.sub(m1, m2), m3);
}

/**
 * c [M,N] += a[K,M]^T . b [K,N], row-major, a's rows `rowA` bytes apart (conv2dFilterGrad walks
 * pixels of x with it): a sum of K outer products, streamed over K with a register block of
 * 4 rows x 8 columns. Needs m % 4 == 0 and n % 8 == 0.
 */
function matmulTransposedA(a: usize, rowA: usize, b: usize, c: usize, k: i32, m: i32, n: i32): void {
  const rowB = <usize>n << 2;
  for (let r = 0; r < m; r += 4) {
    for (let j = 0; j < n; j += 8) {
      const d = c + <usize>r * rowB + (<usize>j << 2);
      let a00 = v128.load(d), a01 = v128.load(d, 16);
      let a10 = v128.load(d + rowB), a11 = v128.load(d + rowB, 16);
      let a20 = v128.load(d + 2 * rowB), a21 = v128.load(d + 2 * rowB, 16);
      let a30 = v128.load(d + 3 * rowB), a31 = v128.load(d + 3 * rowB, 16);
      let ap = a + (<usize>r << 2);
      let bp = b + (<usize>j << 2);
      for (let q = 0; q < k; q++) {
        const g0 = v128.load(bp);
        const g1 = v128.load(bp, 16);
        const v0 = v128.load32_splat(ap);
        const v1 = v128.load32_splat(ap, 4);
        const v2 = v128.load32_splat(ap, 8);
        const v3 = v128.load32_splat(ap, 12);
        a00 = f32x4.add(a00, f32x4.mul(v0, g0));
        a01 = f32x4.add(a01, f32x4.mul(v0, g1));
        a10 = f32x4.add(a10, f32x4.mul(v1, g0));
        a11 = f32x4.add(a11, f32x4.mul(v1, g1));
        a20 = f32x4.add(a20, f32x4.mul(v2, g0));
        a21 = f32x4.add(a21, f32x4.mul(v2, g1));
        a30 = f32x4.add(a30, f32x4.mul(v3, g0));
        a31 = f32x4.add(a31, f32x4.mul(v3, g1));
        ap += rowA;
        bp += rowB;
      }
      v128.store(d, a00); v128.store(d, a01, 16);
      v128.store(d + rowB, a10); v128.store(d + rowB, a11, 16);
      v128.store(d + 2 * rowB, a20); v128.store(d + 2 * rowB, a21, 16);
      v128.store(d + 3 * rowB, a30); v128.store(d + 3 * rowB, a31, 16);
    }
  }
}

/** dy at (row, col), 4 channels, or zeros past the last row/column of a partial tile. */
@inline function gradAt(p: usize, ok: bool): v128 {
  return ok ? v128.load(p) : f32x4.splat(0);
}

/** One row (a, b) of G' dy times G'^T: a, (a+b)/2, (a-b)/2, b, at 4 consecutive positions. */
@inline function winogradGradRow(e: usize, pos: usize, a: v128, b: v128, half: v128): void {
  v128.store(e, a);
  v128.store(e + pos, f32x4.mul(f32x4.add(a, b), half));
  v128.store(e + 2 * pos, f32x4.mul(f32x4.sub(a, b), half));
  v128.store(e + 3 * pos, b);
}

/** m [4x4 positions] row r of A'^T (s . M) for one (ci, 4 co): rows m0+m1+m2, m1-m2, m1+m2+m3 (signed). */
@inline function filterGradCol(mp: usize, pos: usize, col: usize, which: i32): v128 {
  const m0 = v128.load(mp + col * pos);
  const m1 = v128.load(mp + (4 + col) * pos);
  const m2 = v128.load(mp + (8 + col) * pos);
  // Position row 3 carries the sign flip (see winogradFilterGrad3x3).
  const m3 = v128.load(mp + (12 + col) * pos);
  const r = which == 0 ? f32x4.add(f32x4.add(m0, m1), m2) : which == 1 ? f32x4.sub(m1, m2) : f32x4.sub(f32x4.add(m1, m2), m3);
  return col == 3 ? f32x4.neg(r) : r;
}

/**
 * Filter gradient of a 3x3 stride-1 convolution, NHWC, by Winograd F(3x3, 2x2):
 *   dw[kh,kw,ci,co] = sum_{b,i,j} x[b, i+kh-pt, j+kw-pl, ci] * dy[b,i,j,co]
 * Per 2x2 tile of dy and its 4x4 input patch d, the 3x3 contribution is A'^T [(G' dy G'^T) (.)
 * (B'^T d B')] A'; summed over tiles that is 16 products [ci, tiles] . [tiles, co] accumulated in
 * scratch m [16, ci, co] (zeroed by the caller), then one output transform. B'^T equals the
 * forward B^T with its last row negated, so the input tiles come from winogradInputTiles and the
 * sign of row/column 3 is restored in the output transform. Scratch: m, then v [16, chunk, ci],
 * e [16, chunk, co] and a 16-pixel patch. Writes dw. Needs ci % 4 == 0 and co % 8 == 0.
 */
export function winogradFilterGrad3x3(
  x: usize, dy: usize, dw: usize, scratch: usize,
  batch: i32, inH: i32, inW: i32, ci: i32, outH: i32, outW: i32, co: i32, pt: i32, pl: i32, chunk: i32,
): void {
  const m = scratch;
  const v = m + (<usize>(16 * ci * co) << 2);
  const e = v + (<usize>(16 * chunk * ci) << 2);
  const patch = e + (<usize>(16 * chunk * co) << 2);
  const xPixel = <usize>ci << 2;
  const dyPixel = <usize>co << 2;
  const tilesW = (outW + 1) >> 1;
  const perImage = ((outH + 1) >> 1) * tilesW;
  const total = batch * perImage;
  const half = f32x4.splat(0.5);
  for (let t0 = 0; t0 < total; t0 += chunk) {
    const n = total - t0 < chunk ? total - t0 : chunk;
    const vPos = <usize>(n * ci) << 2;
    const ePos = <usize>(n * co) << 2;
    winogradInputChunk(x, patch, v, t0, n, perImage, tilesW, inH, inW, ci, pt, pl);
    for (let t = 0; t < n; t++) {
      const at = tileOutput(t0 + t, perImage, tilesW, outH, outW);
      const down = (at & 2) != 0;
      const right = (at & 1) != 0;
      const g = dy + <usize>(at >> 2) * dyPixel;
      const below = <usize>outW * dyPixel;
      for (let o = 0; o < co; o += 4) {
        const p = g + (<usize>o << 2);
        const d00 = v128.load(p);
        const d01 = gradAt(p + dyPixel, right);
        const d10 = gradAt(p + below, down);
        const d11 = gradAt(p + below + dyPixel, down && right);
        // G' dy: rows dy0, (dy0+dy1)/2, (dy0-dy1)/2, dy1; then each row times G'^T.
        const ep = e + (<usize>(t * co + o) << 2);
        winogradGradRow(ep, ePos, d00, d01, half);
        winogradGradRow(ep + 4 * ePos, ePos, f32x4.mul(f32x4.add(d00, d10), half), f32x4.mul(f32x4.add(d01, d11), half), half);
        winogradGradRow(ep + 8 * ePos, ePos, f32x4.mul(f32x4.sub(d00, d10), half), f32x4.mul(f32x4.sub(d01, d11), half), half);
        winogradGradRow(ep + 12 * ePos, ePos, d10, d11, half);
      }
    }
    for (let p = 0; p < 16; p++) {
      matmulTransposedA(v + <usize>p * vPos, xPixel, e + <usize>p * ePos, m + (<usize>(p * ci * co) << 2), n, ci, co);
    }
  }
  // dw = A'^T (s . M) A', s = -1 on position row 3 and column 3 (the B' vs B sign).
  const pos = <usize>(ci * co) << 2;
  for (let c = 0; c < ci; c++) {
    for (let o = 0; o < co; o += 4) {
      const at = <usize>(c * co + o) << 2;
      const mp = m + at;
      const d = dw + at;
      // Rows of A'^T (s.M) per column, with the row-3 sign folded in (m3 enters negated).
      const r00 = filterGradCol(mp, pos, 0, 0), r01 = filterGradCol(mp, pos, 1, 0), r02 = filterGradCol(mp, pos, 2, 0), r03 = filterGradCol(mp, pos, 3, 0);
      const r10 = filterGradCol(mp, pos, 0, 1), r11 = filterGradCol(mp, pos, 1, 1), r12 = filterGradCol(mp, pos, 2, 1), r13 = filterGradCol(mp, pos, 3, 1);
      const r20 = filterGradCol(mp, pos, 0, 2), r21 = filterGradCol(mp, pos, 1, 2), r22 = filterGradCol(mp, pos, 2, 2), r23 = filterGradCol(mp, pos, 3, 2);
      // ... times A': columns c0+c1+c2, c1-c2, c1+c2+c3 for each row; taps are pos bytes apart.
      v128.store(d, f32x4.add(f32x4.add(r00, r01), r02));
      v128.store(d + pos, f32x4.sub(r01, r02));
      v128.store(d + 2 * pos, f32x4.add(f32x4.add(r01, r02), r03));
      v128.store(d + 3 * pos, f32x4.add(f32x4.add(r10, r11), r12));
      v128.store(d + 4 * pos, f32x4.sub(r11, r12));
      v128.store(d + 5 * pos, f32x4.add(f32x4.add(r11, r12), r13));
      v128.store(d + 6 * pos, f32x4.add(f32x4.add(r20, r21), r22));
      v128.store(d + 7 * pos, f32x4.sub(r21, r22));
      v128.store(d + 8 * pos, f32x4.add(f32x4.add(r21, r22), r23));
    }
  }
}

/**
 * One Keras RMSprop step over n floats, in float32 and in Keras' order of operations (so the
 * result is bit-identical to the same formula as separate tensor ops):
 *   accOut = acc * rho + (g * g) * (1 - rho)
 *   wOut   = w - (g * lr) / (sqrt(accOut) + eps)
 * One pass instead of eight.
 */
export function rmsprop(acc: usize, w: usize, g: usize, accOut: usize, wOut: usize, n: i32, lr: f32, rho: f32, oneMinusRho: f32, eps: f32): void {
  const vLr = f32x4.splat(lr), vRho = f32x4.splat(rho), vKeep = f32x4.splat(oneMinusRho), vEps = f32x4.splat(eps);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const at = <usize>i << 2;
    const gi = v128.load(g + at);
    const a = f32x4.add(f32x4.mul(v128.load(acc + at), vRho), f32x4.mul(f32x4.mul(gi, gi), vKeep));
    v128.store(accOut + at, a);
    v128.store(wOut + at, f32x4.sub(v128.load(w + at), f32x4.div(f32x4.mul(gi, vLr), f32x4.add(f32x4.sqrt(a), vEps))));
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    const gi = load<f32>(g + at);
    const a = load<f32>(acc + at) * rho + gi * gi * oneMinusRho;
    store<f32>(accOut + at, a);
    store<f32>(wOut + at, load<f32>(w + at) - (gi * lr) / (sqrt<f32>(a) + eps));
  }
}

/**
 * The loader's pixel mapping: out[j] = table[(j mod channels)·256 + pixels[j]] for j < n (uint8
 * pixels, interleaved channels → model inputs through a 256-entry float table per channel). A
 * lookup, not arithmetic, so the result is the table's own bits for any formula. Three channels
 * (RGB), the common case, go a pixel at a time with no channel counter.
 */
export function mapPixels(pixels: usize, table: usize, out: usize, n: i32, channels: i32): void {
  if (channels == 3 && n % 3 == 0) {
    const t1 = table + 1024;
    const t2 = table + 2048;
    const end = pixels + <usize>n;
    let p = pixels;
    let o = out;
    while (p < end) {
      store<f32>(o, load<f32>(table + (<usize>load<u8>(p) << 2)));
      store<f32>(o, load<f32>(t1 + (<usize>load<u8>(p, 1) << 2)), 4);
      store<f32>(o, load<f32>(t2 + (<usize>load<u8>(p, 2) << 2)), 8);
      p += 3;
      o += 12;
    }
    return;
  }
  let base: usize = table;
  let ch = 0;
  for (let j = 0; j < n; j++) {
    store<f32>(out + (<usize>j << 2), load<f32>(base + (<usize>load<u8>(pixels + <usize>j) << 2)));
    ch++;
    base += 1024;
    if (ch == channels) {
      ch = 0;
      base = table;
    }
  }
}
