// The decode stage kind over plain directories: real CIFAR-10 JPEGs (a subset, and once the full
// archive), a CIFAR binary release built here, image folders of mixed sizes and channels, and bad
// input. Pixels are checked against an independent decoder (jpeg-js) and, on the real archive,
// against hashes of libjpeg-turbo's own `djpeg` output (what PIL also returns).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import * as tar from 'tar';
import { StageError } from '../engine/errors.js';
import { resize, convertChannels } from '../lib/images/convert.js';
import { readNpy, type NdArray } from '../lib/npy.js';
import { decodeStage } from '../stages/decode/decode.js';
import { CLASSES, cifarSource, extractSubset, realCifarArchive, syntheticImage } from './helpers/dataset.js';
import { writeCifarBinaryArchive, writeCifarBinaryTree } from './helpers/cifar-binary.js';
import { encodePng, lyingPng } from './helpers/png-builders.js';
import { runStage, type FakeRun, type FakeUpstream } from './helpers/stage-context.js';
import { readDatasetSplits } from './helpers/dataset-arrays.js';
import { packDirectory } from '../lib/fetch/pack-directory.js';
import { PACK_DIR, readPackIndex } from '../lib/fetch/pack.js';

const TRAIN_PER_CLASS = 50;
const TEST_PER_CLASS = 20;
const BYTES = 32 * 32 * 3;

// sha256 (first 16 hex digits) of the RGB pixels `djpeg -ppm` (libjpeg-turbo 2.1.5) gives for these
// files of the real archive: our wasm libjpeg-turbo must reproduce them bit for bit.
const DJPEG_HASHES: Record<string, string> = {
  'train/airplane/0000.jpg': '59ac9bf701c95688',
  'train/cat/0007.jpg': 'fa3229d1730d8377',
  'train/truck/0049.jpg': '2599298f5e2ba309',
  'test/airplane/0000.jpg': '74b7a25666474a50',
  'test/ship/0019.jpg': 'cf233cc7b9dd1178',
};
const DJPEG_HASHES_FULL: Record<string, string> = {
  'train/airplane/4999.jpg': 'b45d3125744ad10c',
  'train/truck/4999.jpg': 'e099399081af94f3',
  'test/truck/0999.jpg': '7ad266f719c0c189',
};

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** Runs decode expecting it to fail (runStage removes the outputs of a failed stage). */
async function decodeFailure(
  fetchDir: string | null,
  params: Record<string, unknown> = {},
  signal?: AbortSignal,
  fetchParams?: Record<string, unknown>,
): Promise<void> {
  const inputs: Record<string, FakeUpstream> = fetchDir === null ? {} : { fetch: { kind: 'fetch', dir: fetchDir, params: fetchParams } };
  await runStage(decodeStage, params, inputs, { resumeDir: await tempDir('decode-resume-'), signal });
  throw new Error('decode succeeded but was expected to fail');
}

/** Runs decode with `<fetchDir>/data` as the upstream fetch output. */
async function decode(fetchDir: string, params: Record<string, unknown> = {}): Promise<FakeRun> {
  const resumeDir = await tempDir('decode-resume-');
  const run = await runStage(decodeStage, params, { fetch: { kind: 'fetch', dir: fetchDir } }, { resumeDir });
  temps.push(run.outDir);
  return run;
}

/** A fetch output holding `dataDir` as a pack (pack/), as fetch's default layout makes it. */
async function packed(dataDir: string): Promise<string> {
  const fetchDir = await tempDir('decode-packed-');
  await packDirectory({
    src: dataDir,
    dest: join(fetchDir, PACK_DIR),
    digest: async (path) => {
      const bytes = await readFile(path);
      return { digest: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    },
    maxPackBytes: 64 << 10,
    signal: new AbortController().signal,
  });
  return fetchDir;
}

/** Every file of a directory tree with its bytes. */
async function treeBytes(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(dir, { recursive: true })).map(String).sort()) {
    const bytes = await readFile(join(dir, name)).catch(() => undefined); // directories
    if (bytes) out.set(name, bytes);
  }
  return out;
}

async function outputs(run: FakeRun) {
  const data = await readDatasetSplits(join(run.outDir, 'dataset'));
  return {
    trainImages: data.train.images,
    trainLabels: data.train.labels,
    testImages: data.test.images,
    testLabels: data.test.labels,
    classes: JSON.parse(await readFile(join(run.outDir, 'classes.json'), 'utf8')) as string[],
    info: JSON.parse(await readFile(join(run.outDir, 'decode.json'), 'utf8')) as {
      format: string;
      shape: number[];
      counts: Record<string, { total: number; per_class: Record<string, number> }>;
      skipped_corrupt: number;
      over_max_pixels: number;
      skipped_files: { file: string; reason: string }[];
    },
  };
}

function row(images: NdArray, i: number, bytes = BYTES): Uint8Array {
  return (images.data as Uint8Array).subarray(i * bytes, (i + 1) * bytes);
}

function shortHash(pixels: Uint8Array): string {
  return createHash('sha256').update(pixels).digest('hex').slice(0, 16);
}

