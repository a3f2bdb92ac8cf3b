// Writes a normalize stage's outputs (the dataset, train/val indices, normalization.json,
// classes.json) into a directory, from synthetic images or from real decoded ones, so the train
// and evaluate kinds can be run over plain directories.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildDataset, type LabeledSource } from '../../lib/dataset/build.js';
import { CopiesDatasetWriter } from '../../lib/augment/copies-dataset.js';
import { COPIES_DIR, SOURCE_INDEX } from '../../lib/augment/copies.js';
import { DATASET_DIR } from '../../lib/dataset/format.js';
import { readNpy, writeNpy, type NdArray } from '../../lib/npy.js';
import { readDatasetSplits } from './dataset-arrays.js';

export interface ImageSet {
  /** uint8 [N, H, W, C] pixels, C order. */
  pixels: Uint8Array;
  labels: Int32Array;
  shape: [number, number, number];
}

/** Learnable toy images: class c has a brighter channel (c mod C) and a bright quadrant, plus noise. */
export function toyImages(n: number, classes: number, size = 8, channels = 3, seed = 1): ImageSet {
  let s = seed >>> 0;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const pixels = new Uint8Array(n * size * size * channels);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const quadrant = (y < size / 2 ? 0 : 2) + (x < size / 2 ? 0 : 1);
        for (let ch = 0; ch < channels; ch++) {
          let v = rand() * 110;
          if (ch === c % channels) v += 70;
          if (quadrant === Math.floor(c / channels) % 4) v += 60;
          pixels[((i * size + y) * size + x) * channels + ch] = Math.min(255, Math.round(v));
        }
      }
    }
  }
  return { pixels, labels, shape: [size, size, channels] };
}

export function subset(set: ImageSet, rows: ArrayLike<number>): ImageSet {
  const size = set.shape[0] * set.shape[1] * set.shape[2];
  const pixels = new Uint8Array(rows.length * size);
  const labels = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    pixels.set(set.pixels.subarray(rows[i]! * size, (rows[i]! + 1) * size), i * size);
    labels[i] = set.labels[rows[i]!]!;
  }
  return { pixels, labels, shape: set.shape };
}

/** The notebook's scaling, as normalize computes it: float32(pixel / 255). */
export const SCALE = 1 / 255;

export function scaled(set: ImageSet): NdArray<'float32'> {
  const data = new Float32Array(set.pixels.length);
  for (let i = 0; i < data.length; i++) data[i] = set.pixels[i]! / 255;
  return { dtype: 'float32', shape: [set.labels.length, ...set.shape], data };
}

export function oneHot(labels: Int32Array, k: number): NdArray<'float32'> {
  const data = new Float32Array(labels.length * k);
  labels.forEach((l, i) => (data[i * k + l] = 1));
  return { dtype: 'float32', shape: [labels.length, k], data };
}

/** Every `valEvery`-th image of each class goes to validation (stratified, deterministic). */
export function splitTrainVal(set: ImageSet, valEvery = 5): { train: Int32Array; val: Int32Array } {
  const train: number[] = [];
  const val: number[] = [];
  const seen = new Map<number, number>();
  set.labels.forEach((l, i) => {
    const n = seen.get(l) ?? 0;
    seen.set(l, n + 1);
    (n % valEvery === valEvery - 1 ? val : train).push(i);
  });
  return { train: Int32Array.from(train), val: Int32Array.from(val) };
}

/** Writes normalize's outputs for (train ∪ val) `trainSet` and `testSet` into `dir`; returns the split. */
export async function writeNormalizeOutputs(
  dir: string,
  trainSet: ImageSet,
  testSet: ImageSet,
  classes: string[],
  valEvery = 5,
): Promise<{ train: Int32Array; val: Int32Array }> {
  await mkdir(dir, { recursive: true });
  const split = splitTrainVal(trainSet, valEvery);
  await writeDataset(join(dir, DATASET_DIR), trainSet, testSet, classes);
  await writeNpy(join(dir, 'train_index.npy'), { dtype: 'int32', shape: [split.train.length], data: split.train });
  await writeNpy(join(dir, 'val_index.npy'), { dtype: 'int32', shape: [split.val.length], data: split.val });
  await writeFile(join(dir, 'normalization.json'), JSON.stringify({ method: 'scale', scale: SCALE, mean: [0, 0, 0], std: [1, 1, 1] }));
  await writeFile(join(dir, 'classes.json'), JSON.stringify(classes));
  return split;
}

