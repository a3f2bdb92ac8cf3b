// AssemblyScript (compiled to wasm SIMD by `npm run build`; see lib/tf/kernels/simd-module.ts).
// Kernels that XNNPACK, as tfjs-backend-wasm exposes it, can only reach through big transposes
// and per-call weight packing. Pointers are byte offsets into this module's own memory; the
// caller copies operands in and results out.

/**
 * Conv2D filter gradient, NHWC, accumulated into dw (the caller zeroes it):
 *   dw[kh,kw,ci,co] += sum_{b,i,j} x[b, i*sh+kh-pt, j*sw+kw-pl, ci] * dy[b,i,j,co]
 * Windows hanging over the padding contribute zero, so out-of-range pixels are skipped.
 * Register block: 4 input channels x 8 output channels (8 f32x4 accumulators), streamed over
 * the pixels of one output row at a time, whose x and dy rows sit in L1; input channels past
 * the last multiple of 4 go one at a time. Needs co % 8 == 0.
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
          for (let c = 0; c < ci4; c += 4) {
            const dwRows = dwTap + <usize>c * dyPixel;
            const xc = xStart + (<usize>c << 2);
            for (let o = 0; o < co; o += 8) {
              const d = dwRows + (<usize>o << 2);
              let a00 = v128.load(d);
              let a01 = v128.load(d, 16);
              let a10 = v128.load(d + dyPixel);
              let a11 = v128.load(d + dyPixel, 16);
              let a20 = v128.load(d + 2 * dyPixel);
              let a21 = v128.load(d + 2 * dyPixel, 16);
              let a30 = v128.load(d + 3 * dyPixel);
              let a31 = v128.load(d + 3 * dyPixel, 16);
              let xp = xc;
              let gp = dyStart + (<usize>o << 2);
              for (let k = 0; k < n; k++) {
                const g0 = v128.load(gp);
                const g1 = v128.load(gp, 16);
                const v0 = v128.load32_splat(xp);
                const v1 = v128.load32_splat(xp, 4);
                const v2 = v128.load32_splat(xp, 8);
                const v3 = v128.load32_splat(xp, 12);
                a00 = f32x4.add(a00, f32x4.mul(v0, g0));
                a01 = f32x4.add(a01, f32x4.mul(v0, g1));
                a10 = f32x4.add(a10, f32x4.mul(v1, g0));
                a11 = f32x4.add(a11, f32x4.mul(v1, g1));
                a20 = f32x4.add(a20, f32x4.mul(v2, g0));
                a21 = f32x4.add(a21, f32x4.mul(v2, g1));
                a30 = f32x4.add(a30, f32x4.mul(v3, g0));
                a31 = f32x4.add(a31, f32x4.mul(v3, g1));
                xp += xStep;
                gp += dyPixel;
              }
              v128.store(d, a00);
              v128.store(d, a01, 16);
              v128.store(d + dyPixel, a10);
              v128.store(d + dyPixel, a11, 16);
              v128.store(d + 2 * dyPixel, a20);
              v128.store(d + 2 * dyPixel, a21, 16);
              v128.store(d + 3 * dyPixel, a30);
              v128.store(d + 3 * dyPixel, a31, 16);
            }
          }
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
