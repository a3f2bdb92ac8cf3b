// The train kind with data-parallel workers (workers: 2, wasm) on toy 8×8 images: it follows a
// single-thread run without dropout, is deterministic, resumes exactly after an interruption,
// aborts promptly without leaking threads, and works with init_from and augmented copies.
import { describe, expect, test, beforeAll } from '@jest/globals';
import { mkdtemp, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TINY_MODEL, useToyTraining, interruptAfterFirstEpoch } from './helpers/toy-training.js';
import { writeAugmentOutputs } from './helpers/fake-normalize.js';
import { trainStage } from '../stages/train/train.js';
import { TrainParams } from '../stages/train/params.js';
import { resolveWorkers } from '../lib/model/workers-param.js';
import { liveWorkerCount } from '../lib/model/data-parallel.js';
import { AbortedError, StageError } from '../engine/errors.js';
import type { ProgressReporter } from '../engine/contract.js';

const TINY = TINY_MODEL;
const NO_DROPOUT = TINY.filter((l) => l.type !== 'dropout');
const BASE = { backend: 'wasm', workers: 2, model: TINY, batch_size: 32, epochs: 3, seed: 7 };

interface History {
  loss: number[];
  val_loss: number[];
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T;
const weightsOf = (run: { outDir: string }) => readFile(join(run.outDir, 'model', 'weights.bin'));
const floats = (b: Buffer) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const toy = useToyTraining('train-parallel-test-', BASE);
const train = toy.train;

describe('workers param', () => {
  test('auto = 2 on wasm with at least 2 cores, else 1; explicit counts are kept', () => {
    expect(TrainParams.parse({}).workers).toBe('auto');
    expect(resolveWorkers('auto', 'wasm', 2)).toBe(2);
    expect(resolveWorkers('auto', 'wasm', 8)).toBe(2);
    expect(resolveWorkers('auto', 'wasm', 1)).toBe(1);
    expect(resolveWorkers('auto', 'cpu', 8)).toBe(1);
    expect(resolveWorkers('auto', 'tensorflow', 8)).toBe(1);
    expect(resolveWorkers(3, 'wasm', 2)).toBe(3);
    expect(() => TrainParams.parse({ workers: 0 })).toThrow();
    expect(() => TrainParams.parse({ workers: 1.5 })).toThrow();
    expect(() => TrainParams.parse({ workers: 'many' })).toThrow();
  });

  test('the resolved count is part of the cache key (fingerprint when > 1; single-thread keys unchanged)', async () => {
    const fp = (raw: Record<string, unknown>) =>
      trainStage.fingerprint!(TrainParams.parse(raw), { root: '.', digestPath: async () => '', signal: new AbortController().signal });
    expect(await fp({ backend: 'wasm', workers: 2 })).toMatchObject({ backend: 'wasm', workers: 2 });
    expect(await fp({ backend: 'wasm', workers: 3 })).toMatchObject({ backend: 'wasm', workers: 3 });
    expect(await fp({ backend: 'wasm', workers: 1 })).not.toHaveProperty('workers');
    expect(await fp({ backend: 'cpu' })).not.toHaveProperty('workers');
    // 'auto' and the count it resolves to key alike: the raw param stays out of the key params.
    const keyParams = trainStage.cacheParams!(TrainParams.parse({ backend: 'wasm', workers: 'auto' })) as Record<string, unknown>;
    expect(keyParams).not.toHaveProperty('workers');
    expect(keyParams).toMatchObject({ backend: 'wasm', epochs: 20 });
  });

  test('more than one worker on a backend other than wasm is a clear error', async () => {
    const run = train({ backend: 'cpu', workers: 2, epochs: 1 });
    await expect(run).rejects.toBeInstanceOf(StageError);
    await expect(run).rejects.toThrow(/workers: 2 needs the wasm backend/);
  });
});

describe('train with 2 workers (wasm, toy data)', () => {
  let first: Awaited<ReturnType<typeof train>>;

  beforeAll(async () => {
    first = await train({});
  });

  test('without dropout, 2 workers follow 1 worker: the averaged shard gradients are the batch gradient', async () => {
    const one = await train({ model: NO_DROPOUT, workers: 1, epochs: 1 });
    const two = await train({ model: NO_DROPOUT, workers: 2, epochs: 1 });
    const other = await train({ model: NO_DROPOUT, workers: 1, epochs: 1, seed: 8 });
    const w1 = floats(await weightsOf(one));
    const w2 = floats(await weightsOf(two));
    const diff = maxDiff(w1, w2);
    console.log(`1 vs 2 workers after 8 RMSprop steps: max weight diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-5);
    expect(maxDiff(w1, floats(await weightsOf(other)))).toBeGreaterThan(1e-2); // the tolerance is tight
    const h1 = await readJson<History>(join(one.outDir, 'history.json'));
    const h2 = await readJson<History>(join(two.outDir, 'history.json'));
    expect(Math.abs(h1.loss[0]! - h2.loss[0]!)).toBeLessThan(1e-5);
    expect(Math.abs(h1.val_loss[0]! - h2.val_loss[0]!)).toBeLessThan(1e-5);
    expect(await readJson(join(two.outDir, 'train.json'))).toMatchObject({ backend: 'wasm', workers: 2 });
    expect(await readJson(join(one.outDir, 'train.json'))).toMatchObject({ backend: 'wasm', workers: 1 });
  });

  test('deterministic: same params twice, byte-identical weights (dropout included); no threads left', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const again = await train({});
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect((await weightsOf(again)).equals(await weightsOf(first))).toBe(true);
    const history = await readJson<History>(join(first.outDir, 'history.json'));
    expect(history.loss[2]!).toBeLessThan(history.loss[0]!);
    expect(liveWorkerCount()).toBe(0);
  });

  test('an interrupted run resumes from its checkpoint (weights and optimizer state) and ends byte-identical', async () => {
    const { resumeDir, signal, epochs, off } = await interruptAfterFirstEpoch(toy, 'train-parallel-resume-');
    try {
      await expect(train({}, {}, { resumeDir, signal })).rejects.toBeInstanceOf(AbortedError);
      expect(liveWorkerCount()).toBe(0);
      const resumed = await train({}, {}, { resumeDir });
      expect(epochs).toEqual([1, 2, 3]);
      expect(await readJson(join(resumed.outDir, 'train.json'))).toMatchObject({ resumed_after_epoch: 1, workers: 2 });
      const history = await readJson<History>(join(resumed.outDir, 'history.json'));
      expect(history.loss).toEqual((await readJson<History>(join(first.outDir, 'history.json'))).loss);
      expect((await weightsOf(resumed)).equals(await weightsOf(first))).toBe(true);
    } finally {
      off();
    }
  });

  test('a 1-worker checkpoint is not resumed by a 2-worker run (the worker count is in the key)', async () => {
    const resumeDir = await mkdtemp(join(tmpdir(), 'train-parallel-key-'));
    toy.removeLater(resumeDir);
    await train({ workers: 1, epochs: 1 }, {}, { resumeDir });
    const two = await train({ epochs: 1 }, {}, { resumeDir });
    expect(await readJson(join(two.outDir, 'train.json'))).toMatchObject({ resumed_after_epoch: null });
  });

  test('abort mid-epoch: AbortedError at once, workers terminated, no checkpoint', async () => {
    const resumeDir = await mkdtemp(join(tmpdir(), 'train-parallel-abort-'));
    toy.removeLater(resumeDir);
    const controller = new AbortController();
    let ticks = 0;
    const progress: ProgressReporter = {
      start: () => {},
      update: () => {},
      done: () => {},
      tick: () => {
        ticks++;
        if (ticks === 2) controller.abort();
      },
    };
    await expect(train({}, {}, { resumeDir, signal: controller.signal, progress })).rejects.toBeInstanceOf(AbortedError);
    expect(ticks).toBe(2);
    expect(liveWorkerCount()).toBe(0);
    expect(existsSync(join(resumeDir, 'latest.json'))).toBe(false);
  });

  test('abort while the workers start up: AbortedError, workers terminated', async () => {
    const controller = new AbortController();
    const log = {
      debug: () => {},
      warn: () => {},
      info: (line: string) => {
        // Logged just before the trainer is created; the abort lands while the workers load wasm.
        if (line.startsWith('model:')) setImmediate(() => controller.abort());
      },
    };
    await expect(train({}, {}, { signal: controller.signal, log })).rejects.toBeInstanceOf(AbortedError);
    expect(liveWorkerCount()).toBe(0);
  });

  test('init_from and augmented copies work with workers', async () => {
    // Copies identical to the training images train exactly like train_x itself.
    const aug = join(toy.work, 'augment-same');
    await writeAugmentOutputs(aug, [toy.trainRows, toy.trainRows, toy.trainRows], toy.trainIndex, toy.classes);
    const viaCopies = await train({ augmented: 'augment' }, { augment: { kind: 'augment', dir: aug } });
    expect((await weightsOf(viaCopies)).equals(await weightsOf(first))).toBe(true);
    // Continuing from 3 trained epochs: the first epoch is already better than a fresh first epoch.
    const fresh = await readJson<History>(join(first.outDir, 'history.json'));
    const cont = await train({ epochs: 1, init_from: 'first' }, { first: { kind: 'train', dir: first.outDir } });
    expect((await readJson<History>(join(cont.outDir, 'history.json'))).loss[0]!).toBeLessThan(fresh.loss[0]!);
  });
});
