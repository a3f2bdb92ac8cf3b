// Random transform parameters and the affine matrix of Keras' ImageDataGenerator
// (keras >= 2.6 `keras.preprocessing.image` and keras 3 `keras.src.legacy.preprocessing.image`,
// i.e. what `tf.keras.preprocessing.image.ImageDataGenerator` runs; channels-last images).
//
// The formula, for an image of H rows and W columns (output pixel at row i, column j):
//
//   Draws (get_random_transform), each independent, uniform U(a, b) = a + (b - a)·u:
//     theta = U(-rotation_range, rotation_range)                       degrees
//     tx    = U(-height_shift_range, height_shift_range), times H if that range < 1
//     ty    = U(-width_shift_range, width_shift_range),   times W if that range < 1
//     shear = U(-shear_range, shear_range)                             degrees
//     zx, zy = U(zoom_lo, zoom_hi) each (zoom_range z means [1 - z, 1 + z]; both 1 if [1, 1])
//     flip_h = u < 0.5 if horizontal_flip;  flip_v = u < 0.5 if vertical_flip
//   Matrix (apply_affine_transform), homogeneous 3×3 over coordinates (x, y):
//     M = R(theta) · T(tx, ty) · S(shear) · Z(zx, zy)
//       R = [[cos θ, -sin θ, 0], [sin θ, cos θ, 0], [0, 0, 1]]
//       T = [[1, 0, tx], [0, 1, ty], [0, 0, 1]]
//       S = [[1, -sin s, 0], [0, cos s, 0], [0, 0, 1]]
//       Z = [[zx, 0, 0], [0, zy, 0], [0, 0, 1]]
//     Mc = O(ox, oy) · M · O(-ox, -oy), O = translation, ox = H/2 - 0.5, oy = W/2 - 0.5
//     Keras then swaps both the rows and the columns 0 and 1 of Mc (P·Mc·P) before handing it
//     to scipy, which indexes (row, col): so x is the COLUMN coordinate and y the ROW:
//       col_in = Mc[0][0]·j + Mc[0][1]·i + Mc[0][2]
//       row_in = Mc[1][0]·j + Mc[1][1]·i + Mc[1][2]
//     Consequences, reproduced on purpose: tx (drawn from height_shift_range, scaled by H)
//     moves the image along columns, ty along rows, and ox = H/2 - 0.5 centres the column
//     axis. On square images with equal shift ranges (CIFAR, the notebook) this is exactly the
//     intended distribution; on non-square images it is Keras' own axis mix-up.
//   Sampling (scipy.ndimage.affine_transform, order=1, per channel): output(i, j) is the
//     bilinear interpolation of the input at (row_in, col_in), with the fill mode deciding
//     values outside the image (see warp.ts). Then flips: flip_h reverses columns, flip_v rows.
//   Storage: the float result is rounded half-up to uint8 (Keras keeps float32).
import { uniform, uniform01 } from './rng.js';

export type FillMode = 'nearest' | 'constant' | 'reflect' | 'wrap';

/** ImageDataGenerator's geometric options, with Keras' meanings. */
export interface AugmentConfig {
  /** Degrees; theta ~ U(-r, r). */
  rotationRange: number;
  /** Fraction of the width if < 1, else pixels. */
  widthShiftRange: number;
  /** Fraction of the height if < 1, else pixels. */
  heightShiftRange: number;
  /** Shear angle range in degrees. */
  shearRange: number;
  /** [low, high] zoom factors (Keras' float z is [1 - z, 1 + z]). */
  zoomRange: [number, number];
  horizontalFlip: boolean;
  verticalFlip: boolean;
  fillMode: FillMode;
  /** Fill value for 'constant', in pixel units (0..255). */
  cval: number;
}

/** One image's drawn parameters (Keras' transform_parameters). */
export interface TransformParams {
  theta: number;
  tx: number;
  ty: number;
  shear: number;
  zx: number;
  zy: number;
  flipHorizontal: boolean;
  flipVertical: boolean;
}

/** Output → input map in scipy's (row, col) index space: in = A · (i, j) + offset. */
export interface AffineMap {
  rowI: number;
  rowJ: number;
  rowOffset: number;
  colI: number;
  colJ: number;
  colOffset: number;
}

