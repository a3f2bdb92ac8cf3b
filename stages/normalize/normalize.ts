// `normalize`: the split and the formula, not a copy of the pixels. Outputs decode's dataset as
// it is (the same shard objects), a seeded stratified train/validation split of its training
// rows, and normalization.json, the per-channel formula readers apply when they gather a batch:
//   scale        pixel / 255 (the notebook's preprocessing)
//   standardize  (pixel / 255 − mean[c]) / std[c], mean and std per channel from the training part
// Rows of the training part are dataset train rows train_index[i] (seeded random order, so
// class-sorted sources are interleaved); validation rows are val_index[i]; test rows are the
// dataset's test split. Its cost does not grow with image size, but for standardize's one pass.
import { z } from 'zod';
import { defineStage } from '../../engine/contract.js';
import { DATASET_DIR } from '../../lib/dataset/format.js';

export const NormalizeParams = z.strictObject({
  method: z
    .enum(['scale', 'standardize'])
    .default('scale')
    .describe(
      'the per-channel formula input = (pixel · scale − mean[c]) / std[c], applied when a batch is read (no float copy is stored). scale: pixel/255 (the notebook); standardize: per-channel (pixel/255 - mean)/std, statistics from the training part',
    ),
  validation_split: z
    .number()
    .min(0)
    .lt(1)
    .default(0.2)
    .describe(
      'fraction of each class of decode\'s training set held out for validation (stratified and seeded, never "the last 20 %": image folders are class-sorted)',
    ),
  seed: z.int().default(42).describe('seed of the train/validation split'),
});
export type NormalizeParams = z.output<typeof NormalizeParams>;

export const normalizeStage = defineStage({
  name: 'normalize',
  // 2: the dataset, the split and the formula instead of float32 copies.
  version: 2,
  description:
    'Seeded stratified train/validation split and the scale/standardize formula over a decoded dataset (applied when batches are read; no float copy)',
  inputs: 'a decode stage (its dataset/ and classes.json)',
  params: NormalizeParams,
  outputs: [
    { name: DATASET_DIR, type: 'dir', description: "decode's dataset, carried as it is (the same objects)" },
    { name: 'train_index.npy', type: 'tensor', description: 'int32 [Ntr] dataset train row of each training row' },
    { name: 'val_index.npy', type: 'tensor', description: 'int32 [Nval] dataset train row of each validation row' },
    { name: 'normalization.json', type: 'json', description: 'method, scale, per-channel mean/std: input = (pixel·scale − mean[c]) / std[c]; split counts' },
    { name: 'classes.json', type: 'json', description: 'class names (index = label)' },
  ],
  // The implementation is loaded only when the stage runs: a cached run never imports it.
  run: async (ctx) => (await import('./run.js')).runNormalize(ctx),
});
