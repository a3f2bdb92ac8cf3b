// `normalize`: the split and the formula, not a copy of the pixels. Outputs decode's dataset as
// it is (the same shard objects), a seeded stratified train/validation split of its training
// rows, and normalization.json, the per-channel formula readers apply when they gather a batch:
//   scale        pixel / 255 (the notebook's preprocessing)
//   standardize  (pixel / 255 − mean[c]) / std[c], mean and std per channel from the training part
// Rows of the training part are dataset train rows train_index[i] (seeded random order, so
// class-sorted sources are interleaved); validation rows are val_index[i]; test rows are the
// dataset's test split. Its cost does not grow with image size, but for standardize's one pass.
import { z } from 'zod';
import { defineStage, type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { ShardIntegrityError } from '../../lib/errors.js';
import { DATASET_DIR, MANIFEST_FILE, ROWS_FILE } from '../../lib/dataset/format.js';
import type { DatasetReader } from '../../lib/dataset/reader.js';
import { openUpstreamDataset } from '../dataset-input.js';
import { stratifiedSplit } from '../../lib/images/split.js';

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

const SCALE = 1 / 255;
/** pixel·SCALE, computed as the notebook does (x / 255), so `scale` inputs equal float32(x / 255) exactly. */
const scaled = (v: number) => v / 255;
/** Rows read per step of the statistics pass. */
const ROWS_PER_READ = 256;

/** The decode stage feeding us (or, failing that, the single input with a dataset). */
function decodeInput(ctx: StageContext<NormalizeParams>): UpstreamArtifacts {
  const decodes = ctx.inputs.ofKind('decode');
  if (decodes.length === 1) return decodes[0]!;
  const lookalikes = ctx.inputs.all.filter((u) => u.has(DATASET_DIR));
  if (decodes.length === 0 && lookalikes.length === 1) return lookalikes[0]!;
  const names = ctx.inputs.all.map((u) => `${u.stage} (${u.kind})`).join(', ') || 'none';
  throw new StageError(`normalize needs exactly one decode stage as input; inputs: ${names}`);
}

interface Stats {
  mean: number[];
  std: number[];
}

/** Per-channel mean and (population) std of pixel/255 over `rows`, exact via 256-bin histograms, read a few rows at a time. */
function channelStats(reader: DatasetReader, rows: Int32Array, signal: AbortSignal): Stats {
  const channels = reader.manifest.shape[2];
  const hist = new Float64Array(channels * 256);
  for (let start = 0; start < rows.length; start += ROWS_PER_READ) {
    signal.throwIfAborted();
    const pixels = reader.readRows(rows.subarray(start, start + ROWS_PER_READ));
    for (let i = 0; i < pixels.length; i += channels) {
      for (let c = 0; c < channels; c++) hist[c * 256 + pixels[i + c]!]!++;
    }
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < channels; c++) {
    let n = 0;
    let sum = 0;
    for (let v = 0; v < 256; v++) {
      n += hist[c * 256 + v]!;
      sum += scaled(v) * hist[c * 256 + v]!;
    }
    const m = n > 0 ? sum / n : 0;
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += (scaled(v) - m) ** 2 * hist[c * 256 + v]!;
    mean.push(m);
    std.push(n > 0 ? Math.sqrt(sq / n) : 0);
  }
  return { mean, std };
}

/** decode's dataset, file by file, into this output: the same objects, nothing copied. */
async function carryDataset(ctx: StageContext<NormalizeParams>, src: UpstreamArtifacts, reader: DatasetReader): Promise<void> {
  const files = [MANIFEST_FILE, ROWS_FILE, ...reader.manifest.shards.map((s) => s.file)];
  for (const file of files) await ctx.out.reuse(`${DATASET_DIR}/${file}`, src, `${DATASET_DIR}/${file}`);
}

async function run(ctx: StageContext<NormalizeParams>): Promise<void> {
  const { method, validation_split: fraction, seed } = ctx.params;
  const src = decodeInput(ctx);
  const reader = await openUpstreamDataset(src);
  try {
    const { classes, splits } = reader.manifest;
    const channels = reader.manifest.shape[2];
    const trainLabels = reader.rows.label.subarray(0, splits.train);
    const split = stratifiedSplit(trainLabels, classes.length, fraction, seed);
    let stats: Stats = { mean: new Array<number>(channels).fill(0), std: new Array<number>(channels).fill(1) };
    if (method === 'standardize') {
      ctx.progress.start('statistics', split.train.length, 'img');
      try {
        stats = channelStats(reader, split.train, ctx.signal);
      } catch (err) {
        if (err instanceof ShardIntegrityError) throw new StageError(`${src.stage}/${DATASET_DIR}: ${err.message}`, { cause: err });
        throw err;
      }
      ctx.progress.done();
      const flat = stats.std.flatMap((s, c) => (s > 0 ? [] : [c]));
      if (flat.length > 0) {
        ctx.log.warn(`channel(s) ${flat.join(', ')} are constant on the training split: std set to 1`);
        stats.std = stats.std.map((s) => (s > 0 ? s : 1));
      }
    }
    await carryDataset(ctx, src, reader);
    await ctx.out.tensor('train_index.npy', { dtype: 'int32', shape: [split.train.length], data: split.train });
    await ctx.out.tensor('val_index.npy', { dtype: 'int32', shape: [split.validation.length], data: split.validation });
    await ctx.out.json('normalization.json', {
      method,
      scale: SCALE,
      mean: stats.mean,
      std: stats.std,
      formula: 'input = (pixel * scale - mean[c]) / std[c]',
      statistics_from: method === 'standardize' ? `training part (${split.train.length} rows)` : 'fixed',
      applied: `when a batch is gathered from ${DATASET_DIR}/ (no float copy is stored)`,
      split: {
        validation_split: fraction,
        seed,
        stratified: true,
        train: split.train.length,
        validation: split.validation.length,
        test: splits.test,
        validation_per_class: Object.fromEntries(classes.map((c, i) => [c, split.validationPerClass[i]!])),
      },
    });
    await ctx.out.json('classes.json', classes);
  } finally {
    reader.close();
  }
}

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
  run,
});
