// lib/model: layer specs → model (the notebook's network, Keras defaults, seeding), the Keras-style
// summary, the file-system model handler, Keras-rule optimizers and their state, schedules,
// metrics, and the RNG. Runs on the cpu backend.
import { describe, expect, test, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildModel, reseedDropout } from '../lib/model/build.js';
import { skipInputGradient } from '../lib/model/input-gradient.js';
import { fileSystemHandler, saveModel } from '../lib/model/io.js';
import { createOptimizer } from '../lib/model/optimizers.js';
import { OptimizerSpec } from '../lib/model/optimizer-spec.js';
import { learningRate, LrScheduleSpec } from '../lib/model/schedule.js';
import { ModelSpec, NOTEBOOK_MODEL, LayerSpec } from '../lib/model/spec.js';
import { modelSummary, paramCounts } from '../lib/model/summary.js';
import { confusionMatrix, mostConfidentMistakes, perClassMetrics } from '../lib/model/metrics.js';
import { lossAndAccuracy } from '../lib/model/predict.js';
import { pixelTable } from '../lib/model/data.js';
import { Rng, deriveSeed } from '../lib/model/rng.js';

const notebook = () => ModelSpec.parse(undefined);
let dir: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'model-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the notebook network', () => {
  test('has 1,676,842 parameters and a Keras-style summary', () => {
    const model = buildModel(notebook(), [32, 32, 3], 1, 10);
    expect(paramCounts(model)).toEqual({ total: 1_676_842, trainable: 1_676_842, nonTrainable: 0 });
    const lines = modelSummary(model).split('\n');
    expect(lines.slice(0, 6)).toEqual([
      '_'.repeat(65),
      'Layer (type)                 Output Shape              Param #',
      '='.repeat(65),
      'conv2d_1 (Conv2D)            (None, 32, 32, 32)        896',
      '_'.repeat(65),
      'activation_1 (Activation)    (None, 32, 32, 32)        0',
    ]);
    const text = lines.join('\n');
    for (const row of [
      'conv2d_2 (Conv2D)            (None, 32, 32, 32)        9248',
      'max_pooling2d_1 (MaxPooling2 (None, 16, 16, 32)        0',
      'conv2d_4 (Conv2D)            (None, 14, 14, 64)        36928',
      'max_pooling2d_2 (MaxPooling2 (None, 7, 7, 64)          0',
      'flatten_1 (Flatten)          (None, 3136)              0',
      'dense_1 (Dense)              (None, 512)               1606144',
      'dropout_3 (Dropout)          (None, 512)               0',
      'dense_2 (Dense)              (None, 10)                5130',
      'activation_6 (Activation)    (None, 10)                0',
    ]) {
      expect(text).toContain(row);
    }
    expect(lines.slice(-6)).toEqual(['='.repeat(65), 'Total params: 1,676,842', 'Trainable params: 1,676,842', 'Non-trainable params: 0', '_'.repeat(65), '']);
    model.dispose();
  });

  test('Keras initialisation: glorot-uniform kernels within their limit, zero biases; seeded', () => {
    // The notebook's first two convolutions and a dense head, on 8×8 inputs (quicker to initialise).
    const spec = [...notebook().slice(0, 4), ModelSpec.parse([{ type: 'flatten' }, { type: 'dense', units: 10 }])].flat();
    const a = buildModel(spec, [8, 8, 3], 5);
    const b = buildModel(spec, [8, 8, 3], 5);
    const c = buildModel(spec, [8, 8, 3], 6);
    const [kernel, bias] = a.layers[0]!.getWeights();
    const limit = Math.sqrt(6 / (3 * 3 * 3 + 3 * 3 * 32));
    const values = kernel!.dataSync() as Float32Array;
    expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(limit);
    // Uniform on [-limit, limit]: standard deviation limit/√3.
    const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
    expect(std).toBeCloseTo(limit / Math.sqrt(3), 2);
    expect(Array.from(bias!.dataSync()).every((v) => v === 0)).toBe(true);
    const flat = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
    expect(flat(a)).toEqual(flat(b));
    expect(flat(a)[0]).not.toEqual(flat(c)[0]);
    // Each layer gets its own stream: the two 32-filter convs differ even with one seed.
    expect(flat(a)[2]!.slice(0, 10)).not.toEqual(flat(a)[0]!.slice(0, 10));
    [a, b, c].forEach((m) => m.dispose());
  });

  test('dropout masks: reproducible per seed, different per step', () => {
    const model = buildModel([LayerSpec.parse({ type: 'dropout', rate: 0.5 })], [64], 1);
    const x = tf.ones([1, 64]);
    const mask = (seed: number) => {
      reseedDropout(model, () => seed);
      return Array.from((model.apply(x, { training: true }) as tf.Tensor).dataSync());
    };
    expect(mask(11)).toEqual(mask(11));
    expect(mask(11)).not.toEqual(mask(12));
    expect(mask(11).filter((v) => v === 0).length).toBeGreaterThan(10);
    model.dispose();
  });

  test('spec validation', () => {
    expect(NOTEBOOK_MODEL).toHaveLength(18);
    expect(() => ModelSpec.parse([])).toThrow();
    expect(() => ModelSpec.parse([{ type: 'dense' }])).toThrow(/units/);
    expect(ModelSpec.parse([{ type: 'maxPooling2d' }])[0]).toEqual({ type: 'maxPooling2d', pool_size: 2, padding: 'valid' });
    // `units: auto` (the default head): one output per class, on the last dense layer only.
    expect(() =>
      ModelSpec.parse([
        { type: 'dense', units: 'auto' },
        { type: 'dense', units: 3 },
      ]),
    ).toThrow(/last dense layer only/);
    expect(ModelSpec.parse([{ type: 'flatten' }, { type: 'dense', units: 'auto' }, { type: 'activation', activation: 'softmax' }])[1]).toMatchObject({
      units: 'auto',
    });
  });

  test('follows the data: input shape from the images, one output per class', () => {
    const model = buildModel(notebook(), [16, 16, 1], 1, 2);
    expect(model.inputs[0]!.shape).toEqual([null, 16, 16, 1]);
    expect(model.outputs[0]!.shape).toEqual([null, 2]);
    model.dispose();
    expect(() => buildModel(notebook(), [16, 16, 1], 1)).toThrow(/needs the number of classes/);
  });
});

