// Batched prediction and Keras' loss/accuracy computed from the predicted probabilities.
import * as tf from '@tensorflow/tfjs';
import { InterruptedError } from '../errors.js';
import { sequentialBatches, type Rows } from './data.js';

/** Lets timers and signal handlers (Ctrl-C) run between batches of otherwise back-to-back awaits. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Class probabilities [N·K] for every row, `batchSize` rows at a time. */
export async function predictRows(
  model: tf.LayersModel,
  rows: Rows,
  batchSize: number,
  options: { signal?: AbortSignal; onBatch?: (done: number) => void } = {},
): Promise<Float32Array> {
  const probs = new Float32Array(rows.count * rows.classes);
  let done = 0;
  for (const batch of sequentialBatches(rows.count, batchSize)) {
    if (options.signal?.aborted) throw new InterruptedError('prediction interrupted');
    const out = tf.tidy(() => model.predict(rows.inputs(batch), { batchSize }) as tf.Tensor);
    const values = await out.data<'float32'>();
    out.dispose();
    if (values.length !== batch.length * rows.classes) {
      throw new Error(`model outputs ${values.length / batch.length} values per image, data has ${rows.classes} classes`);
    }
    probs.set(values, done * rows.classes);
    done += batch.length;
    options.onBatch?.(done);
    await yieldToEventLoop();
  }
  return probs;
}

export function argmax(values: ArrayLike<number>, offset: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (values[offset + j]! > values[offset + best]!) best = j;
  return best;
}

/** Integer labels from one-hot rows [N·K]. */
export function labelsOf(oneHot: Float32Array, k: number): Int32Array {
  const n = oneHot.length / k;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = argmax(oneHot, i * k, k);
  return labels;
}

export interface LossAccuracy {
  loss: number;
  accuracy: number;
}

/**
 * Keras' categorical cross-entropy (probabilities renormalised, clipped to [1e-7, 1 − 1e-7]) and
 * categorical accuracy (argmax match), averaged over all rows.
 */
export function lossAndAccuracy(probs: Float32Array, targets: Float32Array, k: number): LossAccuracy {
  const eps = 1e-7;
  const n = targets.length / k;
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const o = i * k;
    let sum = 0;
    for (let j = 0; j < k; j++) sum += probs[o + j]!;
    for (let j = 0; j < k; j++) {
      const t = targets[o + j]!;
      if (t !== 0) loss -= t * Math.log(Math.min(1 - eps, Math.max(eps, probs[o + j]! / sum)));
    }
    if (argmax(probs, o, k) === argmax(targets, o, k)) correct++;
  }
  return { loss: n ? loss / n : NaN, accuracy: n ? correct / n : NaN };
}