/** Fixed draw indices so each parameter has its own random stream, whatever ranges are zero. */
const DRAW = { theta: 0, tx: 1, ty: 2, shear: 3, zx: 4, zy: 5, flipH: 6, flipV: 7 } as const;

/** Keras' zoom_range argument: a float z → [1 - z, 1 + z]; a pair is taken as is. */
export function zoomBounds(zoom: number | readonly [number, number]): [number, number] {
  return typeof zoom === 'number' ? [1 - zoom, 1 + zoom] : [zoom[0], zoom[1]];
}

/** get_random_transform for image `image` of copy `copy` (both uint32), keyed by `seed`. */
export function drawTransform(config: AugmentConfig, seed: number, copy: number, image: number, height: number, width: number): TransformParams {
  const u = (draw: number, low: number, high: number) => uniform(seed, copy, image, draw, low, high);
  const r = config.rotationRange;
  const theta = r ? u(DRAW.theta, -r, r) : 0;
  const hs = config.heightShiftRange;
  let tx = hs ? u(DRAW.tx, -hs, hs) : 0;
  if (hs < 1) tx *= height;
  const ws = config.widthShiftRange;
  let ty = ws ? u(DRAW.ty, -ws, ws) : 0;
  if (ws < 1) ty *= width;
  const s = config.shearRange;
  const shear = s ? u(DRAW.shear, -s, s) : 0;
  const [zlo, zhi] = config.zoomRange;
  const fixedZoom = zlo === 1 && zhi === 1;
  const zx = fixedZoom ? 1 : u(DRAW.zx, zlo, zhi);
  const zy = fixedZoom ? 1 : u(DRAW.zy, zlo, zhi);
  const flipHorizontal = config.horizontalFlip && uniform01(seed, copy, image, DRAW.flipH) < 0.5;
  const flipVertical = config.verticalFlip && uniform01(seed, copy, image, DRAW.flipV) < 0.5;
  return { theta, tx, ty, shear, zx, zy, flipHorizontal, flipVertical };
}

type Mat3 = [number, number, number, number, number, number, number, number, number];

function mul(a: Mat3, b: Mat3): Mat3 {
  const out = new Array<number>(9) as Mat3;
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) {
      out[r * 3 + c] = a[r * 3]! * b[c]! + a[r * 3 + 1]! * b[3 + c]! + a[r * 3 + 2]! * b[6 + c]!;
    }
  }
  return out;
}

const deg2rad = (deg: number) => (deg * Math.PI) / 180;

/** apply_affine_transform's matrix, centred and axis-swapped, as scipy receives it. */
export function affineFor(p: TransformParams, height: number, width: number): AffineMap {
  // Keras multiplies in only the factors that are not the identity; skipping them is exact.
  let m: Mat3 | null = null;
  const then = (f: Mat3) => {
    m = m === null ? f : mul(m, f);
  };
  if (p.theta !== 0) {
    const t = deg2rad(p.theta);
    then([Math.cos(t), -Math.sin(t), 0, Math.sin(t), Math.cos(t), 0, 0, 0, 1]);
  }
  if (p.tx !== 0 || p.ty !== 0) then([1, 0, p.tx, 0, 1, p.ty, 0, 0, 1]);
  if (p.shear !== 0) {
    const s = deg2rad(p.shear);
    then([1, -Math.sin(s), 0, 0, Math.cos(s), 0, 0, 0, 1]);
  }
  if (p.zx !== 1 || p.zy !== 1) then([p.zx, 0, 0, 0, p.zy, 0, 0, 0, 1]);
  if (m === null) return { rowI: 1, rowJ: 0, rowOffset: 0, colI: 0, colJ: 1, colOffset: 0 };
  const ox = height / 2 - 0.5;
  const oy = width / 2 - 0.5;
  const c = mul(mul([1, 0, ox, 0, 1, oy, 0, 0, 1], m), [1, 0, -ox, 0, 1, -oy, 0, 0, 1]);
  // P·c·P: scipy's row coordinate is Keras' y (second), its column coordinate Keras' x (first).
  return { rowI: c[4], rowJ: c[3], rowOffset: c[5], colI: c[1], colJ: c[0], colOffset: c[2] };
}