describe('file-system model handler', () => {
  test('model.json + weights.bin, loadable by tf.loadLayersModel, same predictions (with batch norm)', async () => {
    const spec = ModelSpec.parse([
      { type: 'conv2d', filters: 3, kernel_size: 3, strides: 2, padding: 'same' },
      { type: 'batchNormalization' },
      { type: 'activation', activation: 'relu' },
      { type: 'averagePooling2d' },
      { type: 'flatten' },
      { type: 'dense', units: 4, activation: 'softmax' },
    ]);
    const model = buildModel(spec, [8, 8, 2], 3);
    // Move batch-norm statistics away from their initial values so they must be saved.
    model.layers[1]!.setWeights(model.layers[1]!.getWeights().map((w, i) => tf.fill(w.shape, 0.5 + i)));
    expect(paramCounts(model).nonTrainable).toBe(6);
    expect(modelSummary(model)).toContain('Non-trainable params: 6');
    const path = join(dir, 'bn');
    await saveModel(model, path);
    const json = JSON.parse(await readFile(join(path, 'model.json'), 'utf8')) as {
      format: string;
      modelTopology: { class_name: string };
      weightsManifest: { paths: string[]; weights: { name: string }[] }[];
    };
    expect(json.format).toBe('layers-model');
    expect(json.modelTopology.class_name).toBe('Sequential');
    expect(json.weightsManifest[0]!.paths).toEqual(['weights.bin']);
    expect(json.weightsManifest[0]!.weights.map((w) => w.name)).toContain('batch_normalization_1/moving_mean');
    expect((await readFile(join(path, 'weights.bin'))).length).toBe(paramCounts(model).total * 4);

    const loaded = await tf.loadLayersModel(fileSystemHandler(path));
    const x = tf.randomUniform([5, 8, 8, 2], 0, 1, 'float32', 9);
    expect(Array.from((loaded.predict(x) as tf.Tensor).dataSync())).toEqual(Array.from((model.predict(x) as tf.Tensor).dataSync()));
    expect(modelSummary(loaded)).toBe(modelSummary(model));
    model.dispose();
    loaded.dispose();
  });

  test('loading a missing model names the file', async () => {
    await expect(tf.loadLayersModel(fileSystemHandler(join(dir, 'nope')))).rejects.toThrow(/nope\/model\.json/);
  });
});

/** Runs `steps` updates of one optimizer on w with the given gradients (loss = Σ g·w). */
function runSteps(spec: OptimizerSpec, w0: number[], grads: number[][], lr?: number[]): number[] {
  const opt = createOptimizer(spec);
  const w = tf.variable(tf.tensor1d(w0));
  grads.forEach((g, i) => {
    if (lr) opt.learningRate = lr[i]!;
    opt.minimize(() => tf.sum(tf.mul(w, tf.tensor1d(g))), false, [w]);
  });
  const out = Array.from(w.dataSync());
  w.dispose();
  opt.dispose();
  return out;
}