/** Files of a split in the documented row order: class (sorted), then file name (sorted). */
async function sortedFiles(dataDir: string, split: string): Promise<string[]> {
  const files: string[] = [];
  for (const cls of (await readdir(join(dataDir, split))).sort()) {
    for (const f of (await readdir(join(dataDir, split, cls))).sort()) files.push(`${split}/${cls}/${f}`);
  }
  return files;
}

/** The whole archive: the system tar is ~30× faster than the tar package on 60,000 small files. */
async function extractAll(archive: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  const code = await new Promise<number | null>((done) => {
    const child = spawn('tar', ['-xzf', archive, '-C', dest], { stdio: 'ignore' });
    child.on('error', () => done(null));
    child.on('exit', (c) => done(c));
  });
  if (code !== 0) await extractSubset(archive, dest, 5000, 1000);
}

function jpegJs(bytes: Uint8Array): Uint8Array {
  return jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false }).data;
}

const luma = (p: Uint8Array, i: number) => (p[i]! * 19595 + p[i + 1]! * 38470 + p[i + 2]! * 7471 + 0x8000) >> 16;

/**
 * jpeg-js differs from libjpeg-turbo in chroma upsampling (it replicates chroma samples, libjpeg
 * interpolates) and in IDCT rounding. Measured on all 50,000 training JPEGs: mean |diff| 1.45,
 * per-image mean at most 9.3, and luma within ±1 for 99.63% of pixels.
 */
function compareWithJpegJs(ours: Uint8Array, reference: Uint8Array) {
  let sum = 0;
  let lumaClose = 0;
  for (let i = 0; i < ours.length; i++) sum += Math.abs(ours[i]! - reference[i]!);
  for (let i = 0; i < ours.length; i += 3) if (Math.abs(luma(ours, i) - luma(reference, i)) <= 1) lumaClose++;
  return { meanAbs: sum / ours.length, lumaClose: lumaClose / (ours.length / 3) };
}

let subsetFetch: string;
let subsetData: string;
let real = false;

beforeAll(async () => {
  const source = await cifarSource({ perClassTrain: TRAIN_PER_CLASS, perClassTest: TEST_PER_CLASS });
  real = source.real;
  subsetFetch = await tempDir('decode-subset-');
  subsetData = join(subsetFetch, 'data');
  await extractSubset(source.archive, subsetData, TRAIN_PER_CLASS, TEST_PER_CLASS);
});

afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

