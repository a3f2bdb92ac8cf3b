// Bilinear resampling of one uint8 HWC image through an affine map, with scipy.ndimage's
// boundary modes as `affine_transform(order=1)` applies them (scipy >= 1.6), then flips.
//
// Per axis of length n, a sample coordinate x (from the affine map) is handled as scipy does:
//   nearest  : taps floor(x), floor(x)+1 are clamped to [0, n-1] (= clamp x to the image).
//   constant : if x < 0 or x > n-1 on either axis, the whole output pixel is cval (no blending
//              with cval at the border: scipy's 'constant', not 'grid-constant').
//   reflect  : half-sample symmetric extension (d c b a | a b c d | d c b a); each tap index k
//              maps to k mod 2n, then 2n-1-k' if k' >= n. Exactly bilinear on the mirrored image.
//   wrap     : scipy's 'wrap', NOT a periodic tiling: x is first reduced with period n-1
//              (x < 0: x += (n-1)·(trunc(-x/(n-1)) + 1); x > n-1: x -= (n-1)·trunc(x/(n-1))),
//              so the first and last samples overlap — e.g. shifting a row left by 2 px brings in
//              columns 1, 2 rather than 0, 1. (scipy's 'grid-wrap' is the true tiling.)
// Weights are scipy's: w0 = 1 - f, w1 = 1 - w0 with f = x - floor(x); the output is the
// weighted sum of the 4 taps per channel, rounded half-up to uint8.
import type { AffineMap, FillMode } from './transform.js';

/** Maps a tap index outside [0, n-1] back inside, for 'nearest' and 'reflect'. */
function tapIndex(k: number, n: number, reflect: boolean): number {
  if (!reflect) return k < 0 ? 0 : k >= n ? n - 1 : k;
  const period = 2 * n;
  let m = k % period;
  if (m < 0) m += period;
  return m >= n ? period - 1 - m : m;
}

/** scipy's map_coordinate for 'wrap' (period n - 1). */
function wrapCoordinate(x: number, n: number): number {
  if (n <= 1) return 0;
  const sz = n - 1;
  if (x < 0) return x + sz * (Math.trunc(-x / sz) + 1);
  if (x > sz) return x - sz * Math.trunc(x / sz);
  return x;
}

export interface WarpTarget {
  src: Uint8Array;
  /** Byte offset of the source image in `src`. */
  srcOffset: number;
  dst: Uint8Array;
  /** Byte offset of the output image in `dst`. */
  dstOffset: number;
  height: number;
  width: number;
  channels: number;
}

/**
 * Writes the augmented image: output(i, j) = bilinear(input, map(i, j)), stored at the flipped
 * position. Source and destination must not overlap.
 */
export function warpImage(t: WarpTarget, map: AffineMap, fillMode: FillMode, cval: number, flipHorizontal: boolean, flipVertical: boolean): void {
  const { src, dst, srcOffset, dstOffset, height: H, width: W, channels: C } = t;
  const { rowI, rowJ, rowOffset, colI, colJ, colOffset } = map;
  const rowStride = W * C;
  const hMax = H - 1;
  const wMax = W - 1;
  const constant = fillMode === 'constant';
  const wrap = fillMode === 'wrap';
  const reflect = fillMode === 'reflect';
  const fill = cval < 0 ? 0 : cval > 255 ? 255 : Math.floor(cval + 0.5);
  // Output position steps: flips are folded into where each warped pixel is stored.
  const jStep = flipHorizontal ? -C : C;
  for (let i = 0; i < H; i++) {
    // Coordinates step along the row (about 20% faster than scipy's i·a + j·b + o per pixel;
    // they differ from it by ~1e-14 px, far below what changes a rounded uint8).
    let rowAt = i * rowI + rowOffset;
    let colAt = i * colI + colOffset;
    const oi = flipVertical ? hMax - i : i;
    let d = dstOffset + oi * rowStride + (flipHorizontal ? wMax * C : 0);
    for (let j = 0; j < W; j++, d += jStep, rowAt += rowJ, colAt += colJ) {
      let r = rowAt;
      let c = colAt;
      if (r >= 0 && c >= 0 && r < hMax && c < wMax) {
        // Interior: all four taps inside, no boundary mapping (the common case).
        const r0 = r | 0;
        const c0 = c | 0;
        const wr0 = 1 - (r - r0);
        const wr1 = 1 - wr0;
        const wc0 = 1 - (c - c0);
        const wc1 = 1 - wc0;
        const w00 = wr0 * wc0;
        const w01 = wr0 * wc1;
        const w10 = wr1 * wc0;
        const w11 = wr1 * wc1;
        const p = srcOffset + r0 * rowStride + c0 * C;
        const q = p + rowStride;
        for (let k = 0; k < C; k++) {
          const v = src[p + k]! * w00 + src[p + C + k]! * w01 + src[q + k]! * w10 + src[q + C + k]! * w11;
          dst[d + k] = (v + 0.5) | 0;
        }
        continue;
      }
      if (constant) {
        if (!(r >= 0 && c >= 0 && r <= hMax && c <= wMax)) {
          for (let k = 0; k < C; k++) dst[d + k] = fill;
          continue;
        }
      } else if (wrap) {
        r = wrapCoordinate(r, H);
        c = wrapCoordinate(c, W);
      }
      const rf = Math.floor(r);
      const cf = Math.floor(c);
      const wr0 = 1 - (r - rf);
      const wr1 = 1 - wr0;
      const wc0 = 1 - (c - cf);
      const wc1 = 1 - wc0;
      // After the checks above, constant/wrap taps can only overshoot by one with weight 0.
      const r0 = tapIndex(rf, H, reflect);
      const r1 = tapIndex(rf + 1, H, reflect);
      const c0 = tapIndex(cf, W, reflect);
      const c1 = tapIndex(cf + 1, W, reflect);
      const p0 = srcOffset + r0 * rowStride;
      const p1 = srcOffset + r1 * rowStride;
      const a = c0 * C;
      const b = c1 * C;
      const w00 = wr0 * wc0;
      const w01 = wr0 * wc1;
      const w10 = wr1 * wc0;
      const w11 = wr1 * wc1;
      for (let k = 0; k < C; k++) {
        const v = src[p0 + a + k]! * w00 + src[p0 + b + k]! * w01 + src[p1 + a + k]! * w10 + src[p1 + b + k]! * w11;
        dst[d + k] = (v + 0.5) | 0;
      }
    }
  }
}
