// Data-parallel training across two wasm workers must follow single-thread training: same initial
// weights, same batches, same optimizer -> the same weights, up to float rounding.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/tf/backend.js';
import { createOptimizer, DataParallelTrainer, splitRows, type OptimizerSpec } from '../lib/tf/data-parallel.js';
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
    ['sgd with momentum', { name: 'sgd', learningRate: 0.05, momentum: 0.9 } as OptimizerSpec, 1e-5],
    ['rmsprop', { name: 'rmsprop', learningRate: 1e-3, rho: 0.9, epsilon: 1e-7 } as OptimizerSpec, 1e-5],
  ])('two workers follow single-thread training (%s, odd batch sizes)', async (label, spec, tol) => {
    // 40 images in batches of 15: shards of 8 and 7, and a last batch of 10.
    const single = await singleThread(spec, 15);
    const parallel = await dataParallel(spec, 15);
    const lossDiff = Math.max(...single.losses.map((l, i) => Math.abs(l - parallel.losses[i])));
    const weightDiff = maxDiff(single.weights, parallel.weights);
    report.push(`${label}: losses ${single.losses.map((l) => l.toFixed(5)).join(' ')}; max loss diff ${lossDiff.toExponential(2)}, max weight diff ${weightDiff.toExponential(2)}`);
    expect(parallel.losses).toHaveLength(single.losses.length);
    expect(lossDiff).toBeLessThan(1e-5);
    expect(weightDiff).toBeLessThan(tol);
    // The weights did move (far beyond the tolerance): a trainer ignoring its gradients fails here.
    const initial = smallConvNet();
    expect(maxDiff(initial.getWeights().map((w) => w.dataSync() as Float32Array), parallel.weights)).toBeGreaterThan(1e-3);
    initial.dispose();
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
});
