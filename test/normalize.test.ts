// The normalize stage kind over plain directories: the inputs a reader gathers through its formula
// (value ranges, one-hot labels), the seeded stratified split (on class-sorted input, as the CIFAR
// JPEG folders are), standardize statistics, the dataset carried as it is, and a run chained after
// decode on real CIFAR-10 JPEGs.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StageError } from '../engine/errors.js';
import { stratifiedSplit } from '../lib/images/split.js';
import { readNpy, type NdArray } from '../lib/npy.js';
import { DatasetReader } from '../lib/dataset/reader.js';
import { readDataset, rowsToJson } from '../lib/dataset/format.js';
import { datasetRows, oneHotOf, pixelTable, type Normalization } from '../lib/model/data.js';
import { writeDataset } from './helpers/fake-normalize.js';
import { decodeStage } from '../stages/decode/decode.js';
import { normalizeStage } from '../stages/normalize/normalize.js';
import { CLASSES, cifarSource, extractSubset } from './helpers/dataset.js';
import { runStage, type FakeRun, type FakeUpstream } from './helpers/stage-context.js';

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

// Class-sorted synthetic decode output: uneven class sizes exercise the per-class rounding.
const PER_CLASS = [23, 30, 41, 17, 50, 8, 35, 12, 27, 44];
const H = 4;
const W = 5;
const C = 3;
const ROW = H * W * C;

interface DecodeLike {
  dir: string;
  trainImages: Uint8Array;
  trainLabels: Int32Array;
  testImages: Uint8Array;
  testLabels: Int32Array;
}

async function writeDecodeLike(): Promise<DecodeLike> {
  const dir = await tempDir('normalize-src-');
  const trainLabels = Int32Array.from(PER_CLASS.flatMap((n, c) => new Array<number>(n).fill(c)));
  const testLabels = Int32Array.from({ length: 30 }, (_, i) => i % 10);
  let s = 12345;
  const noise = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) & 255;
  // Channel-dependent ranges so per-channel statistics differ.
  const pixels = (n: number) => Uint8Array.from({ length: n * ROW }, (_, i) => (i % C === 0 ? noise() : i % C === 1 ? 100 + (noise() % 50) : noise() % 8));
  const trainImages = pixels(trainLabels.length);
  const testImages = pixels(testLabels.length);
  const shape: [number, number, number] = [H, W, C];
  await writeDataset(join(dir, 'dataset'), { pixels: trainImages, labels: trainLabels, shape }, { pixels: testImages, labels: testLabels, shape }, CLASSES);
  await writeFile(join(dir, 'classes.json'), JSON.stringify(CLASSES));
  return { dir, trainImages, trainLabels, testImages, testLabels };
}

async function normalize(decodeDir: string, params: Record<string, unknown> = {}): Promise<FakeRun> {
  const resumeDir = await tempDir('normalize-resume-');
  const run = await runStage(normalizeStage, params, { decode: { kind: 'decode', dir: decodeDir } }, { resumeDir });
  temps.push(run.outDir);
  return run;
}

/** Runs normalize expecting it to fail (runStage removes the outputs of a failed stage). */
async function normalizeFailure(decodeDir: string | null, params: Record<string, unknown> = {}): Promise<void> {
  const inputs: Record<string, FakeUpstream> = decodeDir === null ? {} : { decode: { kind: 'decode', dir: decodeDir } };
  await runStage(normalizeStage, params, inputs, { resumeDir: await tempDir('normalize-resume-') });
  throw new Error('normalize succeeded but was expected to fail');
}

async function read(run: FakeRun, name: string): Promise<NdArray> {
  return readNpy(join(run.outDir, name));
}

/** What a reader of normalize's output gets for dataset rows `index`: inputs through the formula, one-hot targets. */
async function gathered(run: FakeRun, index: Int32Array): Promise<{ x: Float32Array; y: Float32Array }> {
  const reader = await DatasetReader.open(join(run.outDir, 'dataset'));
  try {
    const norm = JSON.parse(await readFile(join(run.outDir, 'normalization.json'), 'utf8')) as Normalization;
    const rows = datasetRows(reader, index, pixelTable(norm, reader.manifest.shape[2]), 'test');
    return { x: rows.gather(Int32Array.from(index, (_, i) => i)).x, y: oneHotOf(reader, index) };
  } finally {
    reader.close();
  }
}

const testIndex = (n: number, first: number) => Int32Array.from({ length: n }, (_, i) => first + i);

interface NormalizationJson {
  method: string;
  scale: number;
  mean: number[];
  std: number[];
  split: { train: number; validation: number; validation_per_class: Record<string, number> };
}

let src: DecodeLike;
beforeAll(async () => {
  src = await writeDecodeLike();
});

