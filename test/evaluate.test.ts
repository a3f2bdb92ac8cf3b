// The evaluate kind: metrics.json checked against independent tfjs computations (predict,
// tf.metrics, tf.math.confusionMatrix) for a model trained by the train kind on toy data (cpu).
import { describe, expect, test, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { runStage, type FakeUpstream } from './helpers/stage-context.js';
import { normalizedArrays, toyImages, writeNormalizeOutputs } from './helpers/fake-normalize.js';
import { trainStage } from '../stages/train/train.js';
import { evaluateStage } from '../stages/evaluate/evaluate.js';
import { EvaluateParams } from '../stages/evaluate/params.js';
import { buildModel } from '../lib/model/build.js';
import { loadModel, saveModel } from '../lib/model/io.js';
import { ModelSpec } from '../lib/model/spec.js';
import { readNpy } from '../lib/npy.js';
import { initBackend } from '../lib/tf/backend.js';

interface Metrics {
  model_stage: string;
  backend: string;
  count: number;
  test_loss: number;
  test_accuracy: number;
  classes: string[];
  per_class: { class: string; precision: number; recall: number; f1: number; support: number }[];
  macro_avg: { precision: number; recall: number; f1: number };
  confusion_matrix: number[][];
  most_confident_mistakes: { index: number; true: number; predicted: number; confidence: number; true_class: string; predicted_class: string }[];
}

const SPEC = [{ type: 'flatten' }, { type: 'dense', units: 16, activation: 'relu' }, { type: 'dense', units: 4, activation: 'softmax' }];
const CLASSES = ['w', 'x', 'y', 'z'];

let work: string;
let normalize: FakeUpstream;
let trained: FakeUpstream;
let untrained: FakeUpstream;
const cleanup: string[] = [];

async function evaluate(params: Record<string, unknown>, inputs: Record<string, FakeUpstream>) {
  const run = await runStage(evaluateStage, { backend: 'cpu', ...params }, inputs);
  cleanup.push(run.outDir, run.resumeDir);
  return JSON.parse(await readFile(join(run.outDir, 'metrics.json'), 'utf8')) as Metrics;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'evaluate-test-'));
  await writeNormalizeOutputs(join(work, 'normalize'), toyImages(160, 4, 6, 3, 3), toyImages(120, 4, 6, 3, 4), CLASSES);
  normalize = { kind: 'normalize', dir: join(work, 'normalize') };
  const run = await runStage(trainStage, { backend: 'cpu', model: SPEC, epochs: 4, batch_size: 16, seed: 3 }, { normalize });
  cleanup.push(run.outDir, run.resumeDir);
  trained = { kind: 'train', dir: run.outDir };
  await initBackend('cpu');
  const raw = buildModel(ModelSpec.parse(SPEC), [6, 6, 3], 99);
  await saveModel(raw, join(work, 'untrained', 'model'));
  raw.dispose();
  untrained = { kind: 'train', dir: join(work, 'untrained') };
});

afterAll(async () => {
  for (const dir of [work, ...cleanup]) await rm(dir, { recursive: true, force: true });
});

