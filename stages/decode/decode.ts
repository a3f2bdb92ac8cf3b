// `decode`: a fetched dataset directory → uint8 image tensors [N, H, W, C] and int32 labels per
// split, class names, and decode.json (format, counts per split and class, skipped files).
// Formats: the official CIFAR-10 binary batches, or image folders train/<class>/*, test/<class>/*
// (JPEG or PNG, any size, converted to the configured shape). Image folders are decoded on the
// worker pool in chunks, straight into one shared buffer per split; rows are ordered by class
// (sorted), then file name (sorted).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineStage, type StageContext } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { CIFAR_RECORD_BYTES, CIFAR_SIDE, scanCifarBinary, unpackRecords, type CifarBatch } from '../../lib/images/cifar-binary.js';
import { convertImage, RESIZE_METHODS } from '../../lib/images/convert.js';
import { DatasetError } from '../../lib/errors.js';
import { decoderVersions } from '../../lib/images/decoder-versions.js';
import type { DecodeFailure, DecodeTask, DecodeTaskResult } from '../../lib/images/decode-task.js';
import { scanImageFolders, SPLITS, type Split } from '../../lib/images/image-folders.js';
import { DATASET_FORMATS, locateDataset, type DatasetFormat } from '../../lib/images/layout.js';
import { DEFAULT_MAX_PIXELS } from '../../lib/images/pixel-limit.js';
import { imageBytes, type TargetShape } from '../../lib/images/raw-image.js';

export const DecodeParams = z.strictObject({
  format: z
    .enum(['auto', ...DATASET_FORMATS])
    .default('auto')
    .describe('dataset layout: cifar-binary (data_batch_<n>.bin...), image-folder (train/<class>/*, test/<class>/*), or auto-detect'),
  height: z.int().min(1).max(4096).default(32).describe('output image height (images of another size are resized)'),
  width: z.int().min(1).max(4096).default(32).describe('output image width'),
  channels: z
    .union([z.literal(1), z.literal(3)])
    .default(3)
    .describe('3: RGB (gray images expanded); 1: gray (colour reduced to luma, as PIL convert("L")); alpha is dropped'),
  resize: z
    .enum(RESIZE_METHODS)
    .default('bilinear')
    .describe('resampling for images of another size: bilinear (half-pixel centres), nearest, or area (box average; best for shrinking)'),
  skip_corrupt: z.boolean().default(false).describe('skip unreadable, corrupt or over-max_pixels images (counted and named in decode.json) instead of failing'),
  max_pixels: z
    .int()
    .min(1)
    .default(DEFAULT_MAX_PIXELS)
    .describe(
      "largest width × height a JPEG or PNG may have (read from its header, before decoding; Pillow's MAX_IMAGE_PIXELS); larger images fail the stage, or are skipped with skip_corrupt",
    ),
});
export type DecodeParams = z.output<typeof DecodeParams>;

const WORKER = fileURLToPath(new URL('../../workers/decode.js', import.meta.url));
/** Files per worker task: large enough to amortise messaging, small enough for smooth progress. */
const FILES_PER_TASK = 500;
/** Bytes per write when streaming a tensor out of memory. */
const WRITE_CHUNK = 8 << 20;
/** How many skipped file names decode.json lists (the count is always complete). */
const LISTED_SKIPPED = 100;

interface SplitResult {
  labels: Int32Array;
  skipped: DecodeFailure[];
}

interface Decoded {
  format: DatasetFormat;
  classes: string[];
  splits: Record<Split, SplitResult>;
  ignoredFiles: string[];
}

/** The fetched directory, and how the user knows it: the fetch stage's url. */
interface DataSource {
  /** The upstream `data/` output (a path inside the store). */
  dir: string;
  /** e.g. `file:///data/pets`, or `the data/ output of stage 'prep'`. */
  label: string;
}

