// Shared fixture of the train-stage tests: toy 8×8 three-class images written as a normalize
// stage's outputs in a temp dir, and a `train(params)` that runs the train kind over them.
import { afterAll, beforeAll } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onEpochEnd } from '../../lib/model/fit.js';
import { trainStage } from '../../stages/train/train.js';
import { runStage, type FakeRun, type FakeUpstream } from './stage-context.js';
import { subset, toyImages, writeNormalizeOutputs, type ImageSet } from './fake-normalize.js';

/** A conv net small enough to train in milliseconds on 8×8 inputs. */
export const TINY_MODEL = [
  { type: 'conv2d', filters: 4, kernel_size: 3, padding: 'same', activation: 'relu' },
  { type: 'maxPooling2d', pool_size: 2 },
  { type: 'dropout', rate: 0.25 },
  { type: 'flatten' },
  { type: 'dense', units: 3, activation: 'softmax' },
];

export interface ToyTraining {
  /** Temp dir of the fixture (tests may add upstream dirs under it). */
  work: string;
  normalize: FakeUpstream;
  /** The training rows of the split, in normalize's order. */
  trainRows: ImageSet;
  /** normalize's train_index.npy (dataset rows of the training rows). */
  trainIndex: Int32Array;
  classes: string[];
  /** Removes these paths in afterAll. */
  removeLater(...paths: string[]): void;
  /** Runs the train kind with `base` params overridden by `params`. */
  train(params: Record<string, unknown>, inputs?: Record<string, FakeUpstream>, options?: Parameters<typeof runStage>[3]): Promise<FakeRun>;
}

/** Registers beforeAll/afterAll hooks; the returned object's fields are set once beforeAll ran. */
export function useToyTraining(prefix: string, base: Record<string, unknown>): ToyTraining {
  const cleanup: string[] = [];
  const toy: ToyTraining = {
    work: '',
    normalize: { kind: 'normalize', dir: '' },
    trainRows: undefined as unknown as ImageSet,
    trainIndex: new Int32Array(0),
    classes: ['a', 'b', 'c'],
    removeLater: (...paths) => void cleanup.push(...paths),
    async train(params, inputs = {}, options = {}) {
      const run = await runStage(trainStage, { ...base, ...params }, { normalize: toy.normalize, ...inputs }, options);
      cleanup.push(run.outDir, run.resumeDir);
      return run;
    },
  };
  beforeAll(async () => {
    toy.work = await mkdtemp(join(tmpdir(), prefix));
    const all = toyImages(300, 3, 8, 3, 1);
    const split = await writeNormalizeOutputs(join(toy.work, 'normalize'), all, toyImages(90, 3, 8, 3, 2), ['a', 'b', 'c']);
    toy.trainRows = subset(all, split.train);
    toy.trainIndex = split.train;
    toy.normalize = { kind: 'normalize', dir: join(toy.work, 'normalize') };
  });
  afterAll(async () => {
    for (const dir of [toy.work, ...cleanup]) await rm(dir, { recursive: true, force: true });
  });
  return toy;
}

/**
 * An interruption after epoch `after` (default 1): a fresh resume dir (removed after the suite), a
 * signal that aborts once that epoch is checkpointed, and the epochs every training loop reports
 * meanwhile. Call `off()` when done.
 */
export async function interruptAfterFirstEpoch(
  toy: ToyTraining,
  prefix: string,
  after = 1,
): Promise<{ resumeDir: string; signal: AbortSignal; epochs: number[]; off: () => void }> {
  const resumeDir = await mkdtemp(join(tmpdir(), prefix));
  toy.removeLater(resumeDir);
  const controller = new AbortController();
  const epochs: number[] = [];
  const off = onEpochEnd((e) => {
    epochs.push(e.logs.epoch);
    if (e.logs.epoch === after) controller.abort();
  });
  return { resumeDir, signal: controller.signal, epochs, off: () => void off() };
}
