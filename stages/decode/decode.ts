// `decode`: a fetched dataset directory → a sharded uint8 dataset (docs/datasets.md: shards of
// [rows, H, W, C], labels, the source file of each row), class names, and decode.json (format,
// counts per split and class, skipped files, what changed since the previous result).
// Formats: the official CIFAR-10 binary batches, or image folders train/<class>/*, test/<class>/*
// (JPEG or PNG, any size, converted to the configured shape). Rows are ordered by split, class
// (sorted), then file name (sorted). Incremental: files whose content did not change since this
// stage's previous result keep their decoded rows (the same shard objects); only new and changed
// files are decoded, on the worker pool. The sources are read where fetch put them: a pack (pack/,
// entries read by offset, digests from its index) or a directory (data/).
import { dirname, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineStage, type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { CIFAR_RECORD_BYTES, CIFAR_SIDE, scanCifarBinary, unpackRecords } from '../../lib/images/cifar-binary.js';
import { convertImage, RESIZE_METHODS } from '../../lib/images/convert.js';
import { DatasetError, PackError, PackIntegrityError, SourceDecodeError } from '../../lib/errors.js';
import { buildDataset, type BuildResult, type DecodeChunk, type LabeledSource } from '../../lib/dataset/build.js';
import { DatasetReader } from '../../lib/dataset/reader.js';
import { DATASET_DIR } from '../../lib/dataset/format.js';
import { DEFAULT_SHARD_BYTES } from '../../lib/dataset/writer.js';
import { PACK_DIR, PackReader } from '../../lib/fetch/pack.js';
import { decoderVersions } from '../../lib/images/decoder-versions.js';
import type { DecodeTask, DecodeTaskResult } from '../../lib/images/decode-task.js';
import { scanImageFolders, SPLITS, type Split } from '../../lib/images/image-folders.js';
import { DATASET_FORMATS, locateDataset, type DatasetFormat } from '../../lib/images/layout.js';
import { DEFAULT_MAX_PIXELS } from '../../lib/images/pixel-limit.js';
import { imageBytes, type TargetShape } from '../../lib/images/raw-image.js';
import { perClassFilter, type PerClassLimit } from '../../lib/dataset/per-class-limit.js';
import { DirectoryTree, PackTree, type SourceTree } from '../../lib/images/source-tree.js';

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
  skip_corrupt: z
    .boolean()
    .default(false)
    .describe(
      'skip unreadable, corrupt or over-max_pixels images (counted and named in decode.json) instead of failing naming the file (its path inside the source, e.g. train/cat/0003.jpg in file:///data/pets)',
    ),
  max_pixels: z
    .int()
    .min(1)
    .default(DEFAULT_MAX_PIXELS)
    .describe(
      "largest width × height a JPEG or PNG may have (read from its header, before decoding; Pillow's MAX_IMAGE_PIXELS); larger images fail the stage naming the file, its size and the limit, or are skipped with skip_corrupt (counted in over_max_pixels). The default is ≈ 9459×9459 (Pillow warns there and refuses at twice it); raise it for datasets of larger images. In the cache key only when not the default",
    ),
  shard_mb: z
    .int()
    .min(1)
    .max(4096)
    .default(DEFAULT_SHARD_BYTES >> 20)
    .describe(
      'largest shard of decoded pixels, in MiB (a file of the dataset; an unchanged shard is reused by the next run); layout only, not in the cache key',
    ),
  max_per_class: z
    .union([
      z.int().positive(),
      z.strictObject({
        train: z.int().positive().optional().describe('images kept per class of the training split'),
        test: z.int().positive().optional().describe('images kept per class of the test split'),
      }),
    ])
    .optional()
    .describe(
      'keep only the first N images of each class (in row order: file name, or record order in the CIFAR batches): a number for both splits, or {train: N, test: M}; a split without a cap keeps all. For demos and smoke runs; absent: every image (and not in the cache key)',
    ),
});
export type DecodeParams = z.output<typeof DecodeParams>;

