// Data-parallel training across two wasm workers must follow single-thread training: same initial
// weights, same batches, same (Keras-rule) optimizer -> the same weights, up to float rounding.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { createOptimizer } from '../lib/model/optimizers.js';
import type { OptimizerSpec } from '../lib/model/optimizer-spec.js';
import { initBackend } from '../lib/tf/backend.js';
import { DataParallelTrainer, liveWorkerCount, splitRows, toKerasSpec } from '../lib/model/data-parallel.js';
import { loadRealCifar } from './helpers/real-cifar.js';

/** No dropout: its random masks would differ between one and two replicas. */
function smallConvNet(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: init(3) }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
}

let x: Float32Array;
let y: Float32Array;
let n: number;

beforeAll(async () => {
  await initBackend('wasm');
  const { train } = await loadRealCifar(4, 1);
  n = train.labels.length;
  x = Float32Array.from(train.pixels, (p) => p / 255);
  y = new Float32Array(n * 10);
  train.labels.forEach((c, i) => (y[i * 10 + c] = 1));
});

/** Batches of `size` rows (the last may be shorter), in order. */
function batches(size: number): Array<{ x: Float32Array; y: Float32Array; rows: number }> {
  const out = [];
  for (let s = 0; s < n; s += size) {
    const e = Math.min(n, s + size);
    out.push({ x: x.slice(s * 3072, e * 3072), y: y.slice(s * 10, e * 10), rows: e - s });
  }
  return out;
}

async function singleThread(spec: OptimizerSpec, size: number): Promise<{ losses: number[]; weights: Float32Array[] }> {
  const model = smallConvNet();
  model.compile({ optimizer: createOptimizer(spec), loss: 'categoricalCrossentropy' });
  const losses: number[] = [];
  for (const b of batches(size)) {
    const xs = tf.tensor4d(b.x, [b.rows, 32, 32, 3]);
    const ys = tf.tensor2d(b.y, [b.rows, 10]);
    losses.push(Number(await model.trainOnBatch(xs, ys)));
    tf.dispose([xs, ys]);
  }
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  return { losses, weights };
}

async function dataParallel(spec: OptimizerSpec, size: number): Promise<{ losses: number[]; weights: Float32Array[] }> {
  const model = smallConvNet();
  const trainer = await DataParallelTrainer.create({ model, optimizer: spec, workers: 2 });
  try {
    const losses: number[] = [];
    for (const b of batches(size)) losses.push((await trainer.trainBatch(b.x, b.y, b.rows)).loss);
    // Weights come back through the copy-into-a-model path the train stage would use.
    await trainer.copyWeightsTo(model);
    const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
    return { losses, weights };
  } finally {
    model.dispose();
    await trainer.dispose();
  }
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  a.forEach((w, i) => w.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j])))));
  return m;
}

const report: string[] = [];
afterAll(() => console.log(report.join('\n')));

