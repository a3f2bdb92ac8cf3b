// decode's `max_per_class`: the first N images of each class per split, in the dataset's row
// order, from image folders and from CIFAR binary batches; a larger cap keeps what a smaller one
// kept; absent, the params (and so the cache key) are what they were before the option existed.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeStage } from '../stages/decode/decode.js';
import { perClassFilter } from '../lib/dataset/per-class-limit.js';
import { CLASSES, cifarSource, extractSubset } from './helpers/dataset.js';
import { writeCifarBinaryTree } from './helpers/cifar-binary.js';
import { runStage } from './helpers/stage-context.js';
import { readDatasetSplits } from './helpers/dataset-arrays.js';

const BYTES = 32 * 32 * 3;
const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

async function decode(fetchDir: string, params: Record<string, unknown>) {
  const run = await runStage(decodeStage, params, { fetch: { kind: 'fetch', dir: fetchDir } }, { resumeDir: await tempDir('decode-subset-resume-') });
  temps.push(run.outDir);
  const data = await readDatasetSplits(join(run.outDir, 'dataset'));
  const info = JSON.parse(await readFile(join(run.outDir, 'decode.json'), 'utf8')) as {
    max_per_class: unknown;
    counts: Record<string, { total: number; per_class: Record<string, number> }>;
  };
  const rows = JSON.parse(await readFile(join(run.outDir, 'dataset', 'rows.json'), 'utf8')) as unknown;
  return { data, info, rows };
}

let folders: string;
beforeAll(async () => {
  const source = await cifarSource({ perClassTrain: 12, perClassTest: 6 });
  folders = await tempDir('decode-subset-');
  await extractSubset(source.archive, join(folders, 'data'), 12, 6);
});

afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

describe('perClassFilter', () => {
  test('keeps the first N of each (split, class) in call order; no limit keeps all', () => {
    const keep = perClassFilter({ train: 2 });
    const calls: Array<['train' | 'test', number]> = [
      ['train', 0],
      ['train', 1],
      ['train', 0],
      ['train', 0],
      ['train', 1],
      ['test', 0],
      ['test', 0],
      ['test', 0],
    ];
    expect(calls.map(([s, l]) => keep(s, l))).toEqual([true, true, true, false, true, true, true, true]);
    const all = perClassFilter(undefined);
    expect([0, 0, 0].map((l) => all('train', l))).toEqual([true, true, true]);
  });
});

describe('decode max_per_class', () => {
  test('image folders: a number caps both splits, an object each; the rows are the first files of each class', async () => {
    const full = await decode(folders, {});
    const both = await decode(folders, { max_per_class: 3 });
    expect(both.data.train.images.shape).toEqual([30, 32, 32, 3]);
    expect(both.data.test.images.shape).toEqual([30, 32, 32, 3]);
    expect(both.info.max_per_class).toEqual({ train: 3, test: 3 });
    for (const c of CLASSES) expect(both.info.counts.train!.per_class[c]).toBe(3);
    // The kept rows are the full decode's first 3 rows of each class, pixel for pixel.
    const fullTrain = full.data.train;
    for (let c = 0; c < CLASSES.length; c++) {
      for (let k = 0; k < 3; k++) {
        const ours = both.data.train.images.data.subarray((c * 3 + k) * BYTES, (c * 3 + k + 1) * BYTES);
        const theirs = fullTrain.images.data.subarray((c * 12 + k) * BYTES, (c * 12 + k + 1) * BYTES);
        expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
        expect(both.data.train.labels.data[c * 3 + k]).toBe(c);
      }
    }

    const trainOnly = await decode(folders, { max_per_class: { train: 5 } });
    expect(trainOnly.data.train.images.shape[0]).toBe(50);
    expect(trainOnly.data.test.images.shape[0]).toBe(60);
    expect(trainOnly.info.max_per_class).toEqual({ train: 5 });
    expect(full.info.max_per_class).toBeNull();
  });

  test('CIFAR binary batches: the first N records of each class in batch order', async () => {
    const fetchDir = await tempDir('decode-subset-bin-');
    const n = 40;
    const images = new Uint8Array(n * BYTES);
    for (let i = 0; i < n; i++) images.fill(i, i * BYTES, (i + 1) * BYTES); // pixel value = record index
    const labels = Array.from({ length: n }, (_, i) => i % 4);
    await writeCifarBinaryTree(join(fetchDir, 'data'), { classes: CLASSES.slice(0, 4), train: { images, labels }, test: { images, labels } }, { batches: 3 });
    const out = await decode(fetchDir, { max_per_class: { train: 2, test: 1 } });
    // Records stay in batch order: records 0–7 are the first two of each class, 8 onwards are dropped.
    expect(Array.from(out.data.train.labels.data)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
    const firstPixel = (i: number) => out.data.train.images.data[i * BYTES];
    expect(Array.from({ length: 8 }, (_, i) => firstPixel(i))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(out.data.test.images.shape[0]).toBe(4);
  });

  test('the cache key params: absent leaves them as before; set, they hold the cap', () => {
    const key = (raw: Record<string, unknown>) => decodeStage.cacheParams!(decodeStage.params.parse(raw)) as Record<string, unknown>;
    expect(key({})).toEqual({ format: 'auto', height: 32, width: 32, channels: 3, resize: 'bilinear', skip_corrupt: false });
    expect(key({ max_per_class: 10 })).toMatchObject({ max_per_class: 10 });
    expect(key({ max_per_class: 10 })).not.toEqual(key({ max_per_class: 11 }));
    expect(key({ max_pixels: 1000 })).toMatchObject({ max_pixels: 1000 });
  });

  test('a bad cap is a params error', () => {
    expect(() => decodeStage.params.parse({ max_per_class: 0 })).toThrow();
    expect(() => decodeStage.params.parse({ max_per_class: { train: 1, valid: 2 } })).toThrow();
  });
});