const WORKER = fileURLToPath(new URL('../../workers/decode.js', import.meta.url));
/** Files per worker task: large enough to amortise messaging, small enough for smooth progress. */
const FILES_PER_TASK = 250;
/** Sources per build chunk (decoded while the previous chunk is written). */
const FILES_PER_CHUNK = 1000;
/** How many skipped file names decode.json lists (the count is always complete). */
const LISTED_SKIPPED = 100;
/** The failure code of an image refused for its size (max_pixels), not for being corrupt. */
const TOO_LARGE = 'too-large';

/** The fetched files, and how the user knows them: the fetch stage's url. */
interface DataSource {
  upstream: UpstreamArtifacts;
  /** The upstream's `pack/` or `data/` output. */
  tree: SourceTree;
  /** The tree's root (a path inside the store): messages name paths below it. */
  dir: string;
  /** e.g. `file:///data/pets`, or `the data/ output of stage 'prep'`. */
  label: string;
}

/** The `pack/` (or else `data/`) output of the single upstream stage that has one. */
async function dataSource(ctx: StageContext<DecodeParams>): Promise<DataSource> {
  const withData = ctx.inputs.all.filter((u) => u.has(PACK_DIR) || u.has('data'));
  if (withData.length === 1) {
    const u = withData[0]!;
    const output = u.has(PACK_DIR) ? PACK_DIR : 'data';
    const url = u.kind === 'fetch' ? u.params.url : undefined;
    const label = typeof url === 'string' ? url : `the ${output}/ output of stage '${u.stage}'`;
    if (output === 'data') {
      const dir = u.path('data');
      // The store hashed every file when it committed them: their digests are in its manifest.
      const base = dirname(dir) + '/';
      const tree = new DirectoryTree(dir, (path) => (path.startsWith(base) ? u.digest(path.slice(base.length)) : undefined));
      return { upstream: u, tree, dir, label };
    }
    try {
      const tree = new PackTree(await PackReader.open(u.path(PACK_DIR)));
      return { upstream: u, tree, dir: tree.root, label };
    } catch (err) {
      if (err instanceof PackError) throw new StageError(`cannot read the pack of ${label}: ${err.message}`, { cause: err });
      throw err;
    }
  }
  const names = ctx.inputs.all.map((u) => u.stage).join(', ') || 'none';
  throw new StageError(
    withData.length === 0
      ? `decode needs an upstream stage with a data/ output or a pack/ output (e.g. fetch); inputs: ${names}`
      : `decode takes one data/ or pack/ input, but ${withData.map((u) => u.stage).join(', ')} all have one: keep one in needs`,
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

/** `max_per_class` as a cap per split (a single number caps both). */
function perClassLimit(params: DecodeParams): PerClassLimit | undefined {
  const cap = params.max_per_class;
  return typeof cap === 'number' ? { train: cap, test: cap } : cap;
}

function shapeOf(params: DecodeParams): TargetShape {
  return { height: params.height, width: params.width, channels: params.channels };
}

/** What the dataset is about to be built from, in logical order, and how to decode a chunk of it. */
interface Plan {
  format: DatasetFormat;
  classes: string[];
  sources: LabeledSource[];
  decode: DecodeChunk;
  ignoredFiles: string[];
}

/** Image folders: every file is a source; chunks are decoded on the worker pool into shared memory. */
async function imageFolderPlan(ctx: StageContext<DecodeParams>, dir: string, source: DataSource): Promise<Plan> {
  // Getting the pool first lets its threads start (and compile the decoder) while we scan.
  const pool = ctx.workers.get(WORKER);
  const dataset = scanImageFolders(source.tree, dir);
  const files: string[] = [];
  const sources: LabeledSource[] = [];
  const keep = perClassFilter(perClassLimit(ctx.params));
  for (const split of SPLITS) {
    const { files: splitFiles, labels } = dataset.splits[split];
    for (let i = 0; i < splitFiles.length; i++) {
      if (!keep(split, labels[i]!)) continue;
      const file = splitFiles[i]!;
      files.push(file);
      sources.push({ split, label: labels[i]!, source: file.slice(dir.length + 1), digest: source.tree.digest(file) });
    }
  }
  const shape = shapeOf(ctx.params);
  const rowBytes = imageBytes(shape);
  // Two pixel buffers used in turn (DecodeChunk allows it). A new buffer per chunk leaked: each
  // worker thread keeps the buffers of the tasks it ran until its own heap is collected, which a
  // thread allocating almost nothing rarely does (decode peaked at 6.1 GB for 70,000 224×224 images).
  const buffers: SharedArrayBuffer[] = [];
  let turn = 0;
  const decode: DecodeChunk = async (indices) => {
    const k = turn++ % 2;
    if ((buffers[k]?.byteLength ?? -1) < indices.length * rowBytes) buffers[k] = new SharedArrayBuffer(Math.max(indices.length, FILES_PER_CHUNK) * rowBytes);
    const pixels = buffers[k]!;
    const tasks: DecodeTask[] = [];
    for (let first = 0; first < indices.length; first += FILES_PER_TASK) {
      const part = indices.slice(first, first + FILES_PER_TASK);
      tasks.push({
        sources: part.map((i) => source.tree.locate(files[i]!)),
        firstRow: first,
        pixels,
        shape,
        resize: ctx.params.resize,
        skipCorrupt: ctx.params.skip_corrupt,
        maxPixels: ctx.params.max_pixels,
      });
    }
    let results: DecodeTaskResult[];
    try {
      results = (await Promise.all(tasks.map((task) => pool.run(task, { signal: ctx.signal })))) as DecodeTaskResult[];
    } catch (err) {
      ctx.signal.throwIfAborted(); // the run's reason, not the pool's "task aborted"
      throw err;
    }
    // Store damage is not a corrupt image to skip: it fails the stage whatever skip_corrupt says.
    const damaged = results.find((r) => r.damaged !== undefined)?.damaged;
    if (damaged !== undefined) throw new StageError(forUser(source, damaged));
    const failed = new Map(
      results.flatMap((r) => r.failures.map((f) => [f.row, { failed: forUser(source, f.reason), ...(f.tooLarge ? { code: TOO_LARGE } : {}) }] as const)),
    );
    return indices.map((_, k) => failed.get(k) ?? new Uint8Array(pixels, k * rowBytes, rowBytes));
  };
  return { format: 'image-folder', classes: dataset.classes, sources, decode, ignoredFiles: dataset.ignored };
}

/** CIFAR binary batches: a source is a record (`data_batch_1.bin#00042`), keyed by its batch file's digest. */
async function cifarBinaryPlan(ctx: StageContext<DecodeParams>, dir: string, source: DataSource): Promise<Plan> {
  const dataset = scanCifarBinary(source.tree, dir);
  const shape = shapeOf(ctx.params);
  const native = shape.height === CIFAR_SIDE && shape.width === CIFAR_SIDE && shape.channels === 3;
  const recordPixels = CIFAR_SIDE * CIFAR_SIDE * 3;
  const batches = [...dataset.train.map((b) => ({ ...b, split: 'train' as Split })), ...dataset.test.map((b) => ({ ...b, split: 'test' as Split }))];
  const sources: LabeledSource[] = [];
  const where: Array<{ batch: number; record: number }> = [];
  const keep = perClassFilter(perClassLimit(ctx.params));
  for (const [b, batch] of batches.entries()) {
    const records = source.tree.read(batch.path);
    if (records.length !== batch.records * CIFAR_RECORD_BYTES) throw new DatasetError(`CIFAR binary batch ${batch.path} changed while reading`);
    const digest = source.tree.digest(batch.path);
    const name = relative(dir, batch.path).split(sep).join('/');
    for (let r = 0; r < batch.records; r++) {
      const label = records[r * CIFAR_RECORD_BYTES]!;
      if (label >= dataset.classes.length) {
        throw new DatasetError(
          `CIFAR binary batch ${batch.path}: record ${r} has label ${label}, but batches.meta.txt lists ${dataset.classes.length} classes`,
        );
      }
      if (!keep(batch.split, label)) continue;
      sources.push({ split: batch.split, label, source: `${name}#${String(r).padStart(5, '0')}`, digest });
      where.push({ batch: b, record: r });
    }
  }
  let loaded: { batch: number; records: Uint8Array } | undefined;
  const decode: DecodeChunk = async (indices) => {
    const out: Uint8Array[] = [];
    const rgb = new Uint8Array(recordPixels);
    const label = new Int32Array(1);
    for (const i of indices) {
      const { batch, record } = where[i]!;
      if (loaded?.batch !== batch) loaded = { batch, records: source.tree.read(batches[batch]!.path) };
      const one = loaded.records.subarray(record * CIFAR_RECORD_BYTES, (record + 1) * CIFAR_RECORD_BYTES);
      unpackRecords(one, 1, dataset.classes.length, rgb, label, batches[batch]!.path);
      const row = new Uint8Array(imageBytes(shape));
      if (native) row.set(rgb);
      else convertImage({ width: CIFAR_SIDE, height: CIFAR_SIDE, channels: 3, data: rgb }, shape, ctx.params.resize, row, 0);
      out.push(row);
    }
    return out;
  };
  return { format: 'cifar-binary', classes: dataset.classes, sources, decode, ignoredFiles: [] };
}

/** The previous result's dataset, when it has one this build can read (else everything is decoded). */
async function previousDataset(ctx: StageContext<DecodeParams>): Promise<DatasetReader | undefined> {
  const previous = ctx.previous;
  if (!previous?.has(DATASET_DIR)) return undefined;
  try {
    return await DatasetReader.open(previous.path(DATASET_DIR));
  } catch (err) {
    ctx.log.warn(`previous result's dataset is unreadable, decoding everything: ${(err as Error).message}`);
    return undefined;
  }
}

/** What makes a decoded row: equal settings, equal pixels for equal source bytes. */
function settingsOf(params: DecodeParams, format: DatasetFormat): string {
  const { height, width, channels, resize } = params;
  return JSON.stringify({ format, height, width, channels, resize, decoders: decoderVersions(), version: decodeStage.version });
}

async function build(ctx: StageContext<DecodeParams>, plan: Plan, source: DataSource): Promise<BuildResult> {
  const previous = await previousDataset(ctx);
  const { height, width, channels } = ctx.params;
  ctx.progress.start('decode', plan.sources.length, 'img');
  try {
    const result = await buildDataset({
      dir: ctx.out.path(DATASET_DIR),
      shape: [height, width, channels],
      classes: plan.classes,
      settings: settingsOf(ctx.params, plan.format),
      sources: plan.sources,
      decode: plan.decode,
      skipFailed: ctx.params.skip_corrupt,
      ...(previous ? { previous } : {}),
      carry: (_dir, file) => ctx.out.reuse(`${DATASET_DIR}/${file}`, ctx.previous!, `${DATASET_DIR}/${file}`),
      maxShardBytes: ctx.params.shard_mb << 20,
      chunk: FILES_PER_CHUNK,
      signal: ctx.signal,
      onRows: (done) => ctx.progress.update(done),
    });
    ctx.progress.done(result.skipped.length > 0 ? `${result.skipped.length} skipped` : `${result.plan.decoded} decoded, ${result.plan.reused} kept`);
    return result;
  } catch (err) {
    if (err instanceof SourceDecodeError) {
      const where = `${err.source} in ${source.label}`;
      throw new StageError(
        err.code === TOO_LARGE
          ? `image ${where} is too large: ${err.reason} (max_pixels: raise it to decode such images, or set skip_corrupt: true to skip them)`
          : `corrupt or unreadable image ${where}: ${err.reason} (set skip_corrupt: true to skip such files)`,
      );
    }
    throw err;
  } finally {
    previous?.close();
  }
}

function countsPerClass(labels: Int32Array, classes: string[]): Record<string, number> {
  const counts = new Array<number>(classes.length).fill(0);
  for (const label of labels) counts[label]!++;
  return Object.fromEntries(classes.map((c, i) => [c, counts[i]!]));
}

async function run(ctx: StageContext<DecodeParams>): Promise<void> {
  const source = await dataSource(ctx);
  try {
    await decodeSource(ctx, source);
  } finally {
    source.tree.close();
  }
}

async function decodeSource(ctx: StageContext<DecodeParams>, source: DataSource): Promise<void> {
  const root = source.dir;
  let plan: Plan;
  let dir: string;
  let result: BuildResult;
  try {
    const found = locateDataset(source.tree, ctx.params.format === 'auto' ? 'auto' : ctx.params.format);
    dir = found.dir;
    ctx.log.info(`decoding ${found.format} dataset in ${dir === root ? source.label : `${inSource(source, dir)} in ${source.label}`}`);
    plan = found.format === 'cifar-binary' ? await cifarBinaryPlan(ctx, dir, source) : await imageFolderPlan(ctx, dir, source);
    result = await build(ctx, plan, source);
  } catch (err) {
    if (err instanceof DatasetError || err instanceof PackIntegrityError) throw new StageError(forUser(source, err.message), { cause: err });
    throw err;
  }
  for (const f of result.skipped) ctx.log.warn(`skipped ${f.code === TOO_LARGE ? 'too large' : 'corrupt'} image ${f.source}: ${f.reason}`);
  const { manifest } = result;
  const labelsOf = (split: Split) => {
    const kept = new Set(result.skipped.map((f) => f.source));
    return Int32Array.from(plan.sources.filter((s) => s.split === split && !kept.has(s.source)).map((s) => s.label));
  };
  await ctx.out.json('classes.json', plan.classes);
  const { plan: made } = result;
  if (ctx.previous)
    ctx.log.info(
      `since the previous result: ${made.added} added, ${made.changed} changed, ${made.removed} removed; ${made.decoded} decoded, ${made.reused} kept`,
    );
  await ctx.out.json('decode.json', {
    format: plan.format,
    source: dir === root ? '.' : inSource(source, dir),
    shape: [ctx.params.height, ctx.params.width, ctx.params.channels],
    resize: ctx.params.resize,
    max_per_class: perClassLimit(ctx.params) ?? null,
    order: plan.format === 'image-folder' ? 'class (sorted), then file name (sorted)' : 'batch files in order, records in order',
    classes: plan.classes,
    counts: Object.fromEntries(SPLITS.map((s) => [s, { total: manifest.splits[s], per_class: countsPerClass(labelsOf(s), plan.classes) }])),
    skipped_corrupt: result.skipped.length,
    // Everything skip_corrupt skipped; over_max_pixels says how many of those were refused for their size.
    over_max_pixels: result.skipped.filter((f) => f.code === TOO_LARGE).length,
    skipped_files: result.skipped.slice(0, LISTED_SKIPPED).map((f) => ({ file: f.source, reason: f.reason })),
    ignored_files: plan.ignoredFiles.length,
    dataset: { dir: DATASET_DIR, shards: manifest.shards.length, rows: manifest.splits.train + manifest.splits.test },
    // Against this stage's previous result in this store (none on a first run or a remote worker).
    changes: ctx.previous ? { since: ctx.previous.provenance.key, ...made } : null,
    decoders: decoderVersions(),
  });
}

export const decodeStage = defineStage({
  name: 'decode',
  // 2: JPEGs that wasm libjpeg-turbo refused for unread padding now decode (a cached run with
  // skip_corrupt may have skipped them). 3: PNGs decoded here (not pngjs): truncated image data is
  // corrupt instead of black, and colour-keyed (tRNS) pixels keep their colour. 4: a sharded
  // dataset instead of one array per split.
  version: 4,
  description:
    'Decode a fetched CIFAR-10 binary release or JPEG/PNG image folders into a sharded uint8 dataset (incremental: unchanged files are not decoded again)',
  inputs: 'one stage with a pack/ or data/ output (fetch): CIFAR-10 binary batches, or image folders train/<class>/*, test/<class>/* (JPEG, PNG)',
  params: DecodeParams,
  outputs: [
    {
      name: DATASET_DIR,
      type: 'dir',
      description:
        'the images as a sharded uint8 dataset: dataset.json, rows.json (label, shard, slot, crc32, source file of each row), shards/<id>.npy [rows, H, W, C]',
    },
    { name: 'classes.json', type: 'json', description: 'class names (index = label)' },
    { name: 'decode.json', type: 'json', description: 'format, shape, counts per split and class, skipped corrupt files, changes since the previous result' },
  ],
  // Shard size changes where rows are stored, never which rows or pixels: not in the key.
  // max_pixels and max_per_class enter the key only when set, so keys made before they existed hold.
  cacheParams: ({ shard_mb: _shardMb, max_pixels, max_per_class, ...rest }) => ({
    ...rest,
    ...(max_pixels !== DEFAULT_MAX_PIXELS ? { max_pixels } : {}),
    ...(max_per_class !== undefined ? { max_per_class } : {}),
  }),
  // The decoders' versions can change pixels: they belong in the cache key.
  fingerprint: async () => decoderVersions(),
  run,
});
