// Stage kind `augment`: Keras ImageDataGenerator-equivalent augmentation of the training split,
// `copies` times, on a Piscina worker pool. Inputs: a normalize stage (its dataset and
// train_index.npy; a decode stage is accepted in needs, as before). Validation and test data are
// never augmented. Source rows are read from the dataset chunk by chunk as the pool needs them, and
// the copies are written as they come into one sharded uint8 dataset (lib/augment/copies.ts), so
// memory holds a ring of chunks, not the dataset.
// The transform and its documented formula live in lib/augment/transform.ts and warp.ts.
import { z } from 'zod';
import { defineStage, type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
import { AbortedError, StageError } from '../../engine/errors.js';
import { augmentRows } from '../../lib/augment/chunk.js';
import { AugmentPoolError } from '../../lib/errors.js';
import { runAugmentPool, type AugmentSource } from '../../lib/augment/pool.js';
import { contactSheet, defaultLayout, writePng, type Image } from '../../lib/augment/preview.js';
import { DatasetReader } from '../../lib/dataset/reader.js';
import { DATASET_DIR } from '../../lib/dataset/format.js';
import { DatasetError, ShardIntegrityError } from '../../lib/errors.js';
import { COPIES_DIR, SOURCE_INDEX } from '../../lib/augment/copies.js';
import { CopiesDatasetWriter, type CopiesSource } from '../../lib/augment/copies-dataset.js';
import { zoomBounds, type AugmentConfig } from '../../lib/augment/transform.js';

const WORKER = new URL('../../workers/augment.js', import.meta.url).href;

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

function configOf(p: AugmentParams): AugmentConfig {
  return {
    rotationRange: p.rotation_range,
    widthShiftRange: p.width_shift_range,
    heightShiftRange: p.height_shift_range,
    shearRange: p.shear_range,
    zoomRange: zoomBounds(p.zoom_range),
    horizontalFlip: p.horizontal_flip,
    verticalFlip: p.vertical_flip,
    fillMode: p.fill_mode,
    cval: p.cval,
  };
}

/** The dataset's training rows, read chunk by chunk for the pool (memory holds chunks, not the dataset). */
interface StreamedSource {
  source: AugmentSource;
  /** Shape, classes, labels and source files of the training rows, and the dataset's settings. */
  rows: CopiesSource & { settings: string; index: Int32Array };
  /** Source pixels of training rows [first, first + count), in order. */
  read(first: number, count: number): Uint8Array;
  close(): void;
}

/** Opens the dataset (normalize's, else decode's) and normalize's training rows, checked. */
async function openSource(decode: UpstreamArtifacts | undefined, normalize: UpstreamArtifacts): Promise<StreamedSource> {
  const from = [normalize, decode].find((u) => u?.has(DATASET_DIR));
  if (!from) throw new StageError(`augment: ${normalize.stage} has no ${DATASET_DIR}/ output (a result from before datasets were sharded? run it again)`);
  const where = `${from.stage}/${DATASET_DIR}`;
  if (!normalize.has('train_index.npy')) throw new StageError(`augment: ${normalize.stage}/train_index.npy is missing`);
  let reader: DatasetReader;
  try {
    reader = await DatasetReader.open(from.path(DATASET_DIR));
  } catch (error) {
    if (error instanceof DatasetError) throw new StageError(`augment: cannot read ${where}: ${error.message}`, { cause: error });
    throw error;
  }
  try {
    const n = reader.manifest.splits.train;
    const [height, width, channels] = reader.manifest.shape;
    const index = await normalize.readTensor('train_index.npy');
    const indexWhere = `${normalize.stage}/train_index.npy`;
    if (index.dtype !== 'int32' || index.shape.length !== 1) {
      throw new StageError(`augment: ${indexWhere} must be int32 [Ntr], got ${index.dtype} [${index.shape}]`);
    }
    if (index.data.length === 0) throw new StageError(`augment: ${indexWhere} is empty (no training rows)`);
    const rows = index.data as Int32Array;
    const bad = rows.findIndex((v) => v < 0 || v >= n);
    if (bad >= 0) throw new StageError(`augment: ${indexWhere}[${bad}] = ${rows[bad]} is outside ${where} training rows 0..${n - 1}`);
    const shared = new SharedArrayBuffer(rows.byteLength);
    new Int32Array(shared).set(rows);
    const readInto = (first: number, count: number, into: Uint8Array) => {
      try {
        for (let i = 0; i < count; i++) reader.readRowInto(rows[first + i]!, into, i * reader.rowBytes);
      } catch (error) {
        if (error instanceof ShardIntegrityError) throw new StageError(`augment: ${where}: ${error.message}`, { cause: error });
        throw error;
      }
    };
    const table = reader.rows;
    const copiesSource = {
      shape: reader.manifest.shape,
      classes: reader.manifest.classes,
      label: Int32Array.from(rows, (r) => table.label[r]!),
      source: Array.from(rows, (r) => table.source[r]!),
      digest: Array.from(rows, (r) => table.digest[r]!),
      settings: reader.manifest.settings,
      index: rows,
    };
    return {
      source: { images: new SharedArrayBuffer(0), byteOffset: 0, readRows: readInto, index: shared, rows: rows.length, height, width, channels },
      rows: copiesSource,
      read: (first, count) => {
        const out = new Uint8Array(count * reader.rowBytes);
        readInto(first, count, out);
        return out;
      },
      close: () => reader.close(),
    };
  } catch (error) {
    reader.close();
    throw error;
  }
}

/** Writes preview/ PNGs and contact_sheet.png; variant v is exactly row p of copy v. */
async function writePreviews(ctx: StageContext<AugmentParams>, streamed: StreamedSource, config: AugmentConfig): Promise<string[]> {
  const { source } = streamed;
  const { height, width, channels } = source;
  const imageBytes = height * width * channels;
  const count = Math.min(ctx.params.preview_count, source.rows);
  const src = streamed.read(0, count);
  const index = new Int32Array(source.index);
  const files: string[] = [];
  const sheet: Image[][] = [];
  for (let p = 0; p < count; p++) {
    if (ctx.signal.aborted) throw new AbortedError('augment: aborted');
    const original: Image = { height, width, channels, data: src.slice(p * imageBytes, (p + 1) * imageBytes) };
    const row = [original];
    const stem = `preview/image_${String(p).padStart(3, '0')}`;
    files.push(`${stem}_original.png`);
    await writePng(ctx.out.path(`${stem}_original.png`), original);
    for (let v = 0; v < ctx.params.preview_variants; v++) {
      const data = new Uint8Array(imageBytes);
      augmentRows(src, index, data, 0, p, 1, v, ctx.params.seed, source, config, 0);
      const name = `${stem}_variant_${String(v).padStart(2, '0')}.png`;
      files.push(name);
      await writePng(ctx.out.path(name), { height, width, channels, data });
      row.push({ height, width, channels, data });
    }
    sheet.push(row);
  }
  if (sheet.length > 0) await writePng(ctx.out.path('contact_sheet.png'), contactSheet(sheet, defaultLayout(height, width)));
  return files;
}

async function run(ctx: StageContext<AugmentParams>): Promise<void> {
  if (ctx.signal.aborted) throw new AbortedError('augment: aborted');
  const decode = ctx.inputs.ofKind('decode')[0];
  const normalize = ctx.inputs.oneOfKind('normalize');
  const streamed = await openSource(decode, normalize);
  try {
    await augmentFrom(ctx, streamed, normalize);
  } finally {
    streamed.close();
  }
}

async function augmentFrom(ctx: StageContext<AugmentParams>, streamed: StreamedSource, normalize: UpstreamArtifacts): Promise<void> {
  const { params } = ctx;
  const { source } = streamed;
  const config = configOf(params);
  const { rows, height, width, channels } = source;
  ctx.log.info(`augment: ${rows} training images ${height}x${width}x${channels}, ${params.copies} copies, seed ${params.seed}`);

  const previews = await writePreviews(ctx, streamed, config);

  const pool = ctx.workers.get(WORKER, params.threads === undefined ? undefined : { threads: params.threads });
  const copies = Array.from({ length: params.copies }, (_, k) => k);
  // What decides a copy's pixels besides its source rows: the transform, the seed and how the source rows were made.
  const settings = JSON.stringify({ augment: augmentKind.version, config, seed: params.seed, source: streamed.rows.settings });
  const writer = new CopiesDatasetWriter(ctx.out.path(COPIES_DIR), streamed.rows, params.copies, settings);
  const started = performance.now();
  ctx.progress.start('augment', rows * params.copies, 'img');
  try {
    await runAugmentPool(pool, source, {
      config,
      seed: params.seed,
      copies,
      chunkSize: params.chunk_size,
      signal: ctx.signal,
      onChunk: async (copy, first, count, pixels) => {
        try {
          await writer.append(copy, first, count, pixels);
        } catch (error) {
          throw new StageError(`augment: cannot write ${COPIES_DIR}/ (copy ${copy}): ${(error as Error).message}`, { cause: error });
        }
        ctx.progress.tick(count);
      },
    });
    await writer.finish();
  } catch (error) {
    // The shard being written is removed; the rest of the output is discarded by the engine.
    await writer.abort().catch(() => {});
    if (ctx.signal.aborted) throw new AbortedError('augment: aborted');
    if (error instanceof AugmentPoolError) throw new StageError(`augment: ${error.message}`, { cause: error });
    throw error;
  }
  await ctx.out.tensor(SOURCE_INDEX, { dtype: 'int32', shape: [rows], data: streamed.rows.index });
  const seconds = (performance.now() - started) / 1000;
  ctx.progress.done(`${Math.round((rows * params.copies) / seconds)} img/s`);
  ctx.log.info(`augment: ${rows * params.copies} images in ${seconds.toFixed(1)} s on ${pool.maxThreads} threads`);

  // Deterministic content only (no timings): equal inputs and params give equal bytes.
  await ctx.out.json('augment.json', {
    transform: 'keras ImageDataGenerator get_random_transform + apply_transform (keras >= 2.6), bilinear, scipy boundary modes',
    rows,
    image_shape: [height, width, channels],
    copies: params.copies,
    dataset: `${COPIES_DIR}/`,
    dataset_rows: `row copy × ${rows} + i is training row i of that copy: dataset row ${SOURCE_INDEX}[i] (${normalize.stage}/train_index.npy[i]) augmented, with its label`,
    seed: params.seed,
    params: {
      rotation_range: params.rotation_range,
      width_shift_range: params.width_shift_range,
      height_shift_range: params.height_shift_range,
      shear_range: params.shear_range,
      zoom_range: config.zoomRange,
      horizontal_flip: params.horizontal_flip,
      vertical_flip: params.vertical_flip,
      fill_mode: params.fill_mode,
      cval: params.cval,
    },
    preview: { images: Math.min(params.preview_count, rows), variants: params.preview_variants, files: previews },
    contact_sheet: previews.length > 0 ? 'contact_sheet.png' : null,
  });
}

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
  run,
});

export default augmentKind;
