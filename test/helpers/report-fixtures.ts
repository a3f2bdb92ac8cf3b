// Upstream outputs as the real stages write them (same file names and JSON shapes), small and
// deterministic, for running the report stage without training anything.
import { writeDataset } from './fake-normalize.js';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng } from '../../lib/augment/preview.js';
import { writeNpy } from '../../lib/npy.js';
import type { FakeUpstream } from './stage-context.js';

export const FIXTURE_CLASSES = ['cat', 'dog', 'ship'];
export const SIDE = 8;

/** Test labels: 4 images per class, class-major. */
export const TEST_LABELS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];

/** A K×K matrix (rows true) from labels and predictions. */
export function matrixOf(labels: number[], predicted: number[], k: number): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  labels.forEach((t, i) => m[t]![predicted[i]!]!++);
  return m;
}

export function metricsFor(modelStage: string, predicted: number[], confidences: number[]) {
  const k = FIXTURE_CLASSES.length;
  const matrix = matrixOf(TEST_LABELS, predicted, k);
  const perClass = FIXTURE_CLASSES.map((name, c) => {
    const tp = matrix[c]![c]!;
    const support = matrix[c]!.reduce((a, b) => a + b, 0);
    const predictedAs = matrix.reduce((a, row) => a + row[c]!, 0);
    const precision = predictedAs ? tp / predictedAs : 0;
    const recall = support ? tp / support : 0;
    return { class: name, precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0, support };
  });
  const correct = predicted.filter((p, i) => p === TEST_LABELS[i]).length;
  const mistakes = predicted
    .map((p, i) => ({ p, i }))
    .filter(({ p, i }) => p !== TEST_LABELS[i])
    .map(({ p, i }) => ({
      index: i,
      true: TEST_LABELS[i]!,
      true_class: FIXTURE_CLASSES[TEST_LABELS[i]!]!,
      predicted: p,
      predicted_class: FIXTURE_CLASSES[p]!,
      confidence: confidences[i]!,
      true_probability: (1 - confidences[i]!) / 2,
    }))
    .sort((a, b) => b.confidence - a.confidence || a.index - b.index);
  return {
    model_stage: modelStage,
    backend: 'cpu',
    count: TEST_LABELS.length,
    test_loss: 1 - correct / TEST_LABELS.length + 0.25,
    test_accuracy: correct / TEST_LABELS.length,
    classes: FIXTURE_CLASSES,
    per_class: perClass,
    macro_avg: {
      precision: perClass.reduce((a, m) => a + m.precision, 0) / 3,
      recall: perClass.reduce((a, m) => a + m.recall, 0) / 3,
      f1: perClass.reduce((a, m) => a + m.f1, 0) / 3,
    },
    confusion_matrix: matrix,
    most_confident_mistakes: mistakes,
  };
}

/**
 * Phase 1 gets 9/12 right (F1 cat 0.667, dog 0.75, ship 0.857); phase 2 gets 10/12 but is worse
 * on dog (0.667) and ship (0.8), better on cat (1.0) — like the real phase 2, a mixed change.
 */
export const PHASE1_PREDICTIONS = [0, 0, 0, 1, 1, 1, 1, 0, 2, 2, 0, 2];
export const PHASE2_PREDICTIONS = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2];
const CONFIDENCE = [0.9, 0.8, 0.7, 0.95, 0.6, 0.65, 0.7, 0.85, 0.9, 0.75, 0.55, 0.8];

/** Pixel value of test image i at (y, x, c): distinct per image so tests can find them. */
export function pixel(i: number, y: number, x: number, c: number): number {
  return (i * 20 + y * 3 + x * 2 + c * 50) % 256;
}

function summaryText(): string {
  return [
    '_________________________________________________________________',
    'Layer (type)                 Output Shape              Param #',
    '=================================================================',
    'conv2d_1 (Conv2D)            (None, 8, 8, 4)           112',
    '_________________________________________________________________',
    'flatten_1 (Flatten)          (None, 256)               0',
    '_________________________________________________________________',
    'dense_1 (Dense)              (None, 3)                 771',
    '=================================================================',
    'Total params: 883',
    'Trainable params: 883',
    'Non-trainable params: 0',
    '_________________________________________________________________',
    '',
  ].join('\n');
}

function historyOf(epochs: number, start: number) {
  const e = Array.from({ length: epochs }, (_, i) => i + 1);
  return {
    epoch: e,
    loss: e.map((i) => start / i),
    acc: e.map((i) => 0.3 + 0.05 * i),
    val_loss: e.map((i) => start / i + 0.1),
    val_acc: e.map((i) => 0.28 + 0.05 * i),
    lr: e.map(() => 0.001),
    seconds: e.map(() => 1.5),
  };
}

