// The train kind over plain directories: small cpu runs on toy 8×8 images (outputs, determinism,
// interrupt + resume, init_from, augmented copies, validation of params), then the real test:
// 2 epochs of the notebook's network on 2,000 real CIFAR-10 images on wasm.
import { describe, expect, test, beforeAll } from '@jest/globals';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { runStage, type FakeUpstream } from './helpers/stage-context.js';
import { TINY_MODEL, useToyTraining, interruptAfterFirstEpoch } from './helpers/toy-training.js';
import { normalizedArrays, writeAugmentOutputs, writeNormalizeOutputs, subset, type ImageSet } from './helpers/fake-normalize.js';
import { loadRealCifar } from './helpers/real-cifar.js';
import { trainStage } from '../stages/train/train.js';
import { TrainParams, trainKeyParams } from '../stages/train/params.js';
import { checkMonitor, stoppingSpec } from '../stages/train/best.js';
import { evaluateStage } from '../stages/evaluate/evaluate.js';
import { onEpochEnd, type EpochEndEvent } from '../lib/model/fit.js';
import { loadModel } from '../lib/model/io.js';
import { checkBundle } from '../lib/model/bundle.js';
import { floatRows } from '../lib/model/data.js';
import { lossAndAccuracy, predictRows } from '../lib/model/predict.js';
import { readNpy } from '../lib/npy.js';
import { initBackend } from '../lib/tf/backend.js';
import { AbortedError } from '../engine/errors.js';

const TINY = TINY_MODEL;
const BASE = { backend: 'cpu', model: TINY, batch_size: 32, epochs: 3, seed: 7 };