describe('evaluate', () => {
  test('metrics.json agrees with an independent tfjs evaluation', async () => {
    await initBackend('cpu');
    const tensorsBefore = tf.memory().numTensors;
    const metrics = await evaluate({ top_mistakes: 5 }, { train: trained, normalize });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const model = await loadModel(join(trained.dir, 'model'));
    const { x, y } = await normalizedArrays(normalize.dir, 'test');
    const xs = tf.tensor(x.data, x.shape);
    const ys = tf.tensor(y.data, y.shape);
    const probs = model.predict(xs) as tf.Tensor;
    const loss = tf.mean(tf.metrics.categoricalCrossentropy(ys, probs)).dataSync()[0]!;
    const accuracy = tf.mean(tf.metrics.categoricalAccuracy(ys, probs)).dataSync()[0]!;
    const truth = ys.argMax(1) as tf.Tensor1D;
    const predicted = probs.argMax(1) as tf.Tensor1D;
    const matrix = (await tf.math.confusionMatrix(truth, predicted, 4).array()) as number[][];
    const p = (await probs.array()) as number[][];
    const labels = (await truth.array()) as number[];
    tf.dispose([xs, ys, probs, truth, predicted]);
    model.dispose();

    expect(metrics).toMatchObject({ model_stage: 'train', backend: 'cpu', count: 120, classes: CLASSES });
    expect(metrics.test_loss).toBeCloseTo(loss, 5);
    expect(metrics.test_accuracy).toBeCloseTo(accuracy, 6);
    expect(metrics.test_accuracy).toBeGreaterThan(0.5); // trained on learnable data: well above 0.25
    expect(metrics.confusion_matrix).toEqual(matrix);
    metrics.per_class.forEach((c, k) => {
      const column = matrix.reduce((s, row) => s + row[k]!, 0);
      expect(c.class).toBe(CLASSES[k]);
      expect(c.support).toBe(30);
      expect(c.recall).toBeCloseTo(matrix[k]![k]! / 30, 10);
      expect(c.precision).toBeCloseTo(column ? matrix[k]![k]! / column : 0, 10);
    });
    const mistakes = metrics.most_confident_mistakes;
    const wrong = labels.filter((l, i) => p[i]!.indexOf(Math.max(...p[i]!)) !== l).length;
    expect(mistakes).toHaveLength(Math.min(5, wrong));
    for (const m of mistakes) {
      expect(m.predicted).not.toBe(m.true);
      expect(m.true).toBe(labels[m.index]);
      expect(m.confidence).toBeCloseTo(Math.max(...p[m.index]!), 6);
      expect(m.predicted_class).toBe(CLASSES[m.predicted]);
    }
    for (let i = 1; i < mistakes.length; i++) expect(mistakes[i]!.confidence).toBeLessThanOrEqual(mistakes[i - 1]!.confidence);
  });

  test('`model` picks one of several train inputs; without it, several are an error', async () => {
    const inputs = { train: trained, baseline: untrained, normalize };
    const picked = await evaluate({ model: 'baseline' }, inputs);
    const other = await evaluate({ model: 'train' }, inputs);
    expect(picked.model_stage).toBe('baseline');
    expect(picked.test_accuracy).toBeLessThan(other.test_accuracy);
    await expect(evaluate({}, inputs)).rejects.toThrow(/train/);
    expect(evaluateStage.stageRefs!(EvaluateParams.parse({ model: 'baseline' }))).toEqual(['baseline']);
    expect(EvaluateParams.parse({})).toEqual({ backend: 'auto', batch_size: 128, top_mistakes: 20 });
  });

  test('tta flip: the mean of the probabilities of each image and its mirror image; the plain figures are kept', async () => {
    await initBackend('cpu');
    const plain = await evaluate({}, { train: trained, normalize });
    const metrics = (await evaluate({ tta: 'flip' }, { train: trained, normalize })) as Metrics & {
      tta: string;
      without_tta: { test_loss: number; test_accuracy: number };
    };
    const model = await loadModel(join(trained.dir, 'model'));
    const { x, y } = await normalizedArrays(normalize.dir, 'test');
    const xs = tf.tensor(x.data, x.shape);
    const ys = tf.tensor(y.data, y.shape);
    const probs = tf.tidy(() => tf.div(tf.add(model.predict(xs) as tf.Tensor, model.predict(tf.reverse(xs, 2)) as tf.Tensor), 2));
    const loss = tf.mean(tf.metrics.categoricalCrossentropy(ys, probs)).dataSync()[0]!;
    const accuracy = tf.mean(tf.metrics.categoricalAccuracy(ys, probs)).dataSync()[0]!;
    tf.dispose([xs, ys, probs]);
    model.dispose();
    expect(metrics.tta).toBe('flip');
    expect(metrics.test_loss).toBeCloseTo(loss, 5);
    expect(metrics.test_accuracy).toBeCloseTo(accuracy, 6);
    expect(metrics.test_loss).not.toBeCloseTo(plain.test_loss, 5);
    expect(metrics.without_tta).toEqual({ test_loss: plain.test_loss, test_accuracy: plain.test_accuracy });
    expect(plain).not.toHaveProperty('tta');
  });

  test('a model that does not fit the data is a clear error', async () => {
    await initBackend('cpu');
    const wrong = buildModel(ModelSpec.parse([{ type: 'flatten' }, { type: 'dense', units: 7 }]), [6, 6, 3], 1);
    await saveModel(wrong, join(work, 'wrong', 'model'));
    wrong.dispose();
    await expect(evaluate({}, { train: { kind: 'train', dir: join(work, 'wrong') }, normalize })).rejects.toThrow(
      /outputs 7 values per image, data has 4 classes/,
    );
  });
});