/** The `data/` output of the single upstream stage that has one. */
function dataSource(ctx: StageContext<DecodeParams>): DataSource {
  const withData = ctx.inputs.all.filter((u) => u.has('data'));
  if (withData.length === 1) {
    const u = withData[0]!;
    const url = u.kind === 'fetch' ? u.params.url : undefined;
    return { dir: u.path('data'), label: typeof url === 'string' ? url : `the data/ output of stage '${u.stage}'` };
  }
  const names = ctx.inputs.all.map((u) => u.stage).join(', ') || 'none';
  throw new StageError(
    withData.length === 0
      ? `decode needs an upstream stage with a data/ output (e.g. fetch); inputs: ${names}`
      : `decode takes one data/ input, but ${withData.map((u) => u.stage).join(', ')} all have one: keep one in needs`,
  );
}

/** A file's path inside the source (`train/cat/0003.jpg`), not inside the store. */
function inSource(source: DataSource, file: string): string {
  return file.startsWith(source.dir + '/') ? file.slice(source.dir.length + 1) : file;
}

/**
 * A dataset error's message as the user can act on it: store paths become paths inside the
 * source, and the source is named (`empty class folder train/cat (in file:///data/pets)`).
 */
function forUser(source: DataSource, message: string): string {
  const parts = message.split(source.dir);
  let out = parts[0]!;
  let relative = false;
  for (const part of parts.slice(1)) {
    if (part.startsWith('/')) {
      out += part.slice(1);
      relative = true;
    } else if (part === '' || /^[\s:;,.)]/.test(part)) {
      out += source.label + part;
    } else {
      out += source.dir + part; // a longer name that merely starts the same
    }
  }
  return relative && !out.includes(source.label) ? `${out} (in ${source.label})` : out;
}

function shapeOf(params: DecodeParams): TargetShape {
  return { height: params.height, width: params.width, channels: params.channels };
}

/** Streams `rows` rows of `pixels` to `<split>_images.npy`, leaving out the rows in `skip`. */
async function writeImages(ctx: StageContext<DecodeParams>, name: string, pixels: Uint8Array, rows: number, skip: ReadonlySet<number>): Promise<void> {
  const shape = shapeOf(ctx.params);
  const rowBytes = imageBytes(shape);
  const stream = await ctx.out.tensorStream(name, 'uint8', [rows - skip.size, shape.height, shape.width, shape.channels]);
  const rowsPerWrite = Math.max(1, Math.floor(WRITE_CHUNK / rowBytes));
  let row = 0;
  while (row < rows) {
    if (skip.has(row)) {
      row++;
      continue;
    }
    let end = row;
    while (end < rows && end - row < rowsPerWrite && !skip.has(end)) end++;
    await stream.write(pixels.subarray(row * rowBytes, end * rowBytes));
    row = end;
  }
  await stream.close();
}

/**
 * Decodes every file of both splits on the worker pool, each split into its own shared buffer
 * (one task queue for both, so the workers never wait for a write), then streams the buffers out.
 */