interface History {
  epoch: number[];
  loss: number[];
  acc: number[];
  val_loss: number[];
  val_acc: number[];
  lr: number[];
  seconds: number[];
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T;

const toy = useToyTraining('train-test-', BASE);
const train = toy.train;

describe('train params', () => {
  test('defaults are the notebook recipe', () => {
    const p = TrainParams.parse({});
    expect(p).toMatchObject({ backend: 'auto', batch_size: 128, epochs: 20 });
    expect(p.optimizer).toEqual({ type: 'rmsprop', lr: 0.001, rho: 0.9, epsilon: 1e-7 });
    expect(p.lr_schedule).toEqual({ type: 'constant' });
    expect(p.model).toHaveLength(18);
    expect(p.model[8]).toEqual({ type: 'conv2d', filters: 64, kernel_size: [3, 3], strides: 1, padding: 'valid', activation: 'linear', use_bias: true });
  });

  test('rejects unknown keys, layer types and optimizers', () => {
    expect(() => TrainParams.parse({ epoch: 3 })).toThrow(/epoch/);
    expect(() => TrainParams.parse({ model: [{ type: 'conv3d', filters: 2 }] })).toThrow();
    expect(() => TrainParams.parse({ model: [{ type: 'conv2d', filters: 2, kernal_size: 3 }] })).toThrow(/kernal_size|kernel_size/);
    expect(() => TrainParams.parse({ optimizer: { type: 'adagrad' } })).toThrow();
    expect(() => TrainParams.parse({ model: [{ type: 'dropout', rate: 1.5 }] })).toThrow();
  });

  test('init_from and augmented are stage references', () => {
    const p = TrainParams.parse({ init_from: 'train', augmented: 'augment' });
    expect(trainStage.stageRefs!(p)).toEqual(['train', 'augment']);
    expect(trainStage.stageRefs!(TrainParams.parse({}))).toEqual([]);
  });

  test('fingerprint names the backend and its versions', async () => {
    const fp = await trainStage.fingerprint!(TrainParams.parse({ backend: 'cpu' }), {
      root: '.',
      digestPath: async () => '',
      signal: new AbortController().signal,
    });
    expect(fp).toMatchObject({ backend: 'cpu', versions: { '@tensorflow/tfjs-core': expect.any(String) } });
  });
});

describe('train on cpu (toy data)', () => {
  let first: Awaited<ReturnType<typeof train>>;

  beforeAll(async () => {
    first = await train({});
  });

  test('writes model, history, summary and train.json; loss falls', async () => {
    const history = await readJson<History>(join(first.outDir, 'history.json'));
    expect(history.epoch).toEqual([1, 2, 3]);
    expect(history.loss[2]!).toBeLessThan(history.loss[0]!);
    expect(history.val_acc[2]!).toBeGreaterThan(0.6); // 3 classes: chance is 1/3
    expect(history.lr).toEqual([0.001, 0.001, 0.001]);
    const info = await readJson<Record<string, unknown>>(join(first.outDir, 'train.json'));
    expect(info).toMatchObject({ backend: 'cpu', train_count: 240, val_count: 60, resumed_after_epoch: null, epochs: 3 });
    expect(info.epoch_seconds).toHaveLength(3);
    // The best epoch by val_loss is recorded; nothing acts on it by default: the last epoch's weights are kept.
    const bestEpoch = history.val_loss.indexOf(Math.min(...history.val_loss)) + 1;
    expect(info).toMatchObject({
      epochs_trained: 3,
      best: { monitor: 'val_loss', mode: 'min', min_delta: 0, epoch: bestEpoch, value: history.val_loss[bestEpoch - 1] },
      early_stopping: null,
      restore_best: false,
      kept_weights: 'last',
      kept_epoch: 3,
    });
    const summary = await readFile(join(first.outDir, 'summary.txt'), 'utf8');
    expect(summary).toContain('conv2d_1 (Conv2D)            (None, 8, 8, 4)           112');
    expect(summary).toContain('Total params: 307');
    const modelJson = await readJson<{ format: string; weightsManifest: { paths: string[] }[] }>(join(first.outDir, 'model', 'model.json'));
    expect(modelJson.format).toBe('layers-model');
    expect(modelJson.weightsManifest[0]!.paths).toEqual(['weights.bin']);
    expect((await readFile(join(first.outDir, 'model', 'weights.bin'))).length).toBe(307 * 4);
  });

  test('the saved model reloads and predicts exactly what training measured', async () => {
    await initBackend('cpu');
    const model = await loadModel(join(first.outDir, 'model'));
    const dir = toy.normalize.dir;
    const { x: vx, y: vy } = await normalizedArrays(dir, 'val');
    const probs = await predictRows(model, floatRows(vx, vy, 'val'), 16);
    model.dispose();
    const { loss, accuracy } = lossAndAccuracy(probs, vy.data as Float32Array, 3);
    const history = await readJson<History>(join(first.outDir, 'history.json'));
    expect(loss).toBe(history.val_loss[2]);
    expect(accuracy).toBe(history.val_acc[2]);
  });

  test('same params, same weights; another seed, other weights; no tensors leak', async () => {
    await initBackend('cpu');
    const tensorsBefore = tf.memory().numTensors;
    const again = await train({});
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const weights = (run: { outDir: string }) => readFile(join(run.outDir, 'model', 'weights.bin'));
    expect((await weights(again)).equals(await weights(first))).toBe(true);
    const other = await train({ seed: 8 });
    expect((await weights(other)).equals(await weights(first))).toBe(false);
  });

  test('batches read ahead on another thread train exactly as batches read on the training thread', async () => {
    const unprefetched = await train({ prefetch: 0 });
    const weights = (run: { outDir: string }) => readFile(join(run.outDir, 'model', 'weights.bin'));
    expect((await weights(unprefetched)).equals(await weights(first))).toBe(true);
    expect(await readJson<History>(join(unprefetched.outDir, 'history.json'))).toMatchObject({
      loss: (await readJson<History>(join(first.outDir, 'history.json'))).loss,
    });
    expect(TrainParams.parse({}).prefetch).toBe(3);
    // Every training batch came from the prefetch thread (3 epochs of 240 rows in batches of 32).
    expect((await readJson<{ prefetch: unknown }>(join(first.outDir, 'train.json'))).prefetch).toEqual({ depth: 3, batches_read_ahead: 24 });
    expect((await readJson<{ prefetch: unknown }>(join(unprefetched.outDir, 'train.json'))).prefetch).toEqual({ depth: 0, batches_read_ahead: 0 });
    expect(trainKeyParams(TrainParams.parse({ prefetch: 0 }))).toEqual(trainKeyParams(TrainParams.parse({}))); // speed only: not in the key
  });

  test('an interrupted run resumes from its last checkpoint and ends with the same weights', async () => {
    const { resumeDir, signal, epochs, off } = await interruptAfterFirstEpoch(toy, 'train-resume-');
    try {
      await expect(train({}, {}, { resumeDir, signal })).rejects.toBeInstanceOf(AbortedError);
      expect(epochs).toEqual([1]);
      const resumed = await train({}, {}, { resumeDir });
      expect(epochs).toEqual([1, 2, 3]); // epoch 1 was not trained again
      const info = await readJson<{ resumed_after_epoch: number }>(join(resumed.outDir, 'train.json'));
      expect(info.resumed_after_epoch).toBe(1);
      const history = await readJson<History>(join(resumed.outDir, 'history.json'));
      const reference = await readJson<History>(join(first.outDir, 'history.json'));
      expect(history.loss).toEqual(reference.loss);
      const weights = await readFile(join(resumed.outDir, 'model', 'weights.bin'));
      expect(weights.equals(await readFile(join(first.outDir, 'model', 'weights.bin')))).toBe(true);
    } finally {
      off();
    }
  });

  test("init_from starts from the other stage's weights", async () => {
    const fresh = await readJson<History>(join(first.outDir, 'history.json'));
    const cont = await train({ epochs: 1, init_from: 'first' }, { first: { kind: 'train', dir: first.outDir } });
    const history = await readJson<History>(join(cont.outDir, 'history.json'));
    // Continuing from 3 trained epochs: the first epoch is already better than a fresh first epoch.
    expect(history.loss[0]!).toBeLessThan(fresh.loss[0]!);
    expect(history.val_acc[0]!).toBeGreaterThanOrEqual(fresh.val_acc[0]!);
    const wider = [...TINY.slice(0, 4), { type: 'dense', units: 8, activation: 'relu' }, { type: 'dense', units: 3, activation: 'softmax' }];
    await expect(train({ epochs: 1, model: wider, init_from: 'first' }, { first: { kind: 'train', dir: first.outDir } })).rejects.toThrow(
      /init_from first: model architecture differs/,
    );
  });

  test('augmented: one copy per epoch, labels from train_y, pixels through normalization.json', async () => {
    // Copies identical to the training images must train exactly like train_x itself...
    const aug = join(toy.work, 'augment-same');
    await writeAugmentOutputs(aug, [toy.trainRows, toy.trainRows, toy.trainRows], toy.trainIndex, toy.classes);
    const viaCopies = await train({ augmented: 'augment' }, { augment: { kind: 'augment', dir: aug } });
    const weights = (run: { outDir: string }) => readFile(join(run.outDir, 'model', 'weights.bin'));
    expect((await weights(viaCopies)).equals(await weights(first))).toBe(true);
    // ...and a different copy in epoch 2 must change the result (so copies really are used per epoch).
    const flipped: ImageSet = { ...toy.trainRows, pixels: toy.trainRows.pixels.map((v) => 255 - v) };
    const aug2 = join(toy.work, 'augment-flipped');
    await writeAugmentOutputs(aug2, [toy.trainRows, flipped, toy.trainRows], toy.trainIndex, toy.classes);
    const mixed = await train({ augmented: 'augment' }, { augment: { kind: 'augment', dir: aug2 } });
    const h1 = await readJson<History>(join(first.outDir, 'history.json'));
    const h2 = await readJson<History>(join(mixed.outDir, 'history.json'));
    expect(h2.loss[0]).toBe(h1.loss[0]);
    expect(h2.loss[1]).not.toBe(h1.loss[1]);
    // Row counts must match normalize's train_y.
    const aug3 = join(toy.work, 'augment-short');
    await writeAugmentOutputs(aug3, [subset(toy.trainRows, [0, 1, 2])], toy.trainIndex.subarray(0, 3), toy.classes);
    await expect(train({ augmented: 'augment' }, { augment: { kind: 'augment', dir: aug3 } })).rejects.toThrow(
      'augment/copies has 3 images, not copies of the 240 rows of normalize/train_index.npy',
    );
  });

  test('units: auto gives one output per class; model/ holds bundle.json (classes, input, normalization, data, metrics)', async () => {
    const warnings: string[] = [];
    const log = { info: () => {}, debug: () => {}, warn: (m: string) => void warnings.push(m) };
    const run = await train({ model: [...TINY.slice(0, 4), { type: 'dense', units: 'auto', activation: 'softmax' }], epochs: 1 }, {}, { log });
    const model = await readJson<{ modelTopology: { config: { layers: { class_name: string; config: { units?: number } }[] } } }>(
      join(run.outDir, 'model', 'model.json'),
    );
    expect(model.modelTopology.config.layers.at(-1)).toMatchObject({ class_name: 'Dense', config: { units: 3 } });
    const bundle = checkBundle(await readJson(join(run.outDir, 'model', 'bundle.json')), 'bundle.json');
    const history = await readJson<History>(join(run.outDir, 'history.json'));
    expect(bundle).toMatchObject({
      model: 'model.json',
      classes: ['a', 'b', 'c'],
      input: { size: [8, 8, 3], layout: 'NHWC', channel_order: 'RGB', resize: 'bilinear' },
      normalization: { method: 'scale', scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
      training: { stage: 'train', data_digest: 'digest-of-normalize', augmented: null, train_count: 240, epochs: 1 },
      metrics: { epoch: 1, loss: history.loss[0], val_acc: history.val_acc[0] },
    });
    // The toy dataset's settings do not name a resize method: said, and decode's default assumed.
    expect(warnings.join('\n')).toMatch(/does not say how its images were resized: bundle.json says bilinear/);
  });

  test('a model whose output does not match the classes is a clear error', async () => {
    const wrong = [...TINY.slice(0, 4), { type: 'dense', units: 10, activation: 'softmax' }];
    await expect(train({ model: wrong })).rejects.toThrow(/last layer outputs 10 values but the data has 3 classes/);
  });
});

describe('best epoch and early stopping (cpu, toy data)', () => {
  // Monitoring the training loss with min_delta 100, epoch 1 is the best and no later epoch can
  // beat it by 100: with patience 2, training stops after epoch 3, whatever the numbers.
  const plateau = { epochs: 6, monitor: 'loss', min_delta: 100, patience: 2, restore_best: true };
  const weights = (run: { outDir: string }) => readFile(join(run.outDir, 'model', 'weights.bin'));
  let stopped: Awaited<ReturnType<typeof train>>;
  beforeAll(async () => {
    stopped = await train(plateau);
  });

  test("stops after `patience` epochs without improvement and keeps the best epoch's weights", async () => {
    const history = await readJson<History>(join(stopped.outDir, 'history.json'));
    expect(history.epoch).toEqual([1, 2, 3]);
    const info = await readJson<Record<string, unknown>>(join(stopped.outDir, 'train.json'));
    expect(info).toMatchObject({
      epochs: 6,
      epochs_trained: 3,
      best: { monitor: 'loss', mode: 'min', min_delta: 100, epoch: 1, value: history.loss[0] },
      early_stopping: { patience: 2, stopped_after_epoch: 3 },
      restore_best: true,
      kept_weights: 'best',
      kept_epoch: 1,
      kept: { epoch: 1, loss: history.loss[0] },
      final: { epoch: 3 },
    });
    // The weights are those of a run that trained exactly the best epoch, not the last epoch's.
    expect((await weights(stopped)).equals(await weights(await train({ epochs: 1 })))).toBe(true);
    // Without restore_best the same stop keeps the last epoch's weights (as Keras' EarlyStopping does).
    const last = await train({ ...plateau, restore_best: false });
    expect((await weights(last)).equals(await weights(stopped))).toBe(false);
    expect(await readJson<Record<string, unknown>>(join(last.outDir, 'train.json'))).toMatchObject({ kept_weights: 'last', kept_epoch: 3 });
  });

  test('an interrupted run resumes with the best epoch and patience count it had: same stop, same weights', async () => {
    // Interrupted after epoch 2: the best (epoch 1) is no longer the latest checkpoint, and one
    // epoch of patience is spent; a resume that forgot either would train on past epoch 3.
    const { resumeDir, signal, epochs, off } = await interruptAfterFirstEpoch(toy, 'train-best-resume-', 2);
    try {
      await expect(train(plateau, {}, { resumeDir, signal })).rejects.toBeInstanceOf(AbortedError);
      expect(epochs).toEqual([1, 2]);
      const resumed = await train(plateau, {}, { resumeDir });
      expect(epochs).toEqual([1, 2, 3]);
      const pick = ({ best, early_stopping, kept_weights, kept_epoch, epochs_trained }: Record<string, unknown>) => ({
        best,
        early_stopping,
        kept_weights,
        kept_epoch,
        epochs_trained,
      });
      const info = await readJson<Record<string, unknown>>(join(resumed.outDir, 'train.json'));
      expect(info.resumed_after_epoch).toBe(2);
      expect(pick(info)).toEqual(pick(await readJson<Record<string, unknown>>(join(stopped.outDir, 'train.json'))));
      expect((await weights(resumed)).equals(await weights(stopped))).toBe(true);
    } finally {
      off();
    }
  });

  test('monitor modes follow Keras (auto: max for accuracies); a validation monitor without a validation split is a clear error', () => {
    expect(stoppingSpec(TrainParams.parse({}))).toEqual({ monitor: 'val_loss', mode: 'min', min_delta: 0 });
    expect(stoppingSpec(TrainParams.parse({ monitor: 'val_acc', patience: 3 }))).toEqual({ monitor: 'val_acc', mode: 'max', min_delta: 0, patience: 3 });
    expect(stoppingSpec(TrainParams.parse({ monitor: 'acc', mode: 'min' })).mode).toBe('min');
    expect(() => TrainParams.parse({ patience: 0 })).toThrow();
    expect(() => TrainParams.parse({ monitor: 'val_accuracy' })).toThrow();
    expect(() => checkMonitor('train', TrainParams.parse({ patience: 3 }), false)).toThrow(
      /train train: patience: 3 judge epochs by monitor: val_loss, but the normalize stage has no validation split; set its validation_split, or monitor: loss/,
    );
    expect(() => checkMonitor('train', TrainParams.parse({ monitor: 'loss', restore_best: true }), false)).not.toThrow();
    expect(() => checkMonitor('train', TrainParams.parse({}), false)).not.toThrow(); // nothing acts on it: recorded only
  });
});

/** Whether wasm can run a conv net's backward pass (needs the extra kernels of lib/tf/kernels). */
async function wasmCanTrain(): Promise<boolean> {
  try {
    await initBackend('wasm');
    const grad = tf.grad((x: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, tf.ones([3, 3, 1, 1]), 1, 'same').sum());
    tf.tidy(() => grad(tf.ones([1, 4, 4, 1])).dataSync());
    const filterGrad = tf.grad((f: tf.Tensor) => tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, f as tf.Tensor4D, 1, 'same').sum());
    tf.tidy(() => filterGrad(tf.ones([3, 3, 1, 1])).dataSync());
    return true;
  } catch {
    return false;
  }
}

describe('train the notebook network on real CIFAR-10 (wasm)', () => {
  let canTrain = false;
  let data: FakeUpstream;
  /** What the figures logged below are measured on: the real archive, or generated images without it. */
  let dataName = 'real CIFAR';
  const params = { backend: 'wasm', epochs: 2, batch_size: 128, seed: 1 };

  beforeAll(async () => {
    canTrain = await wasmCanTrain();
    // The test below fails on it: wasm trains with the kernels lib/tf/kernels adds, so this is a regression.
    if (!canTrain) return;
    const root = await mkdtemp(join(tmpdir(), 'train-cifar-'));
    toy.removeLater(root);
    const dir = join(root, 'normalize');
    // 250 train + 50 test images per class: 2,000 train / 500 val / 500 test.
    const real = await loadRealCifar(250, 50);
    if (!real.real) {
      console.warn('real CIFAR-10 archive not found: the real-data test runs on generated images');
      dataName = 'generated data';
    }
    await writeNormalizeOutputs(dir, real.train, real.test, real.classes, 5);
    data = { kind: 'normalize', dir };
  });

  test('2 epochs, interrupted after the first: resumes, loss falls, accuracy clearly beats chance, the model reloads', async () => {
    if (!canTrain)
      throw new Error('wasm cannot run a conv net backward pass: the training kernels of lib/tf/kernels (Conv2DBackpropFilter...) are not in effect');
    // Interrupt when epoch 1 is checkpointed, rerun with the same resume dir: it trains epoch 2 only.
    const resumeDir = await mkdtemp(join(tmpdir(), 'train-cifar-resume-'));
    toy.removeLater(resumeDir);
    const controller = new AbortController();
    const seen: EpochEndEvent[] = [];
    const off = onEpochEnd((e) => {
      seen.push(e);
      if (e.logs.epoch === 1) controller.abort();
    });
    try {
      await expect(runStage(trainStage, params, { normalize: data }, { resumeDir, signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
      const run = await runStage(trainStage, params, { normalize: data }, { resumeDir });
      toy.removeLater(run.outDir);
      expect(seen.map((e) => e.logs.epoch)).toEqual([1, 2]);
      const info = await readJson<{ resumed_after_epoch: number; backend: string }>(join(run.outDir, 'train.json'));
      expect(info).toMatchObject({ resumed_after_epoch: 1, backend: 'wasm' });
      const history = await readJson<History>(join(run.outDir, 'history.json'));
      console.log(`${dataName}, 2 epochs on wasm (interrupted after 1, resumed): ${JSON.stringify(history)}`);
      expect(history.epoch).toEqual([1, 2]);
      expect(history.loss[0]).toBe(seen[0]!.logs.loss);
      // 32 steps from scratch is a chaotic regime: RMSprop at lr 1e-3 spikes now and then, and
      // float rounding alone (e.g. a kernel change) moves epoch 2's val_acc anywhere in 0.2-0.34
      // and can lift val_loss for an epoch. So "loss falls" is checked on the epoch means of the
      // training loss and accuracy, and "beats chance" at 0.15: chance is 0.1 and σ of chance on
      // 500 images ≈ 0.013, so 0.15 is ~4σ above it.
      expect(history.loss[1]!).toBeLessThan(history.loss[0]!);
      expect(history.acc[1]!).toBeGreaterThan(history.acc[0]!);
      expect(history.val_loss[1]!).toBeLessThan(Math.log(10)); // below the loss of a uniform guess
      expect(history.val_acc[1]!).toBeGreaterThan(0.15);

      const evaluated = await runStage(evaluateStage, { backend: 'wasm' }, { train: { kind: 'train', dir: run.outDir }, normalize: data });
      toy.removeLater(evaluated.outDir, evaluated.resumeDir);
      const metrics = await readJson<{ test_accuracy: number; test_loss: number }>(join(evaluated.outDir, 'metrics.json'));
      console.log(`${dataName} test: loss ${metrics.test_loss}, accuracy ${metrics.test_accuracy}`);
      expect(metrics.test_accuracy).toBeGreaterThan(0.15);

      // The saved model predicts the validation set exactly as the trained one did.
      const model = await loadModel(join(run.outDir, 'model'));
      const { x: vx, y: vy } = await normalizedArrays(data.dir, 'val');
      const probs = await predictRows(model, floatRows(vx, vy, 'val'), 128);
      model.dispose();
      const reloaded = lossAndAccuracy(probs, vy.data as Float32Array, 10);
      expect(reloaded.accuracy).toBe(history.val_acc[1]);
      expect(reloaded.loss).toBeCloseTo(history.val_loss[1]!, 6);
    } finally {
      off();
    }
  });
});
