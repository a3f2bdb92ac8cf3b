// `augment`'s work (stages/augment/augment.ts declares the kind): the copies on the worker pool,
// the previews and augment.json.
import { type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
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
import { augmentKind, type AugmentParams } from './augment.js';

const WORKER = new URL('../../workers/augment.js', import.meta.url).href;

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

export async function runAugment(ctx: StageContext<AugmentParams>): Promise<void> {
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