/** A dataset whose training rows are `trainSet`'s and test rows `testSet`'s, in order. */
export async function writeDataset(dir: string, trainSet: ImageSet, testSet: ImageSet, classes: string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const size = trainSet.shape[0] * trainSet.shape[1] * trainSet.shape[2];
  const parts = [
    { split: 'train' as const, set: trainSet },
    { split: 'test' as const, set: testSet },
  ];
  const sources: LabeledSource[] = [];
  const pixels: Uint8Array[] = [];
  for (const { split, set } of parts) {
    set.labels.forEach((label, i) => {
      sources.push({ split, label, source: `${split}/${i}`, digest: 'synthetic' });
      pixels.push(set.pixels.subarray(i * size, (i + 1) * size));
    });
  }
  await buildDataset({
    dir,
    shape: trainSet.shape,
    classes,
    settings: 'synthetic',
    sources,
    skipFailed: false,
    decode: async (indices) => indices.map((i) => pixels[i]!),
    carry: async () => {
      throw new Error('no previous dataset');
    },
  });
}

/**
 * An augment stage's outputs: the given uint8 copies of the training rows (`sourceIndex`: the dataset
 * rows they were made from) as augment writes them, one sharded dataset in copies/.
 */
export async function writeAugmentOutputs(dir: string, copies: ImageSet[], sourceIndex: Int32Array, classes: string[], maxShardBytes?: number): Promise<void> {
  const first = copies[0]!;
  const rows = first.labels.length;
  const from = { shape: first.shape, classes, label: first.labels, source: new Array<string>(rows).fill('toy'), digest: new Array<string>(rows).fill('toy') };
  const writer = new CopiesDatasetWriter(join(dir, COPIES_DIR), from, copies.length, 'toy copies', maxShardBytes);
  for (const [i, c] of copies.entries()) await writer.append(i, 0, rows, c.pixels);
  await writer.finish();
  await writeNpy(join(dir, SOURCE_INDEX), { dtype: 'int32', shape: [sourceIndex.length], data: sourceIndex });
}

/**
 * A normalize output's rows as float arrays, computed here from its dataset and normalization.json
 * (independently of the readers under test): `train`/`val` follow train_index/val_index, `test` is
 * the dataset's test split.
 */
export async function normalizedArrays(dir: string, part: 'train' | 'val' | 'test'): Promise<{ x: NdArray<'float32'>; y: NdArray<'float32'> }> {
  const data = await readDatasetSplits(join(dir, DATASET_DIR));
  const norm = JSON.parse(await readFile(join(dir, 'normalization.json'), 'utf8')) as { method: string; mean?: number[]; std?: number[] };
  const source = part === 'test' ? data.test : data.train;
  const index = part === 'test' ? Int32Array.from(source.labels.data.keys()) : ((await readNpy(join(dir, `${part}_index.npy`))).data as Int32Array);
  const [h, w, c] = source.images.shape.slice(1) as [number, number, number];
  const size = h * w * c;
  const x = new Float32Array(index.length * size);
  const labels = new Int32Array(index.length);
  index.forEach((row, i) => {
    labels[i] = source.labels.data[row]!;
    for (let e = 0; e < size; e++) {
      const ch = e % c;
      const mean = norm.method === 'standardize' ? norm.mean![ch]! : 0;
      const std = norm.method === 'standardize' ? norm.std![ch]! : 1;
      x[i * size + e] = (source.images.data[row * size + e]! / 255 - mean) / std;
    }
  });
  return { x: { dtype: 'float32', shape: [index.length, h, w, c], data: x }, y: oneHot(labels, data.classes.length) };
}