describe('decode: image folders (CIFAR-10 JPEGs)', () => {
  test('subset: classes, counts per class, row order, pixels against independent decodes', async () => {
    const run = await decode(subsetFetch);
    const out = await outputs(run);
    expect(out.classes).toEqual(CLASSES);
    expect(out.info.format).toBe('image-folder');
    expect(out.trainImages.dtype).toBe('uint8');
    expect(out.trainImages.shape).toEqual([TRAIN_PER_CLASS * 10, 32, 32, 3]);
    expect(out.testImages.shape).toEqual([TEST_PER_CLASS * 10, 32, 32, 3]);
    expect(out.trainLabels.dtype).toBe('int32');
    // Labels follow the sorted class folders, each class contiguous.
    expect(Array.from(out.trainLabels.data)).toEqual(Array.from({ length: 500 }, (_, i) => Math.floor(i / TRAIN_PER_CLASS)));
    expect(Array.from(out.testLabels.data)).toEqual(Array.from({ length: 200 }, (_, i) => Math.floor(i / TEST_PER_CLASS)));
    for (const c of CLASSES) {
      expect(out.info.counts.train!.per_class[c]).toBe(TRAIN_PER_CLASS);
      expect(out.info.counts.test!.per_class[c]).toBe(TEST_PER_CLASS);
    }
    expect(out.info.skipped_corrupt).toBe(0);
    expect(out.info).toHaveProperty('decoders.jpeg', expect.stringMatching(/^libjpeg-turbo wasm \(.* \d+\.\d+\.\d+\)$/));

    // Every row against jpeg-js decoding the file that should be at that row.
    for (const [split, images] of [
      ['train', out.trainImages],
      ['test', out.testImages],
    ] as const) {
      const files = await sortedFiles(subsetData, split);
      let total = 0;
      let lumaClose = 0;
      for (let i = 0; i < files.length; i++) {
        const cmp = compareWithJpegJs(row(images, i), jpegJs(await readFile(join(subsetData, files[i]!))));
        expect(cmp.meanAbs).toBeLessThan(12);
        total += cmp.meanAbs;
        lumaClose += cmp.lumaClose;
      }
      expect(total / files.length).toBeLessThan(2);
      expect(lumaClose / files.length).toBeGreaterThan(0.99);
      // Neighbouring rows are different images: the row order is really the file order.
      const swapped = compareWithJpegJs(row(images, 1), jpegJs(await readFile(join(subsetData, files[0]!))));
      expect(swapped.meanAbs).toBeGreaterThan(12);
    }

    if (real) {
      const trainFiles = await sortedFiles(subsetData, 'train');
      const testFiles = await sortedFiles(subsetData, 'test');
      for (const [file, hash] of Object.entries(DJPEG_HASHES)) {
        const images = file.startsWith('train/') ? out.trainImages : out.testImages;
        const index = (file.startsWith('train/') ? trainFiles : testFiles).indexOf(file);
        expect(index).toBeGreaterThanOrEqual(0);
        expect([file, shortHash(row(images, index))]).toEqual([file, hash]);
      }
    }
  });

  // Without the archive (CI's second pass hides it) the test is reported as skipped, not passed.
  const archive = realCifarArchive();
  if (!archive) console.warn('full-archive decode skipped: the real CIFAR-10 archive is absent');
  (archive ? test : test.skip)('full archive: 60,000 images, 5,000 / 1,000 per class, pixels of libjpeg-turbo', async () => {
    const fetchDir = await tempDir('decode-full-');
    await extractAll(archive!, join(fetchDir, 'data'));
    const run = await decode(fetchDir);
    const out = await outputs(run);
    expect(out.trainImages.shape).toEqual([50000, 32, 32, 3]);
    expect(out.testImages.shape).toEqual([10000, 32, 32, 3]);
    expect(out.info.counts.train!.total).toBe(50000);
    expect(out.info.counts.test!.total).toBe(10000);
    expect(out.info.counts.train!.per_class).toEqual(Object.fromEntries(CLASSES.map((c) => [c, 5000])));
    expect(out.info.counts.test!.per_class).toEqual(Object.fromEntries(CLASSES.map((c) => [c, 1000])));
    const labels = out.trainLabels.data as Int32Array;
    for (let c = 0; c < 10; c++) expect([labels[c * 5000], labels[c * 5000 + 4999]]).toEqual([c, c]);
    // Row = class * perClass + file number, for the first and last file of some classes.
    const rowOf = (file: string) => {
      const [split, cls, name] = file.split('/');
      return CLASSES.indexOf(cls!) * (split === 'train' ? 5000 : 1000) + Number(name!.slice(0, 4));
    };
    for (const [file, hash] of Object.entries({ ...DJPEG_HASHES, ...DJPEG_HASHES_FULL })) {
      const images = file.startsWith('train/') ? out.trainImages : out.testImages;
      expect([file, shortHash(row(images, rowOf(file)))]).toEqual([file, hash]);
    }
    await rm(join(fetchDir, 'data'), { recursive: true, force: true });
  });

  test('corrupt JPEG: an error naming the file, or skipped and counted with skip_corrupt', async () => {
    const fetchDir = await tempDir('decode-corrupt-');
    const data = join(fetchDir, 'data');
    for (const split of ['train', 'test']) {
      for (const cls of ['bird', 'cat']) await cp(join(subsetData, split, cls), join(data, split, cls), { recursive: true });
    }
    const catFiles = (await readdir(join(data, 'train', 'cat'))).sort();
    const bad = join(data, 'train', 'cat', catFiles[3]!);
    const original = await readFile(bad);
    await writeFile(bad, original.subarray(0, 200)); // truncated mid-scan

    await expect(decodeFailure(fetchDir)).rejects.toThrow(StageError);
    // Named as the user knows it: inside the source, not by its path in the store.
    const named = `corrupt or unreadable image train/cat/${catFiles[3]} in the data/ output of stage 'fetch': `;
    await expect(decodeFailure(fetchDir)).rejects.toThrow(named);
    expect(((await decodeFailure(fetchDir).catch((e: unknown) => e)) as Error).message).not.toContain(fetchDir);
    await expect(decodeFailure(fetchDir, {}, undefined, { url: 'file:///data/pets' })).rejects.toThrow(
      `corrupt or unreadable image train/cat/${catFiles[3]} in file:///data/pets: `,
    );

    const run = await decode(fetchDir, { skip_corrupt: true });
    const out = await outputs(run);
    expect(out.info.skipped_corrupt).toBe(1);
    expect(out.info.skipped_files).toEqual([{ file: `train/cat/${catFiles[3]}`, reason: expect.any(String) }]);
    expect(out.info.counts.train!.per_class).toEqual({ bird: TRAIN_PER_CLASS, cat: TRAIN_PER_CLASS - 1 });
    expect(out.trainImages.shape[0]).toBe(2 * TRAIN_PER_CLASS - 1);
    expect(out.trainLabels.data.length).toBe(2 * TRAIN_PER_CLASS - 1);
    // The rows after the hole moved up by one: cat's 5th file is now at cat's 4th row.
    const next = jpegJs(await readFile(join(data, 'train', 'cat', catFiles[4]!)));
    expect(compareWithJpegJs(row(out.trainImages, TRAIN_PER_CLASS + 3), next).meanAbs).toBeLessThan(12);

    // Garbage that is neither JPEG nor PNG is corrupt too.
    await writeFile(bad, 'not an image at all');
    await expect(decodeFailure(fetchDir)).rejects.toThrow(/corrupt or unreadable image .*: not a JPEG or PNG file/);
  });
});

