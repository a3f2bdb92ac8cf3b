// A deliberately plain model of Keras' apply_transform + scipy.ndimage.affine_transform(order=1),
// step by step as those libraries do it (3×3 matrices, centring, axis swap, per-channel
// resampling with scipy's coordinate mapping, then flips), in float64 with no rounding.
// The optimised code in lib/augment is checked against it.
import type { FillMode, TransformParams } from '../lib/augment/transform.js';

type Matrix = number[][];

function dot(a: Matrix, b: Matrix): Matrix {
  return a.map((row) => b[0]!.map((_, c) => row.reduce((sum, v, k) => sum + v * b[k]![c]!, 0)));
}

/** apply_affine_transform's matrix building, then the P·M·P swap for row_axis < col_axis. */
export function kerasScipyMatrix(p: TransformParams, h: number, w: number): { matrix: Matrix; offset: number[] } | null {
  let m: Matrix | null = null;
  const compose = (f: Matrix) => {
    m = m === null ? f : dot(m, f);
  };
  if (p.theta !== 0) {
    const t = (p.theta / 180) * Math.PI;
    compose([
      [Math.cos(t), -Math.sin(t), 0],
      [Math.sin(t), Math.cos(t), 0],
      [0, 0, 1],
    ]);
  }
  if (p.tx !== 0 || p.ty !== 0)
    compose([
      [1, 0, p.tx],
      [0, 1, p.ty],
      [0, 0, 1],
    ]);
  if (p.shear !== 0) {
    const s = (p.shear / 180) * Math.PI;
    compose([
      [1, -Math.sin(s), 0],
      [0, Math.cos(s), 0],
      [0, 0, 1],
    ]);
  }
  if (p.zx !== 1 || p.zy !== 1)
    compose([
      [p.zx, 0, 0],
      [0, p.zy, 0],
      [0, 0, 1],
    ]);
  if (m === null) return null;
  // transform_matrix_offset_center(matrix, h, w)
  const ox = h / 2 - 0.5;
  const oy = w / 2 - 0.5;
  let t = dot(
    dot(
      [
        [1, 0, ox],
        [0, 1, oy],
        [0, 0, 1],
      ],
      m,
    ),
    [
      [1, 0, -ox],
      [0, 1, -oy],
      [0, 0, 1],
    ],
  );
  // transform_matrix[:, [0, 1]] = transform_matrix[:, [1, 0]]
  t = t.map((row) => [row[1]!, row[0]!, row[2]!]);
  // transform_matrix[[0, 1]] = transform_matrix[[1, 0]]
  t = [t[1]!, t[0]!, t[2]!];
  return { matrix: [t[0]!.slice(0, 2), t[1]!.slice(0, 2)], offset: [t[0]![2]!, t[1]![2]!] };
}

/** scipy's map_coordinate (ni_interpolation.c) for the modes used here; -1 means "outside". */
function mapCoordinate(x: number, len: number, mode: FillMode | 'mirror'): number {
  if (x < 0) {
    switch (mode) {
      case 'mirror': {
        if (len <= 1) return 0;
        const sz2 = 2 * len - 2;
        x = sz2 * Math.trunc(-x / sz2) + x;
        return x <= 1 - len ? x + sz2 : -x;
      }
      case 'reflect': {
        if (len <= 1) return 0;
        const sz2 = 2 * len;
        if (x < -sz2) x = sz2 * Math.trunc(-x / sz2) + x;
        return x < -len ? x + sz2 : (x > -1e-15 ? 1e-15 : -x) - 1;
      }
      case 'wrap': {
        if (len <= 1) return 0;
        const sz = len - 1;
        return x + sz * (Math.trunc(-x / sz) + 1);
      }
      case 'nearest':
        return 0;
      case 'constant':
        return -1;
    }
  } else if (x > len - 1) {
    switch (mode) {
      case 'mirror': {
        if (len <= 1) return 0;
        const sz2 = 2 * len - 2;
        x -= sz2 * Math.trunc(x / sz2);
        return x >= len ? sz2 - x : x;
      }
      case 'reflect': {
        if (len <= 1) return 0;
        const sz2 = 2 * len;
        x -= sz2 * Math.trunc(x / sz2);
        return x >= len ? sz2 - x - 1 : x;
      }
      case 'wrap': {
        if (len <= 1) return 0;
        const sz = len - 1;
        return x - sz * Math.trunc(x / sz);
      }
      case 'nearest':
        return len - 1;
      case 'constant':
        return -1;
    }
  }
  return x;
}

/** scipy.ndimage.affine_transform(channel, matrix, offset, order=1, mode, cval) on one H×W plane. */
export function scipyAffineOrder1(plane: Float64Array, h: number, w: number, matrix: Matrix, offset: number[], mode: FillMode, cval: number): Float64Array {
  const out = new Float64Array(h * w);
  const dims = [h, w];
  // Tap indices outside the image use mirror for 'constant'/'wrap', else the mode itself.
  const tapMode = mode === 'constant' || mode === 'wrap' ? 'mirror' : mode;
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const taps: number[][] = [];
      const weights: number[][] = [];
      let constant = false;
      for (let axis = 0; axis < 2; axis++) {
        const icoor = 0 + i * matrix[axis]![0]! + j * matrix[axis]![1]! + offset[axis]!;
        const cc = mode === 'nearest' ? icoor : mapCoordinate(icoor, dims[axis]!, mode);
        if (!(cc > -1 || mode === 'nearest')) {
          constant = true;
          break;
        }
        const start = Math.floor(cc);
        taps.push([start, start + 1].map((k) => (k < 0 || k >= dims[axis]! ? mapCoordinate(k, dims[axis]!, tapMode) : k)));
        const w0 = 1 - (cc - Math.floor(cc));
        weights.push([w0, 1 - w0]);
      }
      if (constant) {
        out[i * w + j] = cval;
        continue;
      }
      let t = 0;
      for (let a = 0; a < 2; a++) {
        for (let b = 0; b < 2; b++) {
          t += plane[taps[0]![a]! * w + taps[1]![b]!]! * weights[0]![a]! * weights[1]![b]!;
        }
      }
      out[i * w + j] = t;
    }
  }
  return out;
}

/** Keras' apply_transform for channels-last uint8 input: float64 output, before any rounding. */
export function referenceTransform(image: Uint8Array, h: number, w: number, c: number, p: TransformParams, mode: FillMode, cval: number): Float64Array {
  let out = Float64Array.from(image);
  const m = kerasScipyMatrix(p, h, w);
  if (m) {
    for (let ch = 0; ch < c; ch++) {
      const plane = new Float64Array(h * w);
      for (let k = 0; k < h * w; k++) plane[k] = image[k * c + ch]!;
      const res = scipyAffineOrder1(plane, h, w, m.matrix, m.offset, mode, cval);
      for (let k = 0; k < h * w; k++) out[k * c + ch] = res[k]!;
    }
  }
  const flipped = new Float64Array(out.length);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const si = p.flipVertical ? h - 1 - i : i;
      const sj = p.flipHorizontal ? w - 1 - j : j;
      for (let ch = 0; ch < c; ch++) flipped[(i * w + j) * c + ch] = out[(si * w + sj) * c + ch]!;
    }
  }
  out = flipped;
  return out;
}
