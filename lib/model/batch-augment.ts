// Train-time batch transforms, applied to each training batch as it is gathered (Keras'
// RandomCrop / RandomTranslation / RandomFlip preprocessing layers, and categorical
// cross-entropy's label_smoothing): nothing is materialised, so 40 epochs of fresh shifts cost
// no disk. Each image's transform depends only on (seed, epoch, row of the training set), so it
// is the same whatever the batch order, the worker count or an interruption and resume.
import * as tf from '@tensorflow/tfjs';
import type { BatchAugmentSpec, FillMode } from './batch-augment-spec.js';
import { Rng, deriveSeed } from './rng.js';

/** One image's draw: the crop window's offset from the unpadded origin, and whether to mirror. */
export interface CropFlip {
  dy: number;
  dx: number;
  flip: boolean;
}

/** The transform of training row `row` in epoch `epoch` (0-based) — a pure function of its arguments. */
export function drawCropFlip(seed: number, epoch: number, row: number, spec: BatchAugmentSpec): CropFlip {
  const rng = new Rng(deriveSeed(seed, `batch_augment:${epoch}:${row}`));
  const span = 2 * spec.crop_padding + 1;
  const dy = rng.int(span) - spec.crop_padding;
  const dx = rng.int(span) - spec.crop_padding;
  const flip = spec.horizontal_flip && rng.next() < 0.5;
  return { dy, dx, flip };
}

/**
 * Maps coordinate `i` outside [0, n) into it (scipy.ndimage modes: nearest `aaaa|abcd|dddd`,
 * reflect `dcba|abcd|dcba`, wrap `abcd|abcd|abcd`); −1 for constant.
 */
export function fillIndex(i: number, n: number, mode: FillMode): number {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case 'constant':
      return -1;
    case 'nearest':
      return i < 0 ? 0 : n - 1;
    case 'wrap':
      return ((i % n) + n) % n;
    case 'reflect': {
      const period = 2 * n;
      const m = ((i % period) + period) % period;
      return m < n ? m : period - 1 - m;
    }
  }
}

/**
 * Writes image `src` [h, w, c] (at offset `from`) shifted by (dy, dx) and optionally mirrored into
 * `dst` (at offset `to`): out(y, x) = in(y + dy, x' + dx) with x' = w − 1 − x when flipped, and
 * pixels outside the input filled per `mode`.
 */
export function cropFlipImage(
  src: Float32Array,
  from: number,
  dst: Float32Array,
  to: number,
  [h, w, c]: readonly [number, number, number],
  t: CropFlip,
  mode: FillMode,
  cval: number,
): void {
  for (let y = 0; y < h; y++) {
    const sy = fillIndex(y + t.dy, h, mode);
    for (let x = 0; x < w; x++) {
      const sx = fillIndex((t.flip ? w - 1 - x : x) + t.dx, w, mode);
      const o = to + (y * w + x) * c;
      if (sy < 0 || sx < 0) {
        for (let k = 0; k < c; k++) dst[o + k] = cval;
      } else {
        const i = from + (sy * w + sx) * c;
        for (let k = 0; k < c; k++) dst[o + k] = src[i + k]!;
      }
    }
  }
}

/** One-hot targets → (1 − ε)·y + ε/K in place (Keras' categorical_crossentropy label_smoothing). */
export function smoothLabels(y: Float32Array, classes: number, epsilon: number): void {
  if (epsilon === 0) return;
  const floor = epsilon / classes;
  for (let i = 0; i < y.length; i++) y[i] = y[i]! * (1 - epsilon) + floor;
}

export interface BatchTransforms {
  augment?: BatchAugmentSpec;
  labelSmoothing: number;
  seed: number;
}

/** Whether `t` changes anything (otherwise the loop takes the rows as they are). */
export function hasBatchTransforms(t: BatchTransforms): boolean {
  return t.augment !== undefined || t.labelSmoothing > 0;
}

/** Minimal view of Rows this module needs (data.ts's Rows satisfies it). */
interface GatheringRows {
  count: number;
  sampleShape: number[];
  classes: number;
  gather(rows: ArrayLike<number>): { x: Float32Array; y: Float32Array };
  inputs(rows: ArrayLike<number>): tf.Tensor;
}

/**
 * `rows` as epoch `epoch` trains on them: `batch()` (and `batchArrays()`) return transformed
 * inputs and smoothed targets; `inputs()` (prediction) and `gather()` are untouched.
 */
export function transformedRows<R extends GatheringRows>(rows: R, t: BatchTransforms, epoch: number): R {
  const shape = rows.sampleShape;
  const spec = t.augment;
  if (spec && shape.length !== 3) throw new Error(`batch_augment needs images [H, W, C], got samples of shape [${shape}]`);
  const size = shape.reduce((a, b) => a * b, 1);
  const batchArrays = (batch: ArrayLike<number>) => {
    const { x, y } = rows.gather(batch);
    let inputs = x;
    if (spec) {
      inputs = new Float32Array(x.length);
      const hwc = shape as [number, number, number];
      for (let i = 0; i < batch.length; i++) {
        const draw = drawCropFlip(t.seed, epoch, batch[i]!, spec);
        cropFlipImage(x, i * size, inputs, i * size, hwc, draw, spec.fill_mode, spec.cval);
      }
    }
    smoothLabels(y, rows.classes, t.labelSmoothing);
    return { x: inputs, y };
  };
  return {
    ...rows,
    batchArrays,
    batch(batch: ArrayLike<number>) {
      const { x, y } = batchArrays(batch);
      return { x: tf.tensor(x, [batch.length, ...shape]), y: tf.tensor2d(y, [batch.length, rows.classes]) };
    },
  };
}
