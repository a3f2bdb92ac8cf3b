// predict's batch loop (lib/predict/predict.ts) in process: model input made by the wasm pixel
// mapping has the bits of the per-pixel JavaScript loop it replaced; and predictImages gives every
// image the classes and probabilities of a one-image-at-a-time reference (the old loop, a batch of
// 1), whatever the batch size, with input failures and undecodable images at batch boundaries, in
// input order — on the reference backend (cpu) and, where the addon is built, on native.
import { afterAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { PixelMapper } from '../lib/dataset/pixel-map.js';
import { bundleNormalization, BUNDLE_FORMAT, BUNDLE_VERSION, MODEL_FILE, type ModelBundle } from '../lib/model/bundle.js';
import { buildModel } from '../lib/model/build.js';
import { pixelTable } from '../lib/model/data.js';
import { ModelSpec } from '../lib/model/spec.js';
import { Rng } from '../lib/model/rng.js';
import type { BatchDecoder } from '../lib/predict/decode.js';
import type { ImageInput, InputFailure } from '../lib/predict/inputs.js';
import { batchInputs, predictImages, topIndices, type PredictionRow } from '../lib/predict/predict.js';
import { initBackend } from '../lib/tf/backend.js';
import { loadNativeAddon } from '../lib/tf/native-addon.js';

const [H, W, C] = [6, 5, 3];
const ROW = H * W * C;
const CLASSES = ['a', 'b', 'c', 'd'];
const NORM = { method: 'standardize' as const, scale: 1 / 255, mean: [0.45, 0.5, 0.41], std: [0.22, 0.25, 0.27] };
const SPEC = [
  { type: 'conv2d', filters: 4, kernel_size: 3, padding: 'same', activation: 'relu' },
  { type: 'maxPooling2d', pool_size: 2 },
  { type: 'flatten' },
  { type: 'dense', units: 8, activation: 'relu' },
  { type: 'dense', units: CLASSES.length, activation: 'softmax' },
];

/** The loop predict ran before the wasm mapping. */
function referenceInputs(pixels: Uint8Array, rows: readonly number[], table: Float32Array): Float32Array {
  const x = new Float32Array(rows.length * ROW);
  rows.forEach((r, i) => {
    const src = pixels.subarray(r * ROW, (r + 1) * ROW);
    for (let j = 0; j < ROW; j += C) for (let ch = 0; ch < C; ch++) x[i * ROW + j + ch] = table[ch * 256 + src[j + ch]!]!;
  });
  return x;
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Every image's pixels, generated; `badRows` are images "the decoder" cannot read. */
const IMAGES = 23;
const rng = new Rng(11);
const allPixels = Uint8Array.from({ length: IMAGES * ROW }, () => rng.nextUint32() & 255);
const undecodable = new Set([0, 6, 7, 15, 22]);
/** Items: images by index, with failed inputs (archives that did not unpack) between them. */
const items: Array<ImageInput | InputFailure> = [];
for (let i = 0; i < IMAGES; i++) {
  if (i === 3 || i === 8 || i === 16) items.push({ name: `broken-${i}.zip`, reason: 'cannot unpack the archive: test' });
  items.push({ path: String(i), name: `img-${i}.png` });
}

/** A decoder serving the generated pixels, as poolDecoder does: rows in the order of the files asked for. */
function fakeDecoder(): BatchDecoder & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    decode(files) {
      calls.push(files.length);
      const pixels = new Uint8Array(files.length * ROW).fill(7);
      const failures = new Map<number, string>();
      files.forEach((f, row) => {
        const i = Number(f);
        if (undecodable.has(i)) failures.set(row, `corrupt image ${i}`);
        else pixels.set(allPixels.subarray(i * ROW, (i + 1) * ROW), row * ROW);
      });
      return Promise.resolve({ pixels, failures });
    },
    close: () => Promise.resolve(),
  };
}

const bundle: ModelBundle = {
  format: BUNDLE_FORMAT,
  version: BUNDLE_VERSION,
  model: MODEL_FILE,
  classes: CLASSES,
  input: { size: [H, W, C], layout: 'NHWC', channel_order: 'RGB', resize: 'bilinear' },
  normalization: bundleNormalization(NORM, C),
  output: 'float32 [N, classes]',
  training: { stage: 'test', data_digest: '', data: '', augmented: null, train_count: 0, val_count: 0, epochs: 0 },
  metrics: { epoch: 0, loss: null, acc: null, val_loss: null, val_acc: null },
};