describe('normalize', () => {
  test('scale: x = pixel/255 in [0, 1], rows follow train_index/val_index, one-hot labels; the dataset is carried as it is', async () => {
    const run = await normalize(src.dir);
    const trainIndex = (await read(run, 'train_index.npy')).data as Int32Array;
    const valIndex = (await read(run, 'val_index.npy')).data as Int32Array;
    for (const index of [trainIndex, valIndex]) {
      const { x, y } = await gathered(run, index);
      expect(x.length).toBe(index.length * ROW);
      expect(y.length).toBe(index.length * 10);
      for (let i = 0; i < index.length; i++) {
        const row = index[i]!;
        for (let e = 0; e < ROW; e++) expect(x[i * ROW + e]).toBe(Math.fround(src.trainImages[row * ROW + e]! / 255));
        const hot = Array.from(y.subarray(i * 10, (i + 1) * 10));
        expect(hot.reduce((a, b) => a + b, 0)).toBe(1);
        expect(hot.indexOf(1)).toBe(src.trainLabels[row]);
      }
      expect(Math.min(...x)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...x)).toBeLessThanOrEqual(1);
    }
    const test = await gathered(run, testIndex(30, src.trainLabels.length));
    expect(Array.from(test.x)).toEqual(Array.from(src.testImages, (v) => Math.fround(v / 255)));
    for (let i = 0; i < 30; i++) expect(test.y[i * 10 + src.testLabels[i]!]).toBe(1);
    // No float copy: the output is the dataset (the same files), the split and the formula.
    expect(await readDataset(join(run.outDir, 'dataset'))).toEqual(await readDataset(join(src.dir, 'dataset')));
    expect((await readdir(run.outDir)).sort()).toEqual(['classes.json', 'dataset', 'normalization.json', 'train_index.npy', 'val_index.npy']);

    const norm = JSON.parse(await readFile(join(run.outDir, 'normalization.json'), 'utf8')) as NormalizationJson;
    expect(norm).toMatchObject({ method: 'scale', scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] });
    expect(JSON.parse(await readFile(join(run.outDir, 'classes.json'), 'utf8'))).toEqual(CLASSES);
  });

  test('stratified split: every class 20% ±1 in validation, disjoint and complete, interleaved', async () => {
    const run = await normalize(src.dir);
    const trainIndex = Array.from((await read(run, 'train_index.npy')).data);
    const valIndex = Array.from((await read(run, 'val_index.npy')).data);
    const all = [...trainIndex, ...valIndex].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: src.trainLabels.length }, (_, i) => i));
    PER_CLASS.forEach((n, c) => {
      const inVal = valIndex.filter((r) => src.trainLabels[r] === c).length;
      expect(Math.abs(inVal - 0.2 * n)).toBeLessThanOrEqual(1);
    });
    // Not "the last 20%": validation draws from every class, and neither part is class-sorted.
    expect(new Set(valIndex.map((r) => src.trainLabels[r])).size).toBe(10);
    const sortedRuns = (idx: number[]) => idx.filter((r, i) => i > 0 && src.trainLabels[r] !== src.trainLabels[idx[i - 1]!]).length;
    expect(sortedRuns(trainIndex)).toBeGreaterThan(100);
    const norm = JSON.parse(await readFile(join(run.outDir, 'normalization.json'), 'utf8')) as NormalizationJson;
    expect(norm.split.validation).toBe(valIndex.length);
    expect(Object.values(norm.split.validation_per_class)).toEqual(PER_CLASS.map((n) => Math.round(n * 0.2)));
  });

  test('the split is determined by the seed', async () => {
    const indices = async (params: Record<string, unknown>) => {
      const run = await normalize(src.dir, params);
      return [Array.from((await read(run, 'train_index.npy')).data), Array.from((await read(run, 'val_index.npy')).data)];
    };
    const a = await indices({ seed: 7 });
    const b = await indices({ seed: 7 });
    const c = await indices({ seed: 8 });
    expect(b).toEqual(a);
    expect(c[1]).not.toEqual(a[1]);
    expect([...c[1]!].sort()).not.toEqual([...a[1]!].sort()); // a different set, not just an order
    // Library level: same answer for the same seed, on a larger class-sorted label vector.
    const labels = Int32Array.from({ length: 5000 }, (_, i) => Math.floor(i / 500));
    expect(stratifiedSplit(labels, 10, 0.2, 1).validation).toEqual(stratifiedSplit(labels, 10, 0.2, 1).validation);
    expect(stratifiedSplit(labels, 10, 0.2, 1).validationPerClass).toEqual(new Array(10).fill(100));
  });

  test('standardize: per-channel mean/std from the training part only; training inputs are centred', async () => {
    const run = await normalize(src.dir, { method: 'standardize', validation_split: 0.25, seed: 3 });
    const trainIndex = (await read(run, 'train_index.npy')).data as Int32Array;
    const norm = JSON.parse(await readFile(join(run.outDir, 'normalization.json'), 'utf8')) as NormalizationJson;
    expect(norm.method).toBe('standardize');
    for (let c = 0; c < C; c++) {
      let n = 0;
      let sum = 0;
      let sq = 0;
      for (const row of trainIndex) {
        for (let p = c; p < ROW; p += C) {
          const v = src.trainImages[row * ROW + p]! / 255;
          n++;
          sum += v;
          sq += v * v;
        }
      }
      const mean = sum / n;
      expect(norm.mean[c]).toBeCloseTo(mean, 10);
      expect(norm.std[c]).toBeCloseTo(Math.sqrt(sq / n - mean * mean), 8);
    }
    expect(norm.std[0]).toBeGreaterThan(norm.std[2]! * 5); // the channels really differ
    const { x } = await gathered(run, trainIndex);
    for (let c = 0; c < C; c++) {
      let n = 0;
      let sum = 0;
      let sq = 0;
      for (let i = c; i < x.length; i += C) {
        n++;
        sum += x[i]!;
        sq += x[i]! ** 2;
      }
      expect(Math.abs(sum / n)).toBeLessThan(1e-4);
      expect(Math.sqrt(sq / n)).toBeCloseTo(1, 4);
    }
    // Validation uses the training statistics: its values are the same affine map of its pixels.
    const valIndex = (await read(run, 'val_index.npy')).data as Int32Array;
    const { x: valX } = await gathered(run, valIndex);
    const first = valIndex[0]!;
    for (let e = 0; e < ROW; e++) {
      const c = e % C;
      expect(valX[e]).toBeCloseTo((src.trainImages[first * ROW + e]! / 255 - norm.mean[c]!) / norm.std[c]!, 5);
    }
  });

  test('validation_split 0 gives an empty validation split; bad input is a clear error', async () => {
    const run = await normalize(src.dir, { validation_split: 0 });
    expect((await read(run, 'val_index.npy')).shape).toEqual([0]);
    expect((await read(run, 'train_index.npy')).shape[0]).toBe(src.trainLabels.length);

    expect(() => normalizeStage.params.parse({ validation_split: 1 })).toThrow();
    await expect(normalizeFailure(null)).rejects.toThrow(/normalize needs exactly one decode stage/);

    const broken = await tempDir('normalize-broken-');
    await cp(src.dir, broken, { recursive: true });
    const dataset = await readDataset(join(broken, 'dataset'));
    dataset.rows.label[5] = 10;
    await writeFile(join(broken, 'dataset', 'rows.json'), JSON.stringify(rowsToJson(dataset.rows)));
    await expect(normalizeFailure(broken)).rejects.toThrow(StageError);
    await expect(normalizeFailure(broken)).rejects.toThrow(/rows\.json: row 5: label 10 is out of range/);
  });

  test('after decode on real CIFAR-10 JPEGs: shapes, stratified split, test set', async () => {
    const source = await cifarSource({ perClassTrain: 50, perClassTest: 10 });
    const fetchDir = await tempDir('normalize-fetch-');
    await mkdir(join(fetchDir, 'data'));
    await extractSubset(source.archive, join(fetchDir, 'data'), 50, 10);
    const decoded = await runStage(decodeStage, {}, { fetch: { kind: 'fetch', dir: fetchDir } }, { resumeDir: await tempDir('decode-resume-') });
    temps.push(decoded.outDir);
    const run = await normalize(decoded.outDir, { seed: 1 });
    expect((await read(run, 'train_index.npy')).shape).toEqual([400]);
    const { manifest, rows } = await readDataset(join(run.outDir, 'dataset'));
    expect(manifest.shape).toEqual([32, 32, 3]);
    expect(manifest.splits).toEqual({ train: 500, test: 100 });
    const val = (await read(run, 'val_index.npy')).data as Int32Array;
    expect(val.length).toBe(100);
    const perClass = new Array<number>(10).fill(0);
    for (const r of val) perClass[rows.label[r]!]!++;
    expect(perClass).toEqual(new Array(10).fill(10));
    const reader = await DatasetReader.open(join(decoded.outDir, 'dataset'));
    const last = val.length - 1;
    const images = reader.readRows([val[last]!]);
    reader.close();
    const { x: valX } = await gathered(run, val);
    for (let e = 0; e < 3072; e += 97) expect(valX[last * 3072 + e]).toBe(Math.fround(images[e]! / 255));
  });
});