async function decodeImageFolders(ctx: StageContext<DecodeParams>, dir: string, source: DataSource): Promise<Decoded> {
  // Getting the pool first lets its threads start (and compile the decoder) while we scan.
  const pool = ctx.workers.get(WORKER);
  const dataset = scanImageFolders(dir);
  const shape = shapeOf(ctx.params);
  const pixels = Object.fromEntries(SPLITS.map((split) => [split, new SharedArrayBuffer(dataset.splits[split].files.length * imageBytes(shape))])) as Record<
    Split,
    SharedArrayBuffer
  >;
  const tasks: DecodeTask[] = SPLITS.flatMap((split) => {
    const files = dataset.splits[split].files;
    return Array.from({ length: Math.ceil(files.length / FILES_PER_TASK) }, (_, t) => ({
      files: files.slice(t * FILES_PER_TASK, (t + 1) * FILES_PER_TASK),
      firstRow: t * FILES_PER_TASK,
      pixels: pixels[split],
      shape,
      resize: ctx.params.resize,
      skipCorrupt: ctx.params.skip_corrupt,
      maxPixels: ctx.params.max_pixels,
    }));
  });
  const splitOf = (task: DecodeTask): Split => SPLITS.find((s) => pixels[s] === task.pixels)!;

  // Stop queued work as soon as the stage cannot succeed (or is interrupted).
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  const failures: Record<Split, DecodeFailure[]> = { train: [], test: [] };
  let next = 0;
  ctx.progress.start(
    'decode',
    tasks.reduce((n, t) => n + t.files.length, 0),
    'img',
  );
  // A few tasks in flight per thread keep workers busy without relying on the pool's queue size.
  const lanes = Math.max(1, pool.options.maxThreads) * 2;
  const lane = async (): Promise<void> => {
    while (next < tasks.length && !signal.aborted) {
      const task = tasks[next++]!;
      const result = (await pool.run(task, { signal })) as DecodeTaskResult;
      failures[splitOf(task)].push(...result.failures);
      if (result.failures.length > 0 && !ctx.params.skip_corrupt) stop.abort();
      ctx.progress.tick(task.files.length);
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: lanes }, lane));
  ctx.signal.throwIfAborted();
  const all = SPLITS.flatMap((s) => failures[s].sort((a, b) => a.row - b.row));
  if (all.length > 0 && !ctx.params.skip_corrupt) {
    const first = all[0]!;
    const where = `${inSource(source, first.file)} in ${source.label}`;
    throw new StageError(
      first.tooLarge
        ? `image ${where} is too large: ${forUser(source, first.reason)} (max_pixels: raise it to decode such images, or set skip_corrupt: true to skip them)`
        : `corrupt or unreadable image ${where}: ${forUser(source, first.reason)} (set skip_corrupt: true to skip such files)`,
    );
  }
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  ctx.progress.done(all.length > 0 ? `${all.length} skipped` : undefined);
  for (const f of all) ctx.log.warn(`skipped ${f.tooLarge ? 'too large' : 'corrupt'} image ${inSource(source, f.file)}: ${forUser(source, f.reason)}`);

  const splits = {} as Record<Split, SplitResult>;
  for (const split of SPLITS) {
    const skip = new Set(failures[split].map((f) => f.row));
    const { files, labels } = dataset.splits[split];
    await writeImages(ctx, `${split}_images.npy`, new Uint8Array(pixels[split]), files.length, skip);
    splits[split] = { labels: labels.filter((_, row) => !skip.has(row)), skipped: failures[split] };
  }
  return { format: 'image-folder', classes: dataset.classes, splits, ignoredFiles: dataset.ignored };
}

/** Unpacks CIFAR binary batches one at a time (≈30 MB each) into `<split>_images.npy`. */
async function decodeCifarSplit(ctx: StageContext<DecodeParams>, split: Split, batches: CifarBatch[], classes: string[]): Promise<SplitResult> {
  const shape = shapeOf(ctx.params);
  const rows = batches.reduce((n, b) => n + b.records, 0);
  const labels = new Int32Array(rows);
  const native = shape.height === CIFAR_SIDE && shape.width === CIFAR_SIDE && shape.channels === 3;
  const rowBytes = imageBytes(shape);
  const stream = await ctx.out.tensorStream(`${split}_images.npy`, 'uint8', [rows, shape.height, shape.width, shape.channels]);
  ctx.progress.start(`decode ${split}`, rows, 'img');
  let row = 0;
  for (const batch of batches) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const records = await readFile(batch.path);
    if (records.length !== batch.records * CIFAR_RECORD_BYTES) throw new DatasetError(`CIFAR binary batch ${batch.path} changed while reading`);
    const rgb = new Uint8Array(batch.records * CIFAR_SIDE * CIFAR_SIDE * 3);
    unpackRecords(records, batch.records, classes.length, rgb, labels.subarray(row, row + batch.records), batch.path);
    let out = rgb;
    if (!native) {
      out = new Uint8Array(batch.records * rowBytes);
      const recordBytes = CIFAR_SIDE * CIFAR_SIDE * 3;
      for (let r = 0; r < batch.records; r++) {
        const data = rgb.subarray(r * recordBytes, (r + 1) * recordBytes);
        convertImage({ width: CIFAR_SIDE, height: CIFAR_SIDE, channels: 3, data }, shape, ctx.params.resize, out, r * rowBytes);
      }
    }
    await stream.write(out);
    row += batch.records;
    ctx.progress.tick(batch.records);
  }
  await stream.close();
  ctx.progress.done();
  return { labels, skipped: [] };
}