test('decode: a folder that grows, changes and loses files decodes only what changed and equals a full decode', async () => {
  const fetchDir = await tempDir('decode-grow-');
  const data = join(fetchDir, 'data');
  await cp(subsetData, data, { recursive: true });
  const first = await decode(fetchDir, { shard_mb: 1 });
  // 1 MiB shards of 3,072-byte rows: 341 rows each, so the 1,000 training rows span several shards.
  const cats = (await readdir(join(data, 'train', 'cat'))).sort();
  const dogs = (await readdir(join(data, 'train', 'dog'))).sort();
  await rm(join(data, 'train', 'cat', cats[0]!)); // removed
  await cp(join(data, 'train', 'dog', dogs[1]!), join(data, 'train', 'cat', 'zz-new.jpg')); // added
  await cp(join(data, 'test', 'ship', (await readdir(join(data, 'test', 'ship'))).sort()[0]!), join(data, 'train', 'dog', dogs[0]!)); // changed
  const again = await runStage(
    decodeStage,
    { shard_mb: 1 },
    { fetch: { kind: 'fetch', dir: fetchDir } },
    { resumeDir: await tempDir('decode-resume-'), previous: { kind: 'decode', dir: first.outDir } },
  );
  temps.push(again.outDir);
  const info = JSON.parse(await readFile(join(again.outDir, 'decode.json'), 'utf8')) as { changes: Record<string, number> };
  expect(info.changes).toMatchObject({ added: 1, changed: 1, removed: 1, decoded: 2 });
  expect(info.changes.reused).toBe(TRAIN_PER_CLASS * 10 + TEST_PER_CLASS * 10 - 2);
  const fresh = await decode(fetchDir, { shard_mb: 1 });
  const [incremental, full] = await Promise.all([readDatasetSplits(join(again.outDir, 'dataset')), readDatasetSplits(join(fresh.outDir, 'dataset'))]);
  expect(incremental.train.sources).toEqual(full.train.sources);
  expect(incremental.train.sources).toContain('train/cat/zz-new.jpg');
  expect(incremental.train.sources).not.toContain(`train/cat/${cats[0]}`);
  for (const split of ['train', 'test'] as const) {
    expect(Array.from(incremental[split].labels.data)).toEqual(Array.from(full[split].labels.data));
    expect(Buffer.from(incremental[split].images.data).equals(Buffer.from(full[split].images.data))).toBe(true);
  }
  // Unchanged shards are the previous files (the same bytes under the same names).
  const shardsOf = async (dir: string) => (await readdir(join(dir, 'dataset', 'shards'))).sort();
  const now = new Set(await shardsOf(again.outDir));
  const kept = (await shardsOf(first.outDir)).filter((f) => now.has(f));
  expect(kept.length).toBeGreaterThan(0);
});

test('decode: an interrupted run throws instead of writing partial tensors', async () => {
  const controller = new AbortController();
  controller.abort(new Error('interrupted by test'));
  await expect(decodeFailure(subsetFetch, {}, controller.signal)).rejects.toThrow('interrupted by test');
});

describe('decode: CIFAR-10 binary release', () => {
  test('a small archive built by the test decodes record by record', async () => {
    const classes = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
    const make = (n: number, offset: number) => {
      const images = new Uint8Array(n * BYTES);
      const labels = Array.from({ length: n }, (_, i) => (i * 7 + offset) % 10);
      for (let i = 0; i < n; i++) {
        const rgba = syntheticImage(labels[i]!, i + offset);
        for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) images[i * BYTES + p * 3 + c] = rgba[p * 4 + c]!;
      }
      return { images, labels };
    };
    const data = { classes, train: make(53, 0), test: make(17, 1000) };
    const fetchDir = await tempDir('decode-bin-');
    // Packed and unpacked as fetch does: the batches land one directory down, in cifar-10-batches-bin/.
    await writeCifarBinaryArchive(join(fetchDir, 'cifar-10-binary.tar.gz'), data, { batches: 5 });
    await mkdir(join(fetchDir, 'data'));
    await tar.extract({ file: join(fetchDir, 'cifar-10-binary.tar.gz'), cwd: join(fetchDir, 'data') });
    expect((await readdir(join(fetchDir, 'data', 'cifar-10-batches-bin'))).sort()).toEqual([
      'batches.meta.txt',
      'data_batch_1.bin',
      'data_batch_2.bin',
      'data_batch_3.bin',
      'data_batch_4.bin',
      'data_batch_5.bin',
      'test_batch.bin',
    ]);

    const out = await outputs(await decode(fetchDir));
    expect(out.info.format).toBe('cifar-binary');
    expect(out.classes).toEqual(classes);
    for (const [split, images, labels] of [
      ['train', out.trainImages, out.trainLabels],
      ['test', out.testImages, out.testLabels],
    ] as const) {
      const expected = data[split];
      expect(images.shape).toEqual([expected.labels.length, 32, 32, 3]);
      expect(Array.from(labels.data)).toEqual(expected.labels);
      for (let i = 0; i < expected.labels.length; i++) {
        expect(Buffer.compare(row(images, i), expected.images.subarray(i * BYTES, (i + 1) * BYTES))).toBe(0);
      }
      expect(out.info.counts[split]!.total).toBe(expected.labels.length);
    }

    // Resized and reduced to gray on request: a solid record stays solid, at its luma.
    const solid = { images: new Uint8Array(BYTES), labels: [3] };
    for (let p = 0; p < 1024; p++) solid.images.set([200, 100, 50], p * 3);
    const solidDir = await tempDir('decode-bin-solid-');
    await writeCifarBinaryTree(join(solidDir, 'data'), { classes, train: solid, test: solid }, { batches: 1, folder: '.' });
    const gray = await outputs(await decode(solidDir, { height: 16, width: 24, channels: 1, format: 'cifar-binary' }));
    expect(gray.trainImages.shape).toEqual([1, 16, 24, 1]);
    expect(new Set(gray.trainImages.data)).toEqual(new Set([Math.round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)]));
  });

  test('a truncated batch is an error naming the file', async () => {
    const fetchDir = await tempDir('decode-bin-trunc-');
    const n = 10;
    const records = { images: new Uint8Array(n * BYTES).fill(9), labels: Array.from({ length: n }, (_, i) => i % 10) };
    const dir = await writeCifarBinaryTree(join(fetchDir, 'data'), { classes: CLASSES, train: records, test: records }, { batches: 2 });
    await truncate(join(dir, 'data_batch_2.bin'), 3073 * 5 - 100);
    await expect(decodeFailure(fetchDir)).rejects.toThrow(StageError);
    await expect(decodeFailure(fetchDir)).rejects.toThrow(/data_batch_2\.bin: 15265 bytes is not a whole number of 3073-byte records/);
  });
});