const closeTo = (a: number[], b: number[], digits = 6) => a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, digits));

describe('optimizers follow the Keras 2 update rules', () => {
  const w0 = [1, -2, 0.5];
  const grads = [
    [0.3, -1e-4, 2],
    [-0.1, 0.2, 1e-3],
    [0.05, 0.05, -0.5],
  ];

  test('rmsprop: a = ρa + (1−ρ)g², w −= lr·g / (√a + ε)', () => {
    const spec = OptimizerSpec.parse({ type: 'rmsprop' });
    const a = [0, 0, 0];
    const w = [...w0];
    for (const g of grads) {
      g.forEach((gi, i) => {
        a[i] = 0.9 * a[i]! + 0.1 * gi * gi;
        w[i] = w[i]! - (0.001 * gi) / (Math.sqrt(a[i]!) + 1e-7);
      });
    }
    closeTo(runSteps(spec, w0, grads), w);
    // tfjs' own rmsprop puts ε inside the root: visibly different for small gradients.
    const v = tf.variable(tf.tensor1d([0]));
    tf.train.rmsprop(0.001, 0.9, 0, 1e-7).minimize(() => tf.sum(tf.mul(v, 1e-4)), false, [v]);
    expect(Math.abs(v.dataSync()[0]! - -0.001 / Math.sqrt(0.1))).toBeGreaterThan(1e-4);
    v.dispose();
  });

  test('adam: bias-corrected step size, ε outside the root', () => {
    const spec = OptimizerSpec.parse({ type: 'adam', lr: 0.01 });
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    const w = [...w0];
    grads.forEach((g, step) => {
      const t = step + 1;
      const lrT = (0.01 * Math.sqrt(1 - 0.999 ** t)) / (1 - 0.9 ** t);
      g.forEach((gi, i) => {
        m[i] = 0.9 * m[i]! + 0.1 * gi;
        v[i] = 0.999 * v[i]! + 0.001 * gi * gi;
        w[i] = w[i]! - (lrT * m[i]!) / (Math.sqrt(v[i]!) + 1e-7);
      });
    });
    closeTo(runSteps(spec, w0, grads), w);
  });

  test('sgd with momentum and nesterov, with a changing learning rate', () => {
    const lrs = [0.1, 0.05, 0.01];
    for (const nesterov of [false, true]) {
      const spec = OptimizerSpec.parse({ type: 'sgd', lr: 0.1, momentum: 0.9, nesterov });
      const vel = [0, 0, 0];
      const w = [...w0];
      grads.forEach((g, step) => {
        g.forEach((gi, i) => {
          vel[i] = 0.9 * vel[i]! - lrs[step]! * gi;
          w[i] = w[i]! + (nesterov ? 0.9 * vel[i]! - lrs[step]! * gi : vel[i]!);
        });
      });
      closeTo(runSteps(spec, w0, grads, lrs), w);
    }
  });

  test('state survives encode/decode: a restored optimizer continues identically', async () => {
    for (const type of ['rmsprop', 'adam', 'sgd'] as const) {
      const spec = OptimizerSpec.parse(type === 'sgd' ? { type, momentum: 0.9 } : { type });
      const a = createOptimizer(spec);
      const wa = tf.variable(tf.tensor1d(w0));
      const step = (opt: typeof a, w: tf.Variable, g: number[]) => opt.minimize(() => tf.sum(tf.mul(w, tf.tensor1d(g))), false, [w]);
      step(a, wa, grads[0]!);
      step(a, wa, grads[1]!);
      const { data, specs } = await tf.io.encodeWeights(await a.getWeights());
      const map = tf.io.decodeWeights(data, specs);
      const b = createOptimizer(spec);
      await b.setWeights(specs.map((s) => ({ name: s.name, tensor: map[s.name]! })));
      expect(b.iterations).toBe(2);
      const wb = tf.variable(wa.clone());
      step(a, wa, grads[2]!);
      step(b, wb, grads[2]!);
      expect(Array.from(wb.dataSync())).toEqual(Array.from(wa.dataSync()));
      tf.dispose([wa, wb]);
      a.dispose();
      b.dispose();
    }
  });
});

