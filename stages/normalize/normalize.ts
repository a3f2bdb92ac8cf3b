// `normalize`: a decode stage's uint8 images → float32 model input, one-hot labels, and a seeded
// stratified train/validation split of decode's training set.
//   scale        pixel / 255 (the notebook's preprocessing)
//   standardize  (pixel / 255 − mean[c]) / std[c], mean and std per channel from the training part
// Rows of train_x/val_x are decode train rows train_index[i]/val_index[i] (seeded random order, so
// class-sorted sources are interleaved). Large tensors are streamed chunk by chunk: peak memory is
// about decode's uint8 training set plus one chunk.
import { z } from 'zod';
import { defineStage, type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { openNpy, type NpyFile } from '../../lib/npy.js';
import { stratifiedSplit } from '../../lib/images/split.js';

export const NormalizeParams = z.strictObject({
  method: z
    .enum(['scale', 'standardize'])
    .default('scale')
    .describe('scale: pixel/255; standardize: per-channel (pixel/255 - mean)/std, statistics from the training part'),
  validation_split: z
    .number()
    .min(0)
    .lt(1)
    .default(0.2)
    .describe("fraction of each class of decode's training set held out for validation (stratified, seeded)"),
  seed: z.int().default(42).describe('seed of the train/validation split'),
});
export type NormalizeParams = z.output<typeof NormalizeParams>;

const SCALE = 1 / 255;
/** pixel·SCALE, computed as the notebook does (x / 255), so `scale` output equals float32(x / 255) exactly. */
const scaled = (v: number) => v / 255;
/** Rows converted per write: 512 CIFAR rows are 6 MB of float32. */
const ROWS_PER_CHUNK = 512;

/** The decode stage feeding us (or, failing that, the single input with decode's outputs). */
function decodeInput(ctx: StageContext<NormalizeParams>): UpstreamArtifacts {
  const decodes = ctx.inputs.ofKind('decode');
  if (decodes.length === 1) return decodes[0]!;
  const lookalikes = ctx.inputs.all.filter((u) => u.has('train_images.npy') && u.has('train_labels.npy'));
  if (decodes.length === 0 && lookalikes.length === 1) return lookalikes[0]!;
  const names = ctx.inputs.all.map((u) => `${u.stage} (${u.kind})`).join(', ') || 'none';
  throw new StageError(`normalize needs exactly one decode stage as input; inputs: ${names}`);
}

async function labelsOf(src: UpstreamArtifacts, name: string, numClasses: number): Promise<Int32Array> {
  const t = await src.readTensor(name);
  if (t.dtype !== 'int32' || t.shape.length !== 1) throw new StageError(`${src.stage}/${name}: expected int32 [N], found ${t.dtype} [${t.shape}]`);
  const labels = t.data as Int32Array;
  const bad = labels.findIndex((l) => l < 0 || l >= numClasses);
  if (bad >= 0) throw new StageError(`${src.stage}/${name}: row ${bad} has label ${labels[bad]}, outside the ${numClasses} classes`);
  return labels;
}

async function imagesOf(src: UpstreamArtifacts, name: string, rows: number): Promise<NpyFile<'uint8'>> {
  let file: NpyFile<'uint8'>;
  try {
    file = await openNpy(src.path(name), 'uint8');
  } catch (err) {
    throw new StageError(`${src.stage}/${name}: ${(err as Error).message}`);
  }
  if (file.shape.length !== 4 || file.shape[0] !== rows) {
    await file.close();
    throw new StageError(`${src.stage}/${name}: expected uint8 [${rows}, H, W, C] to match the labels, found [${file.shape}]`);
  }
  return file;
}

interface Stats {
  mean: number[];
  std: number[];
}

/** Per-channel mean and (population) std of pixel/255 over `rows`, exact via 256-bin histograms. */
function channelStats(pixels: Uint8Array, rows: Int32Array, rowElements: number, channels: number): Stats {
  const hist = new Float64Array(channels * 256);
  for (const row of rows) {
    const start = row * rowElements;
    for (let i = start; i < start + rowElements; i += channels) {
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

/** Lookup table: input value for channel c and pixel v at [c·256 + v]. */
function valueTable(stats: Stats): Float32Array {
  const channels = stats.mean.length;
  const table = new Float32Array(channels * 256);
  for (let c = 0; c < channels; c++) {
    for (let v = 0; v < 256; v++) table[c * 256 + v] = (scaled(v) - stats.mean[c]!) / stats.std[c]!;
  }
  return table;
}

/** Streams float32 rows: `rowCount` rows, chunk k's uint8 pixels supplied by `chunkPixels`. */
async function writeFloatRows(
  ctx: StageContext<NormalizeParams>,
  name: string,
  sampleShape: number[],
  rowCount: number,
  table: Float32Array,
  chunkPixels: (start: number, count: number) => Promise<Uint8Array>,
): Promise<void> {
  const rowElements = sampleShape.reduce((a, b) => a * b, 1);
  const channels = sampleShape[sampleShape.length - 1]!;
  const stream = await ctx.out.tensorStream(name, 'float32', [rowCount, ...sampleShape]);
  const out = new Float32Array(Math.min(rowCount, ROWS_PER_CHUNK) * rowElements);
  for (let start = 0; start < rowCount; start += ROWS_PER_CHUNK) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const count = Math.min(ROWS_PER_CHUNK, rowCount - start);
    const pixels = await chunkPixels(start, count);
    const n = count * rowElements;
    for (let i = 0; i < n; i += channels) {
      for (let c = 0; c < channels; c++) out[i + c] = table[c * 256 + pixels[i + c]!]!;
    }
    await stream.write(out.subarray(0, n));
    ctx.progress.tick(count);
  }
  await stream.close();
}

function gatherRows(pixels: Uint8Array, rowElements: number, index: Int32Array, start: number, count: number): Uint8Array {
  const out = new Uint8Array(count * rowElements);
  for (let i = 0; i < count; i++) {
    const row = index[start + i]!;
    out.set(pixels.subarray(row * rowElements, (row + 1) * rowElements), i * rowElements);
  }
  return out;
}

function oneHot(labels: ArrayLike<number>, numClasses: number): Float32Array {
  const y = new Float32Array(labels.length * numClasses);
  for (let i = 0; i < labels.length; i++) y[i * numClasses + labels[i]!] = 1;
  return y;
}

async function run(ctx: StageContext<NormalizeParams>): Promise<void> {
  const { method, validation_split: fraction, seed } = ctx.params;
  const src = decodeInput(ctx);
  const classes = await src.readJson<string[]>('classes.json');
  if (!Array.isArray(classes) || classes.length === 0) throw new StageError(`${src.stage}/classes.json: expected a non-empty array of class names`);
  const k = classes.length;
  const trainLabels = await labelsOf(src, 'train_labels.npy', k);
  const testLabels = await labelsOf(src, 'test_labels.npy', k);
  const trainFile = await imagesOf(src, 'train_images.npy', trainLabels.length);
  const testFile = await imagesOf(src, 'test_images.npy', testLabels.length);
  try {
    const sampleShape = trainFile.shape.slice(1);
    if (testFile.shape.slice(1).join() !== sampleShape.join()) {
      throw new StageError(`${src.stage}: test images are [${testFile.shape.slice(1)}] but training images are [${sampleShape}]`);
    }
    const channels = sampleShape[2]!;
    const rowElements = trainFile.rowElements;
    const split = stratifiedSplit(trainLabels, k, fraction, seed);
    // The whole uint8 training set (≈150 MB for CIFAR-10): rows are gathered in split order.
    const pixels = await trainFile.readAll();

    let stats: Stats = { mean: new Array<number>(channels).fill(0), std: new Array<number>(channels).fill(1) };
    if (method === 'standardize') {
      stats = channelStats(pixels, split.train, rowElements, channels);
      const flat = stats.std.flatMap((s, c) => (s > 0 ? [] : [c]));
      if (flat.length > 0) {
        ctx.log.warn(`channel(s) ${flat.join(', ')} are constant on the training split: std set to 1`);
        stats.std = stats.std.map((s) => (s > 0 ? s : 1));
      }
    }
    const table = valueTable(stats);

    ctx.progress.start('normalize', trainLabels.length + testLabels.length, 'img');
    for (const [part, index] of [
      ['train', split.train],
      ['val', split.validation],
    ] as const) {
      await writeFloatRows(ctx, `${part}_x.npy`, sampleShape, index.length, table, async (start, count) =>
        gatherRows(pixels, rowElements, index, start, count),
      );
      const labels = Int32Array.from(index, (row) => trainLabels[row]!);
      await ctx.out.tensor(`${part}_y.npy`, { dtype: 'float32', shape: [index.length, k], data: oneHot(labels, k) });
      await ctx.out.tensor(`${part}_index.npy`, { dtype: 'int32', shape: [index.length], data: index });
    }
    await writeFloatRows(ctx, 'test_x.npy', sampleShape, testLabels.length, table, (start, count) => testFile.readRows(start, count));
    await ctx.out.tensor('test_y.npy', { dtype: 'float32', shape: [testLabels.length, k], data: oneHot(testLabels, k) });
    ctx.progress.done();

    await ctx.out.json('normalization.json', {
      method,
      scale: SCALE,
      mean: stats.mean,
      std: stats.std,
      formula: 'input = (pixel * scale - mean[c]) / std[c]',
      statistics_from: method === 'standardize' ? `training part (${split.train.length} rows)` : 'fixed',
      split: {
        validation_split: fraction,
        seed,
        stratified: true,
        train: split.train.length,
        validation: split.validation.length,
        test: testLabels.length,
        validation_per_class: Object.fromEntries(classes.map((c, i) => [c, split.validationPerClass[i]!])),
      },
    });
    await ctx.out.json('classes.json', classes);
  } finally {
    await trainFile.close();
    await testFile.close();
  }
}

export const normalizeStage = defineStage({
  name: 'normalize',
  version: 1,
  description: 'Scale or standardize decoded images to float32, one-hot labels, seeded stratified train/validation split',
  params: NormalizeParams,
  outputs: [
    { name: 'train_x.npy', type: 'tensor', description: 'float32 [Ntr, H, W, C] training inputs (decode train rows train_index)' },
    { name: 'train_y.npy', type: 'tensor', description: 'float32 [Ntr, K] one-hot training labels' },
    { name: 'val_x.npy', type: 'tensor', description: 'float32 [Nval, H, W, C] validation inputs (decode train rows val_index)' },
    { name: 'val_y.npy', type: 'tensor', description: 'float32 [Nval, K] one-hot validation labels' },
    { name: 'test_x.npy', type: 'tensor', description: 'float32 [Ntest, H, W, C] test inputs' },
    { name: 'test_y.npy', type: 'tensor', description: 'float32 [Ntest, K] one-hot test labels' },
    { name: 'train_index.npy', type: 'tensor', description: 'int32 [Ntr] decode train row of each training row' },
    { name: 'val_index.npy', type: 'tensor', description: 'int32 [Nval] decode train row of each validation row' },
    { name: 'normalization.json', type: 'json', description: 'method, scale, per-channel mean/std: input = (pixel·scale − mean[c]) / std[c]; split counts' },
    { name: 'classes.json', type: 'json', description: 'class names (index = label)' },
  ],
  run,
});