describe('decode: shapes, channels and bad layouts', () => {
  function png(width: number, height: number, colorType: 0 | 2 | 4 | 6, rgba: (x: number, y: number) => number[]): Buffer {
    const image = new PNG({ width, height, colorType, inputColorType: 6, inputHasAlpha: true } as ConstructorParameters<typeof PNG>[0]);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) image.data.set(rgba(x, y), (y * width + x) * 4);
    return PNG.sync.write(image, { colorType, inputColorType: 6, inputHasAlpha: true });
  }

  test('PNG and JPEG of any size and 1, 3 or 4 channels become 32×32 RGB (or gray)', async () => {
    const fetchDir = await tempDir('decode-mixed-');
    const data = join(fetchDir, 'data');
    for (const split of ['train', 'test']) {
      await mkdir(join(data, split, 'a'), { recursive: true });
      await mkdir(join(data, split, 'b'), { recursive: true });
      // a/1: gray 40×40 PNG; a/2: RGBA 16×16 PNG, half transparent; b/1: RGB 64×48 JPEG.
      await writeFile(
        join(data, split, 'a', '1.png'),
        png(40, 40, 0, () => [90, 90, 90, 255]),
      );
      await writeFile(
        join(data, split, 'a', '2.png'),
        png(16, 16, 6, (x) => [10, 200, 30, x < 8 ? 0 : 255]),
      );
      const rgba = new Uint8Array(64 * 48 * 4);
      for (let p = 0; p < 64 * 48; p++) rgba.set([250, 20, 20, 255], p * 4);
      await writeFile(join(data, split, 'b', '1.jpg'), jpeg.encode({ data: rgba, width: 64, height: 48 }, 100).data);
      await writeFile(join(data, split, 'b', 'notes.txt'), 'ignored');
    }
    const rgb = await outputs(await decode(fetchDir));
    expect(rgb.classes).toEqual(['a', 'b']);
    expect(rgb.trainImages.shape).toEqual([3, 32, 32, 3]);
    expect(Array.from(rgb.trainLabels.data)).toEqual([0, 0, 1]);
    expect(new Set(row(rgb.trainImages, 0))).toEqual(new Set([90])); // gray expanded
    const transparent = row(rgb.trainImages, 1);
    for (let p = 0; p < 1024; p++) expect(Array.from(transparent.subarray(p * 3, p * 3 + 3))).toEqual([10, 200, 30]); // alpha dropped
    const red = row(rgb.trainImages, 2);
    for (let p = 0; p < 1024; p++) {
      expect(Math.abs(red[p * 3]! - 250)).toBeLessThanOrEqual(3);
      expect(Math.abs(red[p * 3 + 1]! - 20)).toBeLessThanOrEqual(3);
    }

    const gray = await outputs(await decode(fetchDir, { channels: 1, height: 8, width: 12, resize: 'area' }));
    expect(gray.trainImages.shape).toEqual([3, 8, 12, 1]);
    expect(new Set(row(gray.trainImages, 0, 96))).toEqual(new Set([90]));
    expect(new Set(row(gray.trainImages, 1, 96))).toEqual(new Set([(10 * 19595 + 200 * 38470 + 30 * 7471 + 0x8000) >> 16]));
  });

  test('a grayscale JPEG decodes as libjpeg-turbo does, kept gray or expanded to RGB', async () => {
    // 12×10 gradient, `cjpeg -grayscale -quality 90`; its pixels per `djpeg` hash to GRAY_HASH.
    const GRAY_JPEG =
      '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/wAALCAAKAAwBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APJv2Sfh/wD8eX7v07V9++Iv2jfg5+zsmleG/iF4s/4R/WrqyXUIbb+y7y53QM7xq+6GF1GWikGCc/L0wRn5m/ZJiT/QvkXt2r5n/b/iT/hsD4hfIv8AzDO3/ULs6//Z';
    const GRAY_HASH = 'f21371983b56779c';
    const fetchDir = await tempDir('decode-gray-');
    for (const split of ['train', 'test']) {
      await mkdir(join(fetchDir, 'data', split, 'g'), { recursive: true });
      await writeFile(join(fetchDir, 'data', split, 'g', '0.jpg'), Buffer.from(GRAY_JPEG, 'base64'));
    }
    const gray = await outputs(await decode(fetchDir, { height: 10, width: 12, channels: 1 }));
    expect(gray.trainImages.shape).toEqual([1, 10, 12, 1]);
    expect(shortHash(row(gray.trainImages, 0, 120))).toBe(GRAY_HASH);
    const rgb = await outputs(await decode(fetchDir, { height: 10, width: 12 }));
    const expanded = row(rgb.trainImages, 0, 360);
    for (let p = 0; p < 120; p++) expect(Array.from(expanded.subarray(p * 3, p * 3 + 3))).toEqual(new Array(3).fill(gray.trainImages.data[p]));
  });

  test('bilinear, nearest and area resampling on known values', () => {
    // 1×4 → 1×2: bilinear samples at x = 0.5 and 2.5; area averages pairs; nearest takes 1 and 3.
    const src = Uint8Array.from([0, 100, 200, 40]);
    const out = new Uint8Array(2);
    resize(src, 4, 1, 1, 2, 1, 'bilinear', out, 0);
    expect(Array.from(out)).toEqual([50, 120]);
    resize(src, 4, 1, 1, 2, 1, 'area', out, 0);
    expect(Array.from(out)).toEqual([50, 120]);
    resize(src, 4, 1, 1, 2, 1, 'nearest', out, 0);
    expect(Array.from(out)).toEqual([100, 40]);
    // 2×2 → 4×4 bilinear: corners keep their values (edge clamp), the middle interpolates.
    const up = new Uint8Array(16);
    resize(Uint8Array.from([0, 80, 160, 240]), 2, 2, 1, 4, 4, 'bilinear', up, 0);
    expect(Array.from(up)).toEqual([0, 20, 60, 80, 40, 60, 100, 120, 120, 140, 180, 200, 160, 180, 220, 240]);
    // 3 → 2 area: fractional coverage (1.5 pixels per output).
    resize(Uint8Array.from([30, 90, 150]), 3, 1, 1, 2, 1, 'area', out, 0);
    expect(Array.from(out)).toEqual([50, 130]);
    const g = new Uint8Array(2);
    convertChannels(Uint8Array.from([255, 0, 0, 9, 0, 0, 255, 9]), 4, 1, 2, g, 0);
    expect(Array.from(g)).toEqual([76, 29]);
  });

  test('an empty class folder, a missing split and an unknown layout are clear errors', async () => {
    const fetchDir = await tempDir('decode-empty-');
    const data = join(fetchDir, 'data');
    for (const split of ['train', 'test']) await cp(join(subsetData, split, 'dog'), join(data, split, 'dog'), { recursive: true });
    await mkdir(join(data, 'train', 'cat'));
    await mkdir(join(data, 'test', 'cat'));
    await expect(decodeFailure(fetchDir)).rejects.toThrow(StageError);
    await expect(decodeFailure(fetchDir, {}, undefined, { url: '/data/pets.tar.gz' })).rejects.toThrow(
      'image folders: empty class folder train/cat (no .jpg, .jpeg or .png files) (in /data/pets.tar.gz)',
    );

    await rm(join(data, 'test'), { recursive: true });
    await rm(join(data, 'train', 'cat'), { recursive: true });
    await expect(decodeFailure(fetchDir, {}, undefined, { url: '/data/pets' })).rejects.toThrow('image folders: missing test/ folder in /data/pets');

    const unknown = await tempDir('decode-unknown-');
    await mkdir(join(unknown, 'data', 'stuff'), { recursive: true });
    await writeFile(join(unknown, 'data', 'stuff', 'readme.txt'), 'hello');
    await expect(decodeFailure(unknown)).rejects.toThrow(StageError);
    await expect(decodeFailure(unknown)).rejects.toThrow(/unknown dataset layout in .*: found neither CIFAR-10 binary batches .* nor image folders/);
    // A forced format that is not there.
    await expect(decodeFailure(subsetFetch, { format: 'cifar-binary' })).rejects.toThrow(/no CIFAR-10 binary batches/);
    // And no fetched data at all.
    await expect(decodeFailure(null)).rejects.toThrow(/decode needs an upstream stage with a data\/ output/);
  });
});

