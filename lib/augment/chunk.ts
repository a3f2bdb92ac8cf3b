// One unit of pool work: augment a contiguous range of training rows for one copy. Runs in a
// worker (workers/augment.ts) or in-process (previews, tests); same code, same bytes.
import { affineFor, drawTransform, type AugmentConfig } from './transform.js';
import { warpImage } from './warp.js';

/** Message sent to a worker. Buffers are shared, never copied: only this small object is cloned. */
export interface AugmentTask {
  /** Decoded images, uint8 [N, H, W, C] starting at `srcByteOffset`. */
  src: SharedArrayBuffer;
  srcByteOffset: number;
  /** int32 [Ntr]: training row i is source image index[i]. */
  index: SharedArrayBuffer;
  /**
   * When set, `src` holds the chunk's own source images in training-row order, starting with
   * training row `srcRowsFrom` (streamed sources): `index` is not consulted.
   */
  srcRowsFrom?: number;
  /** Output slot: `count` images written from `outByteOffset`. */
  out: SharedArrayBuffer;
  outByteOffset: number;
  /** First training row of the chunk and how many rows. */
  first: number;
  count: number;
  copy: number;
  seed: number;
  height: number;
  width: number;
  channels: number;
  config: AugmentConfig;
}

/** Augments rows [first, first + count) of one copy into `dst` from `dstOffset`. */
export function augmentRows(
  src: Uint8Array,
  index: Int32Array,
  dst: Uint8Array,
  dstOffset: number,
  first: number,
  count: number,
  copy: number,
  seed: number,
  shape: { height: number; width: number; channels: number },
  config: AugmentConfig,
  srcRowsFrom?: number,
): void {
  const { height, width, channels } = shape;
  const imageBytes = height * width * channels;
  const target = { src, srcOffset: 0, dst, dstOffset: 0, height, width, channels };
  for (let n = 0; n < count; n++) {
    const row = first + n;
    const p = drawTransform(config, seed, copy, row, height, width);
    target.srcOffset = (srcRowsFrom === undefined ? index[row]! : row - srcRowsFrom) * imageBytes;
    target.dstOffset = dstOffset + n * imageBytes;
    warpImage(target, affineFor(p, height, width), config.fillMode, config.cval, p.flipHorizontal, p.flipVertical);
  }
}

/** Runs a task against its shared buffers; returns the number of images written. */
export function runAugmentTask(task: AugmentTask): number {
  const imageBytes = task.height * task.width * task.channels;
  const srcImages = Math.floor((task.src.byteLength - task.srcByteOffset) / imageBytes);
  const src = new Uint8Array(task.src, task.srcByteOffset, srcImages * imageBytes);
  const index = new Int32Array(task.index);
  const out = new Uint8Array(task.out, task.outByteOffset, task.count * imageBytes);
  augmentRows(src, index, out, 0, task.first, task.count, task.copy, task.seed, task, task.config, task.srcRowsFrom);
  return task.count;
}