describe('learning-rate schedules', () => {
  const clock = (epoch: number, step = 0) => ({ epoch, step, stepsPerEpoch: 10, epochs: 20 });
  test('constant, step, cosine with warm-up', () => {
    expect(learningRate(LrScheduleSpec.parse({ type: 'constant' }), 0.001, clock(7, 3))).toBe(0.001);
    const step = LrScheduleSpec.parse({ type: 'step', step_epochs: 5, gamma: 0.5 });
    expect([0, 4, 5, 10, 19].map((e) => learningRate(step, 1, clock(e)))).toEqual([1, 1, 0.5, 0.25, 0.125]);
    const cosine = LrScheduleSpec.parse({ type: 'cosine', alpha: 0.1 });
    expect(learningRate(cosine, 1, clock(0))).toBe(1);
    expect(learningRate(cosine, 1, clock(10))).toBeCloseTo(0.55, 10);
    expect(learningRate(cosine, 1, clock(19, 9))).toBeCloseTo(0.1, 3);
    const warm = LrScheduleSpec.parse({ type: 'cosine', warmup_epochs: 1 });
    expect(learningRate(warm, 1, clock(0, 0))).toBeCloseTo(0.1, 10);
    expect(learningRate(warm, 1, clock(0, 9))).toBeCloseTo(1, 10);
    expect(learningRate(warm, 1, clock(1, 0))).toBeCloseTo(1, 10);
  });
});

describe('metrics', () => {
  test('confusion matrix and per-class precision / recall / F1', () => {
    const labels = Int32Array.from([0, 0, 1, 1, 2, 2]);
    const predicted = Int32Array.from([0, 1, 1, 1, 0, 2]);
    const matrix = confusionMatrix(labels, predicted, 3);
    expect(matrix).toEqual([
      [1, 1, 0],
      [0, 2, 0],
      [1, 0, 1],
    ]);
    const m = perClassMetrics(matrix, ['a', 'b', 'c']);
    expect(m.map((c) => c.support)).toEqual([2, 2, 2]);
    closeTo(
      m.map((c) => c.precision),
      [0.5, 2 / 3, 1],
    );
    closeTo(
      m.map((c) => c.recall),
      [0.5, 1, 0.5],
    );
    closeTo(
      m.map((c) => c.f1),
      [0.5, 0.8, 2 / 3],
    );
    // A class never predicted and never present: zeros, not NaN.
    expect(
      perClassMetrics(
        [
          [1, 0],
          [0, 0],
        ],
        ['x', 'y'],
      )[1],
    ).toEqual({ class: 'y', precision: 0, recall: 0, f1: 0, support: 0 });
  });

  test('most confident mistakes, most confident first', () => {
    const probs = Float32Array.from([0.9, 0.1, 0.2, 0.8, 0.4, 0.6, 0.95, 0.05]);
    const labels = Int32Array.from([0, 0, 0, 1]);
    const mistakes = mostConfidentMistakes(probs, labels, 2, ['cat', 'dog'], 5);
    expect(mistakes.map((m) => m.index)).toEqual([3, 1, 2]);
    expect(mistakes[0]).toMatchObject({ true: 1, true_class: 'dog', predicted: 0, predicted_class: 'cat' });
    expect(mistakes[0]!.confidence).toBeCloseTo(0.95, 6);
    expect(mistakes[0]!.true_probability).toBeCloseTo(0.05, 6);
    expect(mostConfidentMistakes(probs, labels, 2, ['cat', 'dog'], 1)).toHaveLength(1);
  });

  test('loss and accuracy match tfjs categorical cross-entropy (incl. clipping)', () => {
    const logits = tf.randomNormal([50, 4], 0, 3, 'float32', 4);
    const probs = tf.softmax(logits);
    const labels = tf
      .oneHot(
        tf.tensor1d(
          Array.from({ length: 50 }, (_, i) => (i * 7) % 4),
          'int32',
        ),
        4,
      )
      .toFloat();
    const expected = tf.mean(tf.metrics.categoricalCrossentropy(labels, probs)).dataSync()[0]!;
    const expectedAcc = tf.mean(tf.metrics.categoricalAccuracy(labels, probs)).dataSync()[0]!;
    const { loss, accuracy } = lossAndAccuracy(probs.dataSync() as Float32Array, labels.dataSync() as Float32Array, 4);
    expect(loss).toBeCloseTo(expected, 5);
    expect(accuracy).toBeCloseTo(expectedAcc, 6);
    expect(lossAndAccuracy(Float32Array.from([0, 1]), Float32Array.from([1, 0]), 2).loss).toBeCloseTo(-Math.log(1e-7), 4);
    tf.dispose([logits, probs, labels]);
  });
});

