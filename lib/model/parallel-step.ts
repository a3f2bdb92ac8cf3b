// Data-parallel steps (data-parallel.ts): worker threads with their own wasm instance
// train replicas of the model; the main-thread model and optimizer are mirrors, refreshed by
// sync() for validation and checkpoints, and the source of the replicas' starting state
// (initial / init_from / checkpoint weights and optimizer state).
import * as tf from '@tensorflow/tfjs';
import { DataParallelTrainer, fromTensorData, toTensorData } from './data-parallel.js';
import { InterruptedError } from '../errors.js';
import { reseedDropout } from './build.js';
import { sequentialBatches } from './data.js';
import type { OptimizerSpec } from './optimizer-spec.js';
import type { KerasOptimizer } from './optimizers.js';
import type { TrainStep } from './train-step.js';

export interface ParallelStepOptions {
  model: tf.LayersModel;
  /** Holds the optimizer state to start from (e.g. restored from a checkpoint); mirrored by sync(). */
  optimizer: KerasOptimizer;
  spec: OptimizerSpec;
  workers: number;
  /** Aborting terminates the workers at once. */
  signal: AbortSignal;
}

/**
 * What a validation chunk's inputs may take: two chunks are alive at a time (one gathered while
 * the other is predicted), each also copied to the workers. 308 MB a chunk at 224×224 before.
 */
const PREDICT_CHUNK_BYTES = 64 * 2 ** 20;

/** Rows per prediction chunk: 1–4 batches per worker, up to 4 while within PREDICT_CHUNK_BYTES. */
export function predictChunkRows(sampleShape: number[], batchSize: number, workers: number): number {
  const perBatches = batchSize * workers * sampleShape.reduce((a, b) => a * b, 1) * 4;
  return batchSize * workers * Math.max(1, Math.min(4, Math.floor(PREDICT_CHUNK_BYTES / perBatches)));
}

export async function parallelStep(o: ParallelStepOptions): Promise<TrainStep> {
  const trainer = await DataParallelTrainer.create({ model: o.model, optimizer: o.spec, workers: o.workers, signal: o.signal });
  try {
    const named = await o.optimizer.getWeights();
    const state = await toTensorData(named);
    named[0]?.tensor.dispose(); // the iteration count is a fresh scalar; the rest are live slots
    await trainer.setOptimizerState(state);
  } catch (err) {
    await trainer.dispose();
    throw err;
  }
  return {
    async run(rows, batch, lr, nextSeed) {
      // Draw the step's dropout seeds exactly as a single-thread step would (same stream use).
      const dropoutSeeds: number[] = [];
      reseedDropout(o.model, () => {
        const seed = nextSeed();
        dropoutSeeds.push(seed);
        return seed;
      });
      // The batch's arrays go to the workers as they are: as tensors on this thread they took a
      // batch's room on this thread's wasm heap and a second copy to read them back.
      const { x, y } = rows.batchArrays(batch);
      const { loss, accuracy } = await trainer.trainBatch(x, y, batch.length, { learningRate: lr, dropoutSeeds });
      return { loss, acc: accuracy };
    },
    async predict(rows, batchSize, signal) {
      // Chunks of up to 4 batches per worker, within PREDICT_CHUNK_BYTES (at 224×224 one batch
      // per worker); the next chunk's inputs are gathered while the workers predict the current one.
      const gather = async (chunk: Int32Array): Promise<Float32Array> => rows.gather(chunk).x;
      const probs = new Float32Array(rows.count * rows.classes);
      const chunks = [...sequentialBatches(rows.count, predictChunkRows(rows.sampleShape, batchSize, o.workers))];
      let next = chunks.length > 0 ? gather(chunks[0]) : undefined;
      for (let i = 0; i < chunks.length; i++) {
        if (signal.aborted) throw new InterruptedError('prediction interrupted');
        const predicted = trainer.predict(await next!, chunks[i].length, batchSize);
        next = i + 1 < chunks.length ? gather(chunks[i + 1]) : undefined;
        probs.set(await predicted, chunks[i][0] * rows.classes);
      }
      return probs;
    },
    async sync() {
      await trainer.copyWeightsTo(o.model);
      const named = fromTensorData(await trainer.getOptimizerState());
      await o.optimizer.setWeights(named);
      tf.dispose(named.map((n) => n.tensor));
    },
    dispose: () => trainer.dispose(),
  };
}