/** A train stage's params as the engine resolves them (defaults filled in). */
function trainParams(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    backend: 'auto',
    workers: 'auto',
    optimizer: { type: 'rmsprop', lr: 0.001, rho: 0.9, epsilon: 1e-7 },
    lr_schedule: { type: 'constant' },
    batch_size: 4,
    seed: 42,
    label_smoothing: 0,
    monitor: 'val_loss',
    mode: 'auto',
    min_delta: 0,
    restore_best: false,
    prefetch: 3,
    ...overrides,
  };
}

export interface ReportFixture {
  root: string;
  inputs: Record<string, FakeUpstream>;
}

/**
 * Upstream outputs of the default pipeline's shape. `variant`: `full` (fetch, decode, normalize,
 * augment, train, evaluate, train_aug, evaluate_aug) or `single` (normalize, train, evaluate only).
 */
export async function reportFixture(variant: 'full' | 'single' = 'full'): Promise<ReportFixture> {
  const root = await mkdtemp(join(tmpdir(), 'report-fixture-'));
  const dir = async (name: string) => {
    const d = join(root, name);
    await mkdir(d, { recursive: true });
    return d;
  };
  const json = (d: string, name: string, v: unknown) => writeFile(join(d, name), JSON.stringify(v, null, 2));
  const n = TEST_LABELS.length;
  const images = new Uint8Array(n * SIDE * SIDE * 3);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) for (let c = 0; c < 3; c++) images[((i * SIDE + y) * SIDE + x) * 3 + c] = pixel(i, y, x, c);
  const inputs: Record<string, FakeUpstream> = {};

  if (variant === 'full') {
    const fetch = await dir('fetch');
    await json(fetch, 'fetch.json', {
      source: 'http://127.0.0.1/cifar.tar.gz',
      type: 'http',
      bytes: 1234,
      md5: 'abc',
      sha256: 'f'.repeat(64),
      archive: 'tar.gz',
      files: 24,
    });
    inputs.fetch = { kind: 'fetch', dir: fetch, params: { url: 'http://127.0.0.1/cifar.tar.gz' } };

    const decode = await dir('decode');
    await json(decode, 'decode.json', {
      format: 'image-folder',
      shape: [SIDE, SIDE, 3],
      classes: FIXTURE_CLASSES,
      counts: { train: { total: 30, per_class: { cat: 10, dog: 10, ship: 10 } }, test: { total: n, per_class: { cat: 4, dog: 4, ship: 4 } } },
      skipped_corrupt: 1,
      skipped_files: [{ file: 'train/cat/0007.jpg', reason: 'corrupt JPEG data' }],
      ignored_files: 0,
      changes: { since: 'a'.repeat(64), added: 70, changed: 2, removed: 1, decoded: 72, reused: 6998 },
    });
    const shape: [number, number, number] = [SIDE, SIDE, 3];
    const labels = Int32Array.from({ length: n }, (_, i) => i % FIXTURE_CLASSES.length);
    await writeDataset(
      join(decode, 'dataset'),
      { pixels: new Uint8Array(0), labels: new Int32Array(0), shape },
      { pixels: images, labels, shape },
      FIXTURE_CLASSES,
    );
    inputs.decode = { kind: 'decode', dir: decode };
  }

  const norm = await dir('normalize');
  await json(norm, 'classes.json', FIXTURE_CLASSES);
  await json(norm, 'normalization.json', {
    method: 'standardize',
    scale: 1 / 255,
    mean: [0.5, 0.4, 0.3],
    std: [0.2, 0.25, 0.3],
    formula: 'input = (pixel * scale - mean[c]) / std[c]',
    split: { validation_split: 0.2, seed: 42, stratified: true, train: 24, validation: 6, test: n },
  });
  // Standardized floats: the report must invert this to show the same pixels as decode's.
  const x = new Float32Array(images.length);
  const mean = [0.5, 0.4, 0.3];
  const std = [0.2, 0.25, 0.3];
  for (let i = 0; i < images.length; i++) x[i] = (images[i]! / 255 - mean[i % 3]!) / std[i % 3]!;
  await writeNpy(join(norm, 'test_x.npy'), { dtype: 'float32', shape: [n, SIDE, SIDE, 3], data: x });
  inputs.normalize = { kind: 'normalize', dir: norm, params: { method: 'standardize', validation_split: 0.2, seed: 42 } };

  // `single`: a train stage of one epoch (a phase that is one point on the curves).
  const epochs = variant === 'full' ? 3 : 1;
  const train = await dir('train');
  const trainHistory = historyOf(epochs, 2.0);
  await json(train, 'history.json', trainHistory);
  await json(train, 'train.json', {
    backend: 'wasm',
    workers: 2,
    versions: { '@tensorflow/tfjs-core': '4.22.0' },
    params: { total: 883, trainable: 883, non_trainable: 0 },
    train_count: 24,
    val_count: 6,
    epochs,
    batch_size: 4,
    steps_per_epoch: 6,
    weight_decay: 0,
    label_smoothing: 0,
    batch_augment: null,
    init_from: null,
    mean_epoch_seconds: 1.5,
    images_per_second: 16,
    epochs_trained: epochs,
    best: { monitor: 'val_loss', mode: 'min', min_delta: 0, epoch: epochs, value: trainHistory.val_loss[epochs - 1] },
    early_stopping: null,
    restore_best: false,
    kept_weights: 'last',
    kept_epoch: epochs,
  });
  await writeFile(join(train, 'summary.txt'), summaryText());
  inputs.train = { kind: 'train', dir: train, params: trainParams({ epochs }) };

  const evaluate = await dir('evaluate');
  await json(evaluate, 'metrics.json', metricsFor('train', PHASE1_PREDICTIONS, CONFIDENCE));
  inputs.evaluate = { kind: 'evaluate', dir: evaluate, params: {} };

  if (variant === 'full') {
    const augment = await dir('augment');
    const tile = { height: SIDE, width: SIDE, channels: 3, data: images.subarray(0, SIDE * SIDE * 3) };
    await writeFile(
      join(augment, 'contact_sheet.png'),
      await encodePng({ height: SIDE, width: SIDE * 2, channels: 3, data: new Uint8Array(SIDE * SIDE * 6).fill(128) }),
    );
    await mkdir(join(augment, 'preview'));
    // 3 preview variants of 2 copies: variants 0 and 1 are the copies' images, variant 2 is preview only.
    const previews = [
      'preview/image_000_original.png',
      'preview/image_000_variant_00.png',
      'preview/image_000_variant_01.png',
      'preview/image_000_variant_02.png',
    ];
    for (const f of previews) await writeFile(join(augment, f), await encodePng(tile));
    await json(augment, 'augment.json', {
      rows: 24,
      copies: 2,
      seed: 42,
      params: { rotation_range: 40, horizontal_flip: true },
      preview: { images: 1, variants: 3, files: previews },
    });
    inputs.augment = { kind: 'augment', dir: augment, params: { copies: 2 } };

    // Phase 2 set to 5 epochs stopped after 3 (patience 2): its validation loss only rose after
    // epoch 1, whose weights it kept (restore_best).
    const trainAug = await dir('train_aug');
    await json(trainAug, 'history.json', { ...historyOf(3, 1.2), val_loss: [0.9, 1.0, 1.1], lr: [0.001, 0.0005, 0.00025] });
    await json(trainAug, 'train.json', {
      backend: 'wasm',
      workers: 2,
      params: { total: 883, trainable: 883, non_trainable: 0 },
      train_count: 24,
      val_count: 6,
      epochs: 5,
      batch_size: 4,
      steps_per_epoch: 6,
      trained_on: 'augment (2 copies)',
      init_from: 'train',
      mean_epoch_seconds: 1.5,
      epochs_trained: 3,
      best: { monitor: 'val_loss', mode: 'min', min_delta: 0, epoch: 1, value: 0.9 },
      early_stopping: { patience: 2, stopped_after_epoch: 3 },
      restore_best: true,
      kept_weights: 'best',
      kept_epoch: 1,
    });
    await writeFile(join(trainAug, 'summary.txt'), summaryText());
    inputs.train_aug = {
      kind: 'train',
      dir: trainAug,
      params: trainParams({
        epochs: 5,
        init_from: 'train',
        augmented: 'augment',
        lr_schedule: { type: 'step', step_epochs: 1, gamma: 0.5 },
        patience: 2,
        restore_best: true,
      }),
    };

    const evaluateAug = await dir('evaluate_aug');
    await json(evaluateAug, 'metrics.json', metricsFor('train_aug', PHASE2_PREDICTIONS, CONFIDENCE));
    inputs.evaluate_aug = { kind: 'evaluate', dir: evaluateAug, params: {} };
  }
  return { root, inputs };
}