async function decodeCifarBinary(ctx: StageContext<DecodeParams>, dir: string): Promise<Decoded> {
  const dataset = scanCifarBinary(dir);
  return {
    format: 'cifar-binary',
    classes: dataset.classes,
    splits: {
      train: await decodeCifarSplit(ctx, 'train', dataset.train, dataset.classes),
      test: await decodeCifarSplit(ctx, 'test', dataset.test, dataset.classes),
    },
    ignoredFiles: [],
  };
}

function countsPerClass(labels: Int32Array, classes: string[]): Record<string, number> {
  const counts = new Array<number>(classes.length).fill(0);
  for (const label of labels) counts[label]!++;
  return Object.fromEntries(classes.map((c, i) => [c, counts[i]!]));
}

async function run(ctx: StageContext<DecodeParams>): Promise<void> {
  const source = dataSource(ctx);
  const root = source.dir;
  let decoded: Decoded;
  let dir: string;
  try {
    const found = locateDataset(root, ctx.params.format === 'auto' ? 'auto' : ctx.params.format);
    dir = found.dir;
    ctx.log.info(`decoding ${found.format} dataset in ${dir === root ? source.label : `${inSource(source, dir)} in ${source.label}`}`);
    decoded = found.format === 'cifar-binary' ? await decodeCifarBinary(ctx, dir) : await decodeImageFolders(ctx, dir, source);
  } catch (err) {
    if (err instanceof DatasetError) throw new StageError(forUser(source, err.message), { cause: err });
    throw err;
  }
  for (const split of SPLITS) {
    const labels = decoded.splits[split].labels;
    await ctx.out.tensor(`${split}_labels.npy`, { dtype: 'int32', shape: [labels.length], data: labels });
  }
  await ctx.out.json('classes.json', decoded.classes);
  const skipped = SPLITS.flatMap((s) => decoded.splits[s].skipped);
  const relative = (file: string) => inSource(source, file);
  await ctx.out.json('decode.json', {
    format: decoded.format,
    source: dir === root ? '.' : relative(dir),
    shape: [ctx.params.height, ctx.params.width, ctx.params.channels],
    resize: ctx.params.resize,
    order: decoded.format === 'image-folder' ? 'class (sorted), then file name (sorted)' : 'batch files in order, records in order',
    classes: decoded.classes,
    counts: Object.fromEntries(
      SPLITS.map((s) => [s, { total: decoded.splits[s].labels.length, per_class: countsPerClass(decoded.splits[s].labels, decoded.classes) }]),
    ),
    // Everything skip_corrupt skipped; over_max_pixels says how many of those were refused for their size.
    skipped_corrupt: skipped.length,
    over_max_pixels: skipped.filter((f) => f.tooLarge).length,
    skipped_files: skipped.slice(0, LISTED_SKIPPED).map((f) => ({ file: relative(f.file), reason: forUser(source, f.reason) })),
    ignored_files: decoded.ignoredFiles.length,
    decoders: decoderVersions(),
  });
}

export const decodeStage = defineStage({
  name: 'decode',
  // 2: JPEGs that wasm libjpeg-turbo refused for unread padding now decode (a cached run with
  // skip_corrupt may have skipped them). 3: PNGs decoded here (not pngjs): truncated image data is
  // corrupt instead of black, and colour-keyed (tRNS) pixels keep their colour.
  version: 3,
  description: 'Decode a fetched CIFAR-10 binary release or JPEG/PNG image folders into uint8 image tensors and labels',
  params: DecodeParams,
  outputs: [
    { name: 'train_images.npy', type: 'tensor', description: 'uint8 [N, H, W, C] training images' },
    { name: 'train_labels.npy', type: 'tensor', description: 'int32 [N] class index per training image' },
    { name: 'test_images.npy', type: 'tensor', description: 'uint8 [N, H, W, C] test images' },
    { name: 'test_labels.npy', type: 'tensor', description: 'int32 [N] class index per test image' },
    { name: 'classes.json', type: 'json', description: 'class names (index = label)' },
    { name: 'decode.json', type: 'json', description: 'format, shape, counts per split and class, skipped corrupt files' },
  ],
  // The decoders' versions can change pixels: they belong in the cache key.
  fingerprint: async () => decoderVersions(),
  run,
});