describe('pixels and randomness', () => {
  test('pixel table: scale, and standardize per channel in the scaled domain', () => {
    const scale = pixelTable({ method: 'scale', scale: 1 / 255 }, 3);
    expect(scale[255]).toBeCloseTo(1, 6);
    expect(scale[2 * 256 + 51]).toBeCloseTo(0.2, 6);
    const std = pixelTable({ method: 'standardize', scale: 1 / 255, mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.1] }, 3);
    expect(std[0 * 256 + 255]).toBeCloseTo((1 - 0.5) / 0.25, 5);
    expect(std[2 * 256 + 0]).toBeCloseTo(-3, 5);
  });

  test('rng: seeded, resumable from its state, permutations', () => {
    const a = new Rng(3);
    const b = new Rng(3);
    expect(Array.from({ length: 5 }, () => a.nextUint32())).toEqual(Array.from({ length: 5 }, () => b.nextUint32()));
    const saved = a.state();
    const next = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => Rng.fromState(saved).next())[0]).toBe(next[0]);
    const restored = Rng.fromState(saved);
    expect(Array.from({ length: 5 }, () => restored.next())).toEqual(next);
    expect(new Rng(4).nextUint32()).not.toBe(new Rng(3).nextUint32());
    const p = new Rng(1).permutation(1000);
    expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(p.subarray(0, 10))).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(deriveSeed(1, 'a')).not.toBe(deriveSeed(1, 'b'));
    expect(deriveSeed(1, 'a')).toBe(deriveSeed(1, 'a'));
  });
});

describe('skipInputGradient', () => {
  /** Two 3x3 conv layers, then dense: random weights and non-zero biases, so the bias order shows. */
  function smallConvNet(): tf.LayersModel {
    const spec = ModelSpec.parse([
      { type: 'conv2d', filters: 8, kernel_size: [3, 3], padding: 'same' },
      { type: 'activation', activation: 'relu' },
      { type: 'conv2d', filters: 8, kernel_size: [3, 3] },
      { type: 'flatten' },
      { type: 'dense', units: 10 },
      { type: 'activation', activation: 'softmax' },
    ]);
    const model = buildModel(spec, [8, 8, 3], 3);
    const rng = new Rng(5);
    model.setWeights(
      model.getWeights().map((w) =>
        tf.tensor(
          Float32Array.from({ length: w.size }, () => (rng.next() - 0.5) * 0.2),
          w.shape,
        ),
      ),
    );
    return model;
  }

  /** Every trainable weight's gradient, and the kernels (one entry per call) computing them. */
  async function profiledGrads(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): Promise<{ grads: Float32Array[]; kernels: string[] }> {
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    let grads: Float32Array[] = [];
    const info = await tf.profile(() => {
      const g = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, vars);
      grads = vars.map((v) => (g.grads[v.name]!.dataSync() as Float32Array).slice());
      tf.dispose([g.value, ...Object.values(g.grads)]);
    });
    return { grads, kernels: info.kernels.map((k) => k.name) };
  }

  test('the first conv layer no longer computes its input gradient; weight gradients are unchanged', async () => {
    const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 7);
    const y = tf.oneHot(tf.tensor1d([0, 3, 5, 9], 'int32'), 10);
    const plain = smallConvNet();
    const patched = smallConvNet();
    skipInputGradient(patched);
    const a = await profiledGrads(plain, x, y);
    const b = await profiledGrads(patched, x, y);
    expect(a.kernels.filter((k) => k === 'Conv2DBackpropInput')).toHaveLength(2); // one per conv layer
    expect(b.kernels.filter((k) => k === 'Conv2DBackpropInput')).toHaveLength(1);
    expect(b.grads).toHaveLength(a.grads.length);
    a.grads.forEach((g, i) => {
      let diff = 0;
      let scale = 0;
      g.forEach((v, j) => {
        diff = Math.max(diff, Math.abs(v - b.grads[i]![j]!));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(diff).toBeLessThanOrEqual(1e-5 * Math.max(scale, 1));
    });
    // Predictions agree too, and the serialised model does not change.
    const pa = (plain.predict(x) as tf.Tensor).dataSync();
    const pb = (patched.predict(x) as tf.Tensor).dataSync();
    pa.forEach((v, j) => expect(Math.abs(v - pb[j]!)).toBeLessThan(1e-6));
    expect(JSON.stringify(patched.toJSON(null, false))).toEqual(JSON.stringify(plain.toJSON(null, false)));
  });
});
