// How the training loop (fit.ts) performs one optimizer step: on the main thread with
// model.trainOnBatch, or data-parallel across worker threads (parallel-step.ts). The loop owns
// batching, the learning-rate schedule, the RNG and checkpoints; a step strategy only trains.
import * as tf from '@tensorflow/tfjs';
import { reseedDropout } from './build.js';
import { skipInputGradient } from './input-gradient.js';
import type { Rows } from './data.js';
import type { KerasOptimizer } from './optimizers.js';

export interface StepResult {
  loss: number;
  acc: number;
}

export interface TrainStep {
  /**
   * One optimizer step on rows `batch` of `rows` at learning rate `lr`. `nextSeed` is the loop's
   * seeded stream: a step draws one seed per Dropout layer from it, every step, whatever the strategy.
   */
  run(rows: Rows, batch: Int32Array, lr: number, nextSeed: () => number): Promise<StepResult>;
  /**
   * Class probabilities [N·K] of every row with the trained weights, where the strategy can do
   * it faster than the main-thread model (e.g. on its worker threads); absent: the loop predicts
   * with the main-thread model after sync().
   */
  predict?(rows: Rows, batchSize: number, signal: AbortSignal): Promise<Float32Array>;
  /** Makes the main-thread model and optimizer hold the trained state (before validation and checkpoints). */
  sync(): Promise<void>;
  /** Releases threads or other resources (idempotent). */
  dispose(): Promise<void>;
}

/** Single-thread steps: the model trains in place with its compiled optimizer. */
export function localStep(model: tf.LayersModel, optimizer: KerasOptimizer): TrainStep {
  skipInputGradient(model);
  return {
    async run(rows, batch, lr, nextSeed) {
      optimizer.learningRate = lr;
      reseedDropout(model, nextSeed);
      const { x, y } = rows.batch(batch);
      let result: number | number[];
      try {
        result = await model.trainOnBatch(x, y);
      } finally {
        tf.dispose([x, y]);
      }
      const [loss, acc] = Array.isArray(result) ? result : [result, NaN];
      return { loss: loss!, acc: acc! };
    },
    sync: async () => {},
    dispose: async () => {},
  };
}