describe("decode: sources in a pack (fetch's default layout)", () => {
  test('image folders from a pack decode bit for bit as from the same files in a folder', async () => {
    const fromFolder = await decode(subsetFetch);
    const packFetch = await packed(subsetData);
    expect((await readPackIndex(join(packFetch, PACK_DIR))).packs.length).toBeGreaterThan(1);
    const fromPack = await decode(packFetch);
    // The same rows, sources, digests, shards and pixels: the dataset directories are identical.
    expect(await treeBytes(join(fromPack.outDir, 'dataset'))).toEqual(await treeBytes(join(fromFolder.outDir, 'dataset')));
    expect(await readFile(join(fromPack.outDir, 'classes.json'), 'utf8')).toBe(await readFile(join(fromFolder.outDir, 'classes.json'), 'utf8'));
    const info = (run: FakeRun) => readFile(join(run.outDir, 'decode.json'), 'utf8');
    expect(await info(fromPack)).toBe(await info(fromFolder));
  });

  test('a CIFAR binary release from a pack decodes as from the folder', async () => {
    const n = 12;
    const records = { images: new Uint8Array(n * BYTES).map((_, i) => (i * 31) % 251), labels: Array.from({ length: n }, (_, i) => i % 10) };
    const folderFetch = await tempDir('decode-bin-folder-');
    await writeCifarBinaryTree(join(folderFetch, 'data'), { classes: CLASSES, train: records, test: records }, { batches: 2 });
    const fromFolder = await decode(folderFetch);
    const fromPack = await decode(await packed(join(folderFetch, 'data')));
    expect(await treeBytes(join(fromPack.outDir, 'dataset'))).toEqual(await treeBytes(join(fromFolder.outDir, 'dataset')));
    expect((await outputs(fromPack)).info.format).toBe('cifar-binary');
  });

  test('errors name the file inside the source, as for a folder; an empty class folder survives packing', async () => {
    const dataDir = join(await tempDir('decode-pack-bad-'), 'data');
    for (const split of ['train', 'test']) await cp(join(subsetData, split, 'dog'), join(dataDir, split, 'dog'), { recursive: true });
    const bad = (await readdir(join(dataDir, 'train', 'dog'))).sort()[2]!;
    await writeFile(join(dataDir, 'train', 'dog', bad), 'not an image at all');
    await expect(decodeFailure(await packed(dataDir), {}, undefined, { url: 'file:///data/pets' })).rejects.toThrow(
      `corrupt or unreadable image train/dog/${bad} in file:///data/pets: not a JPEG or PNG file`,
    );
    const skipped = await outputs(await decode(await packed(dataDir), { skip_corrupt: true }));
    expect(skipped.info.skipped_files).toEqual([{ file: `train/dog/${bad}`, reason: expect.any(String) }]);

    await mkdir(join(dataDir, 'train', 'cat'));
    await mkdir(join(dataDir, 'test', 'cat'));
    await expect(decodeFailure(await packed(dataDir), {}, undefined, { url: '/data/pets.tar.gz' })).rejects.toThrow(
      'image folders: empty class folder train/cat (no .jpg, .jpeg or .png files) (in /data/pets.tar.gz)',
    );
  });

  test('a flipped bit in a pack fails decode naming the entry, even with skip_corrupt', async () => {
    const packFetch = await packed(subsetData);
    const index = await readPackIndex(join(packFetch, PACK_DIR));
    const victim = index.entries.find((e) => e.path.startsWith('train/cat/'))!;
    const file = join(packFetch, PACK_DIR, index.packs[victim.pack]!.file);
    const bytes = await readFile(file);
    bytes[victim.offset + Math.floor(victim.size / 2)]! ^= 0x04;
    await writeFile(file, bytes);
    for (const params of [{}, { skip_corrupt: true }]) {
      const err = (await decodeFailure(packFetch, params, undefined, { url: 'file:///data/pets' }).catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(StageError);
      expect(err.message).toBe(
        `${index.packs[victim.pack]!.file}: entry "${victim.path}" (${victim.size} bytes at ${victim.offset}) does not match its checksum: the pack is damaged (run \`pipeline verify\`) (in file:///data/pets)`,
      );
    }
  });

  test('a pack entry larger than any image within max_pixels could be is refused unread', async () => {
    const dataDir = join(await tempDir('decode-pack-big-'), 'data');
    for (const split of ['train', 'test']) await cp(join(subsetData, split, 'dog'), join(dataDir, split, 'dog'), { recursive: true });
    const big = (await readdir(join(dataDir, 'test', 'dog'))).sort()[0]!;
    await writeFile(join(dataDir, 'test', 'dog', big), Buffer.alloc(17 << 20));
    // 32×32 JPEGs pass a limit of 1,024 pixels; the 17 MiB entry is refused from its size alone.
    await expect(decodeFailure(await packed(dataDir), { max_pixels: 1024 }, undefined, { url: 'file:///data/pets' })).rejects.toThrow(
      `image test/dog/${big} in file:///data/pets is too large: the file is 17,825,792 bytes, more than an image within the limit of 1,024 pixels can take`,
    );
  });
});

describe('decode: the pixel limit, and images whose header promises more than the file holds', () => {
  const small = encodePng({ width: 8, height: 8, colorType: 2, bitDepth: 8, sample: (x, y, c) => (x * 30 + y * 20 + c * 50) & 255 });
  const FROM_FETCH = "in the data/ output of stage 'fetch'";

  /** Image folders a/ and b/ with one good PNG each per split, plus `extra` (paths inside data/). */
  async function folders(extra: Record<string, Buffer>): Promise<string> {
    const fetchDir = await tempDir('decode-limits-');
    for (const split of ['train', 'test']) {
      for (const cls of ['a', 'b']) {
        await mkdir(join(fetchDir, 'data', split, cls), { recursive: true });
        await writeFile(join(fetchDir, 'data', split, cls, 'good.png'), small);
      }
    }
    for (const [path, bytes] of Object.entries(extra)) await writeFile(join(fetchDir, 'data', path), bytes);
    return fetchDir;
  }

  test("the issue's 69-byte PNG claiming 30000×30000: refused naming the file and the limit, or skipped and counted", async () => {
    const fetchDir = await folders({ 'train/a/lie.png': lyingPng(30000, 30000) });
    await expect(decodeFailure(fetchDir)).rejects.toThrow(
      `image train/a/lie.png ${FROM_FETCH} is too large: 30000×30000 is 900,000,000 pixels, over the limit of 89,478,485 (max_pixels: raise it to decode such images, or set skip_corrupt: true to skip them)`,
    );
    const out = await outputs(await decode(fetchDir, { skip_corrupt: true }));
    expect(out.info.skipped_corrupt).toBe(1);
    expect(out.info.over_max_pixels).toBe(1);
    expect(out.info.skipped_files).toEqual([{ file: 'train/a/lie.png', reason: '30000×30000 is 900,000,000 pixels, over the limit of 89,478,485' }]);
    expect(out.info.counts.train!.per_class).toEqual({ a: 1, b: 1 });
    expect(out.trainImages.shape).toEqual([2, 32, 32, 3]);
  });

  test('a real PNG over a lowered max_pixels is refused with a clear message; at the limit it decodes', async () => {
    const big = encodePng({ width: 1200, height: 900, colorType: 2, bitDepth: 8, sample: (x, y, c) => (c === 0 ? 200 : x < 600 ? 10 : 90) + 2 * (y & 1) });
    const fetchDir = await folders({ 'test/b/big.png': big });
    await expect(decodeFailure(fetchDir, { max_pixels: 1_000_000 })).rejects.toThrow(
      `image test/b/big.png ${FROM_FETCH} is too large: 1200×900 is 1,080,000 pixels, over the limit of 1,000,000 (max_pixels: raise it`,
    );
    const out = await outputs(await decode(fetchDir, { max_pixels: 1_080_000, width: 2, height: 1, resize: 'area' }));
    expect(out.info.skipped_corrupt).toBe(0);
    expect(out.testImages.shape).toEqual([3, 1, 2, 3]);
    // Rows a/good, b/big, b/good: the big image's two halves, averaged over its rows.
    expect(Array.from(row(out.testImages, 1, 6))).toEqual([201, 11, 11, 201, 91, 91]);
  });

  test('a PNG whose header promises more rows than its data holds is corrupt (named, or skipped and counted), never a black image', async () => {
    const fetchDir = await folders({ 'train/b/short.png': lyingPng(300, 200) });
    await expect(decodeFailure(fetchDir)).rejects.toThrow(
      `corrupt or unreadable image train/b/short.png ${FROM_FETCH}: PNG image data ends early: 4 of the 240200 bytes a 300×200 image needs (truncated, or the header's size is not the image's) (set skip_corrupt: true to skip such files)`,
    );
    const out = await outputs(await decode(fetchDir, { skip_corrupt: true }));
    expect([out.info.skipped_corrupt, out.info.over_max_pixels]).toEqual([1, 0]);
    expect(out.info.skipped_files).toEqual([{ file: 'train/b/short.png', reason: expect.stringMatching(/^PNG image data ends early/) }]);
    expect(out.info.counts.train!.per_class).toEqual({ a: 1, b: 1 });
  });

  test('a file larger than any image within max_pixels could be is refused unread', async () => {
    const fetchDir = await folders({});
    const huge = join(fetchDir, 'data', 'train', 'a', 'huge.png');
    await writeFile(huge, small);
    await truncate(huge, 17 << 20); // sparse: nothing is really written
    await expect(decodeFailure(fetchDir, { max_pixels: 64 })).rejects.toThrow(
      `image train/a/huge.png ${FROM_FETCH} is too large: the file is 17,825,792 bytes, more than an image within the limit of 64 pixels can take (16,778,240)`,
    );
  });
});