describe('DataParallelTrainer', () => {
  test('splits rows as evenly as possible', () => {
    expect(splitRows(128, 2)).toEqual([64, 64]);
    expect(splitRows(15, 2)).toEqual([8, 7]);
    expect(splitRows(1, 2)).toEqual([1, 0]);
  });

  test.each([
    ['sgd with momentum', { type: 'sgd', lr: 0.05, momentum: 0.9, nesterov: false } as OptimizerSpec, 1e-5],
    ['rmsprop', { type: 'rmsprop', lr: 1e-3, rho: 0.9, epsilon: 1e-7 } as OptimizerSpec, 1e-5],
    ['adam', { type: 'adam', lr: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 } as OptimizerSpec, 1e-5],
  ])('two workers follow single-thread training (%s, odd batch sizes)', async (label, spec, tol) => {
    // 40 images in batches of 15: shards of 8 and 7, and a last batch of 10.
    const single = await singleThread(spec, 15);
    const parallel = await dataParallel(spec, 15);
    const lossDiff = Math.max(...single.losses.map((l, i) => Math.abs(l - parallel.losses[i])));
    const weightDiff = maxDiff(single.weights, parallel.weights);
    report.push(
      `${label}: losses ${single.losses.map((l) => l.toFixed(5)).join(' ')}; max loss diff ${lossDiff.toExponential(2)}, max weight diff ${weightDiff.toExponential(2)}`,
    );
    expect(parallel.losses).toHaveLength(single.losses.length);
    expect(lossDiff).toBeLessThan(1e-5);
    expect(weightDiff).toBeLessThan(tol);
    // The weights did move (far beyond the tolerance): a trainer ignoring its gradients fails here.
    const initial = smallConvNet();
    expect(
      maxDiff(
        initial.getWeights().map((w) => w.dataSync() as Float32Array),
        parallel.weights,
      ),
    ).toBeGreaterThan(1e-3);
    initial.dispose();
  });

  test('predict: the replicas give the probabilities the trained model gives, rows in order', async () => {
    const model = smallConvNet();
    const trainer = await DataParallelTrainer.create({ model, optimizer: { type: 'sgd', lr: 0.05, momentum: 0, nesterov: false }, workers: 2 });
    try {
      for (const b of batches(15)) await trainer.trainBatch(b.x, b.y, b.rows);
      const rows = 23; // shards of 12 and 11, predicted in batches of 5
      const probs = await trainer.predict(x.slice(0, rows * 3072), rows, 5);
      await trainer.copyWeightsTo(model);
      const expected = tf.tidy(() => (model.predict(tf.tensor4d(x.subarray(0, rows * 3072), [rows, 32, 32, 3])) as tf.Tensor).dataSync());
      expect(probs).toHaveLength(rows * 10);
      let diff = 0;
      probs.forEach((p, i) => (diff = Math.max(diff, Math.abs(p - expected[i]))));
      expect(diff).toBeLessThan(1e-6);
      // Trained weights, not the initial ones: an untrained replica predicts differently.
      const initial = smallConvNet();
      const untrained = tf.tidy(() => (initial.predict(tf.tensor4d(x.subarray(0, rows * 3072), [rows, 32, 32, 3])) as tf.Tensor).dataSync());
      expect(Math.max(...probs.map((p, i) => Math.abs(p - untrained[i])))).toBeGreaterThan(1e-3);
      initial.dispose();
    } finally {
      model.dispose();
      await trainer.dispose();
    }
  });

  test('rejects a batch whose arrays do not match its row count', async () => {
    const model = smallConvNet();
    const trainer = await DataParallelTrainer.create({ model, optimizer: { name: 'sgd', learningRate: 0.1 } });
    try {
      await expect(trainer.trainBatch(new Float32Array(10), new Float32Array(10), 2)).rejects.toThrow(/needs x of 6144/);
    } finally {
      model.dispose();
      await trainer.dispose();
    }
  });

  test('the older {name, learningRate} spec maps onto the Keras-rule spec', () => {
    expect(toKerasSpec({ name: 'rmsprop', learningRate: 0.01 })).toEqual({ type: 'rmsprop', lr: 0.01, rho: 0.9, epsilon: 1e-7 });
    expect(toKerasSpec({ name: 'sgd', learningRate: 0.1, momentum: 0.9 })).toEqual({ type: 'sgd', lr: 0.1, momentum: 0.9, nesterov: false });
    expect(() => toKerasSpec({ name: 'rmsprop', learningRate: 0.01, momentum: 0.5 })).toThrow(/no momentum/);
  });

  test('optimizer state leaves and enters the workers exactly (a restored trainer continues identically)', async () => {
    const spec: OptimizerSpec = { type: 'adam', lr: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 };
    const [b1, b2, b3] = batches(15);
    const model = smallConvNet();
    const a = await DataParallelTrainer.create({ model, optimizer: spec });
    let b: DataParallelTrainer | undefined;
    try {
      await a.trainBatch(b1!.x, b1!.y, b1!.rows);
      await a.trainBatch(b2!.x, b2!.y, b2!.rows);
      const state = await a.getOptimizerState();
      // Adam: the iteration count, then m and v for each of the 8 trainable tensors.
      expect(state.map((s) => s.name)).toEqual(['iter', ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `${i}/m`), ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `${i}/v`)]);
      expect(Array.from(state[0]!.values)).toEqual([2]);
      // A fresh trainer given these weights and this state must take the same third step.
      await a.copyWeightsTo(model);
      b = await DataParallelTrainer.create({ model, optimizer: spec });
      await b.setOptimizerState(state);
      await a.trainBatch(b3!.x, b3!.y, b3!.rows);
      await b.trainBatch(b3!.x, b3!.y, b3!.rows);
      expect(maxDiff(await a.getWeights(), await b.getWeights())).toBe(0);
      // Without the state (Adam restarting) the step differs: the check above can fail.
      const c = await DataParallelTrainer.create({ model, optimizer: spec });
      try {
        await c.trainBatch(b3!.x, b3!.y, b3!.rows);
        expect(maxDiff(await a.getWeights(), await c.getWeights())).toBeGreaterThan(1e-4);
      } finally {
        await c.dispose();
      }
    } finally {
      model.dispose();
      await a.dispose();
      await b?.dispose();
    }
  });

  test('aborting its signal terminates the workers mid-step; the step rejects', async () => {
    const model = smallConvNet();
    const controller = new AbortController();
    const before = liveWorkerCount();
    const trainer = await DataParallelTrainer.create({ model, optimizer: { type: 'sgd', lr: 0.1, momentum: 0, nesterov: false }, signal: controller.signal });
    model.dispose();
    expect(liveWorkerCount()).toBe(before + 2);
    const [b1] = batches(40);
    const stepping = trainer.trainBatch(b1!.x, b1!.y, b1!.rows); // posted to both workers
    controller.abort();
    await expect(stepping).rejects.toThrow(/aborted/);
    await trainer.dispose(); // resolves once both threads have exited
    expect(liveWorkerCount()).toBe(before);
    await expect(trainer.trainBatch(b1!.x, b1!.y, b1!.rows)).rejects.toThrow(/aborted/);
  });
});
