// Stage kind `augment`: Keras ImageDataGenerator-equivalent augmentation of the training split,
// `copies` times, on a Piscina worker pool. Inputs: a normalize stage (its dataset and
// train_index.npy; a decode stage is accepted in needs, as before). Validation and test data are
// never augmented. Source rows are read from the dataset chunk by chunk as the pool needs them, and
// the copies are written as they come into one sharded uint8 dataset (lib/augment/copies.ts), so
// memory holds a ring of chunks, not the dataset.
// The transform and its documented formula live in lib/augment/transform.ts and warp.ts.
import { z } from 'zod';
import { defineStage } from '../../engine/contract.js';
import { COPIES_DIR, SOURCE_INDEX } from '../../lib/augment/copies.js';

export const augmentParams = z.strictObject({
  rotation_range: z.number().min(0).max(360).default(40).describe('Degrees: rotation ~ U(-r, r).'),
  width_shift_range: z.number().min(0).default(0.2).describe('Fraction of the width if < 1, else pixels (Keras float semantics).'),
  height_shift_range: z.number().min(0).default(0.2).describe('Fraction of the height if < 1, else pixels (Keras float semantics).'),
  shear_range: z.number().min(0).max(360).default(0).describe('Shear angle range in degrees.'),
  zoom_range: z
    .union([
      z.number().min(0).lt(1),
      z.tuple([z.number().positive(), z.number().positive()]).refine(([lo, hi]) => lo <= hi, 'zoom_range [low, high] needs low <= high'),
    ])
    .default(0.2)
    .describe('z for factors U(1 - z, 1 + z) per axis, or [low, high].'),
  horizontal_flip: z.boolean().default(true).describe('Mirror left-right with probability ½ (after the warp).'),
  vertical_flip: z.boolean().default(false).describe('Mirror top-bottom with probability ½ (after the warp).'),
  fill_mode: z
    .enum(['nearest', 'constant', 'reflect', 'wrap'])
    .default('nearest')
    .describe('How pixels outside the image are filled: nearest, constant (cval), reflect, wrap (scipy.ndimage semantics).'),
  cval: z.number().min(0).max(255).default(0).describe("Fill value for fill_mode 'constant', in pixel units 0..255."),
  copies: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(20)
    .describe('Augmented copies of the training split, one per augmented training epoch (Keras draws fresh transforms every epoch).'),
  seed: z.number().int().min(0).max(0xffffffff).default(0).describe('Output bytes depend only on (seed, copy, image): not on threads or chunk_size.'),
  threads: z.number().int().min(1).max(256).optional().describe('Pool size (default: available cores). Not in the cache key.'),
  chunk_size: z.number().int().min(1).max(65536).default(256).describe('Images per pool task. Not in the cache key.'),
  preview_count: z.number().int().min(0).max(100).default(8).describe('First training images to preview.'),
  preview_variants: z.number().int().min(0).max(100).default(8).describe('Augmented variants per preview image.'),
});

export type AugmentParams = z.output<typeof augmentParams>;

export const augmentKind = defineStage({
  name: 'augment',
  // 2: reads the sharded dataset (same pixels, same copies; augment.json words its rows anew).
  // 3: the copies are one sharded uint8 dataset (copies/) instead of copy_NNN.npy (same pixels).
  version: 3,
  description: 'Keras ImageDataGenerator-equivalent augmentation of the training split (its copies as one sharded uint8 dataset)',
  inputs: "a normalize stage (its dataset/ and train_index.npy; the copies' rows align with train_index)",
  params: augmentParams,
  outputs: [
    {
      name: COPIES_DIR,
      type: 'dir',
      description: 'the copies as a sharded uint8 dataset (dataset.json, rows.json, shards/<id>.npy): row copy·Ntr + i is training row i of that copy',
    },
    { name: SOURCE_INDEX, type: 'tensor', description: 'int32 [Ntr]: the dataset row each training row was augmented from (train_index)' },
    { name: 'preview', type: 'dir', description: 'PNG previews: original and variants of the first training images', optional: true },
    { name: 'contact_sheet.png', type: 'file', description: 'Grid of the previews (one row per image)', optional: true },
    { name: 'augment.json', type: 'json', description: 'What was computed: params, copies, shapes, preview files' },
  ],
  // Pool size and chunking change speed, never bytes.
  cacheParams: ({ threads: _threads, chunk_size: _chunk, ...rest }) => rest,
  // The implementation is loaded only when the stage runs: a cached run never imports it.
  run: async (ctx) => (await import('./run.js')).runAugment(ctx),
});

export default augmentKind;
