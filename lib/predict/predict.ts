// Classifying images with a model bundle: batches of files are decoded on worker threads (the next
// batch while the model runs on this one), turned into model input through the bundle's
// normalization (the same per-channel lookup table training used, applied by the data loader's wasm
// PixelMapper: the same bits as a JavaScript loop, at a fraction of its cost), and the top-k classes
// of each image are handed on in input order; an image that cannot be decoded gets an error row.
import * as tf from '@tensorflow/tfjs';
import { BundleError, InterruptedError } from '../errors.js';
import type { ModelBundle } from '../model/bundle.js';
import { pixelTable } from '../model/data.js';
import { PixelMapper } from '../dataset/pixel-map.js';
import { outputUnits } from '../model/build.js';
import { yieldToEventLoop } from '../model/predict.js';
import type { BatchDecoder } from './decode.js';
import { isFailure, type ImageInput, type InputFailure } from './inputs.js';

export interface ClassProbability {
  class: string;
  probability: number;
}

/** One output row: the image's top-k classes (most probable first), or why it was skipped. */
export type PredictionRow = { file: string; top: ClassProbability[] } | { file: string; error: string };

export interface PredictOptions {
  model: tf.LayersModel;
  bundle: ModelBundle;
  items: ReadonlyArray<ImageInput | InputFailure>;
  decoder: BatchDecoder;
  batchSize: number;
  topK: number;
  signal?: AbortSignal;
  /** Called with each row, in input order; awaited (output backpressure). */
  onRow(row: PredictionRow): void | Promise<void>;
  /** Items done so far (rows handed on), after each batch. */
  onProgress?(done: number): void;
}

export interface PredictSummary {
  predicted: number;
  skipped: number;
}

/** Checks that the model takes the bundle's input size and outputs one value per class. */
export function checkModelFitsBundle(model: tf.LayersModel, bundle: ModelBundle, where: string): void {
  const input = model.inputs[0]?.shape.slice(1) ?? [];
  if (input.join('x') !== bundle.input.size.join('x')) {
    throw new BundleError(`${where}: the model takes [${input.join(', ')}] images but bundle.json says input.size [${bundle.input.size.join(', ')}]`);
  }
  if (outputUnits(model) !== bundle.classes.length) {
    throw new BundleError(`${where}: the model outputs ${outputUnits(model)} values but bundle.json names ${bundle.classes.length} classes`);
  }
}

/** Indices of the k largest values of probs[offset, offset + n), largest first (ties: lower index first). */
export function topIndices(probs: Float32Array, offset: number, n: number, k: number): number[] {
  const order = Array.from({ length: n }, (_, j) => j);
  order.sort((a, b) => probs[offset + b]! - probs[offset + a]! || a - b);
  return order.slice(0, Math.min(k, n));
}

/** Model input for rows `rows` of `pixels` (rows of `mapper.pixels.length` bytes), in that order, through the pixel table. */
export function batchInputs(pixels: Uint8Array, rows: readonly number[], mapper: PixelMapper): Float32Array {
  const rowBytes = mapper.pixels.length;
  const x = new Float32Array(rows.length * rowBytes);
  rows.forEach((r, i) => {
    mapper.pixels.set(pixels.subarray(r * rowBytes, (r + 1) * rowBytes));
    mapper.mapInto(x, i * rowBytes);
  });
  return x;
}

export async function predictImages(options: PredictOptions): Promise<PredictSummary> {
  const { model, bundle, items, decoder, signal } = options;
  const [h, w, c] = bundle.input.size;
  const rowBytes = h * w * c;
  const k = bundle.classes.length;
  const mapper = new PixelMapper(pixelTable(bundle.normalization, c), rowBytes);
  const summary: PredictSummary = { predicted: 0, skipped: 0 };
  const batches: Array<Array<ImageInput | InputFailure>> = [];
  for (let i = 0; i < items.length; i += options.batchSize) batches.push(items.slice(i, i + options.batchSize));
  const decodeBatch = (batch: ReadonlyArray<ImageInput | InputFailure>) => {
    const images = batch.filter((it): it is ImageInput => !isFailure(it));
    return decoder.decode(
      images.map((it) => it.path),
      signal,
    );
  };

  let done = 0;
  let next = batches.length > 0 ? decodeBatch(batches[0]!) : undefined;
  for (let b = 0; b < batches.length; b++) {
    const decoded = await next!;
    // The next batch decodes on the worker threads while the model runs on this one.
    next = b + 1 < batches.length ? decodeBatch(batches[b + 1]!) : undefined;
    next?.catch(() => undefined); // awaited (and its error reported) on the next turn
    if (signal?.aborted) throw new InterruptedError('predict interrupted');

    const batch = batches[b]!;
    const good: number[] = []; // decoded rows that made it
    let row = 0;
    const rowOf = batch.map((it) => (isFailure(it) ? -1 : row++));
    rowOf.forEach((r) => {
      if (r >= 0 && !decoded.failures.has(r)) good.push(r);
    });
    let probs: Float32Array = new Float32Array(0);
    if (good.length > 0) {
      const x = batchInputs(decoded.pixels, good, mapper);
      const out = tf.tidy(() => model.predict(tf.tensor4d(x, [good.length, h, w, c])) as tf.Tensor);
      probs = await out.data<'float32'>();
      out.dispose();
    }
    const slot = new Map(good.map((r, i) => [r, i]));
    for (const [i, it] of batch.entries()) {
      const r = rowOf[i]!;
      let result: PredictionRow;
      if (isFailure(it)) result = { file: it.name, error: it.reason };
      else if (decoded.failures.has(r)) result = { file: it.name, error: decoded.failures.get(r)! };
      else {
        const offset = slot.get(r)! * k;
        result = {
          file: it.name,
          top: topIndices(probs, offset, k, options.topK).map((j) => ({ class: bundle.classes[j]!, probability: probs[offset + j]! })),
        };
      }
      if ('error' in result) summary.skipped++;
      else summary.predicted++;
      await options.onRow(result);
    }
    done += batch.length;
    options.onProgress?.(done);
    await yieldToEventLoop();
  }
  return summary;
}