/** Each image alone through the old loop: its probabilities, or undefined where it is skipped. */
function referenceProbabilities(model: tf.LayersModel): Map<number, Float32Array> {
  const table = pixelTable(bundle.normalization, C);
  const out = new Map<number, Float32Array>();
  for (let i = 0; i < IMAGES; i++) {
    if (undecodable.has(i)) continue;
    const x = referenceInputs(allPixels, [i], table);
    const y = tf.tidy(() => model.predict(tf.tensor4d(x, [1, H, W, C])) as tf.Tensor);
    out.set(i, y.dataSync() as Float32Array);
    y.dispose();
  }
  return out;
}

async function predictAll(model: tf.LayersModel, batchSize: number, topK: number) {
  const rows: PredictionRow[] = [];
  const progress: number[] = [];
  const decoder = fakeDecoder();
  const summary = await predictImages({ model, bundle, items, decoder, batchSize, topK, onRow: (r) => void rows.push(r), onProgress: (d) => progress.push(d) });
  return { rows, progress, summary, decodeCalls: decoder.calls };
}

function checkAgainstReference(rows: PredictionRow[], reference: Map<number, Float32Array>, topK: number, digits: number): void {
  expect(rows.map((r) => r.file)).toEqual(items.map((it) => it.name));
  for (const [n, row] of rows.entries()) {
    const item = items[n]!;
    if ('reason' in item) {
      expect(row).toEqual({ file: item.name, error: item.reason });
      continue;
    }
    const i = Number(item.path);
    if (undecodable.has(i)) {
      expect(row).toEqual({ file: item.name, error: `corrupt image ${i}` });
      continue;
    }
    const probs = reference.get(i)!;
    const want = topIndices(probs, 0, CLASSES.length, topK);
    expect('top' in row).toBe(true);
    const top = (row as { top: Array<{ class: string; probability: number }> }).top;
    expect(top.map((t) => t.class)).toEqual(want.map((j) => CLASSES[j]));
    top.forEach((t, j) => expect(t.probability).toBeCloseTo(probs[want[j]!]!, digits));
  }
}

afterAll(async () => {
  await initBackend('cpu');
});

describe('batchInputs (the wasm pixel mapping)', () => {
  test("the old per-pixel loop's bits, for any rows in any order", () => {
    const table = pixelTable(NORM, C);
    const mapper = new PixelMapper(table, ROW);
    for (const rows of [[], [0], [5, 2, 9], Array.from({ length: IMAGES }, (_, i) => IMAGES - 1 - i)]) {
      expect(bits(batchInputs(allPixels, rows, mapper))).toEqual(bits(referenceInputs(allPixels, rows, table)));
    }
  });
});

const backends: Array<['cpu' | 'native', number]> = [['cpu', 6]];
if (loadNativeAddon().addon !== undefined || process.env.REQUIRE_NATIVE) backends.push(['native', 5]);

describe.each(backends)('predictImages on %s', (backend, digits) => {
  test('every batch size gives each image the one-at-a-time reference figures, in input order, failures in place', async () => {
    await initBackend(backend);
    const model = buildModel(ModelSpec.parse(SPEC), [H, W, C], 5, CLASSES.length);
    try {
      const reference = referenceProbabilities(model);
      // 1: every item its own batch; 4 and 9: failures on either side of boundaries; 64: one batch.
      for (const batchSize of [1, 4, 9, 64]) {
        const { rows, progress, summary, decodeCalls } = await predictAll(model, batchSize, 3);
        checkAgainstReference(rows, reference, 3, digits);
        expect(summary).toEqual({ predicted: IMAGES - undecodable.size, skipped: undecodable.size + 3 });
        const batches = Math.ceil(items.length / batchSize);
        expect(progress).toEqual(Array.from({ length: batches }, (_, b) => Math.min(items.length, (b + 1) * batchSize)));
        expect(decodeCalls.length).toBe(batches);
      }
    } finally {
      model.dispose();
    }
  });
});
