// Data-parallel training on wasm: N worker threads, each with its own wasm instance and a full
// replica of the model and optimizer. Every step each worker computes the gradient of its shard
// of the batch, the gradients meet in shared memory and are averaged (weighted by shard size, so
// the result is the full batch's mean-loss gradient), and every replica applies the same update,
// so the replicas stay identical without ever shipping weights. The main thread only hands out
// shards. (wasm's own threaded build cannot run in Node: it starts its workers from blob: URLs.)
//
// Limits: the loss is categorical cross-entropy (no regularizer losses); non-trainable weights
// (batch-norm moving statistics) are averaged across replicas after every step, and batch
// norm sees per-shard batch statistics, like unsynchronised batch norm elsewhere.
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';

export type OptimizerSpec =
  | { name: 'rmsprop'; learningRate: number; rho?: number; epsilon?: number; momentum?: number }
  | { name: 'adam'; learningRate: number; beta1?: number; beta2?: number; epsilon?: number }
  | { name: 'sgd'; learningRate: number; momentum?: number; nesterov?: boolean };

export interface DataParallelOptions {
  /** Topology and current weights are copied into every worker (the model itself is not used after). */
  model: tf.LayersModel;
  optimizer: OptimizerSpec;
  /** Worker threads (default 2: one per core here). */
  workers?: number;
}

export interface BatchResult {
  /** Mean categorical cross-entropy over the batch (before the update). */
  loss: number;
  /** Mean categorical accuracy over the batch (before the update). */
  accuracy: number;
}

/** Keras-like optimizer from a spec (tfjs' defaults where the spec leaves a field out). */
export function createOptimizer(spec: OptimizerSpec): tf.Optimizer {
  switch (spec.name) {
    case 'rmsprop':
      return tf.train.rmsprop(spec.learningRate, spec.rho ?? 0.9, spec.momentum ?? 0, spec.epsilon ?? 1e-7);
    case 'adam':
      return tf.train.adam(spec.learningRate, spec.beta1 ?? 0.9, spec.beta2 ?? 0.999, spec.epsilon ?? 1e-7);
    case 'sgd':
      return spec.momentum ? tf.train.momentum(spec.learningRate, spec.momentum, spec.nesterov ?? false) : tf.train.sgd(spec.learningRate);
  }
}

// ---- messages between the trainer and its workers (shared with data-parallel-worker.ts) ----

export interface InitMessage {
  type: 'init';
  index: number;
  workers: number;
  topology: string;
  weights: Float32Array[];
  optimizer: OptimizerSpec;
  /** Per worker: trainable-gradient + non-trainable-weight slot, float32. */
  exchange: SharedArrayBuffer;
  /** [arrived, generation] for the step barrier. */
  barrier: SharedArrayBuffer;
}

export type Request =
  | InitMessage
  | { type: 'step'; x: Float32Array; y: Float32Array; rows: number; shardRows: number[]; learningRate?: number }
  | { type: 'getWeights' }
  | { type: 'setWeights'; weights: Float32Array[] };

export type Reply =
  | { type: 'ready'; exchangeFloats: number }
  | { type: 'stepped'; loss: number; accuracy: number }
  | { type: 'weights'; weights: Float32Array[] }
  | { type: 'ok' }
  | { type: 'error'; message: string };

/** Floats one worker's exchange slot holds: every trainable gradient plus every non-trainable weight. */
export function exchangeFloats(model: tf.LayersModel): number {
  return model.weights.reduce((n, w) => n + tf.util.sizeFromShape(w.shape as number[]), 0);
}

class WorkerLink {
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on('message', (reply: Reply) => {
      const p = this.pending;
      this.pending = undefined;
      if (p === undefined) return;
      if (reply.type === 'error') p.reject(new Error(`data-parallel worker: ${reply.message}`));
      else p.resolve(reply);
    });
    const fail = (err: Error): void => {
      this.failure = err;
      this.pending?.reject(err);
      this.pending = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`data-parallel worker exited (code ${code})`)));
  }

  request(message: Request, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending !== undefined) return Promise.reject(new Error('data-parallel worker is busy'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(message, transfer);
    });
  }
}

export class DataParallelTrainer {
  private constructor(
    private readonly links: WorkerLink[],
    private readonly inputShape: number[],
    private readonly classes: number,
  ) {}

  static async create(options: DataParallelOptions): Promise<DataParallelTrainer> {
    const { model } = options;
    const count = options.workers ?? 2;
    if (!Number.isInteger(count) || count < 1) throw new Error(`data-parallel: workers must be a positive integer, got ${count}`);
    const topology = JSON.stringify(model.toJSON(null, false));
    const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
    const exchange = new SharedArrayBuffer(count * exchangeFloats(model) * 4);
    const barrier = new SharedArrayBuffer(8);
    const url = new URL('./data-parallel-worker.js', import.meta.url);
    const links = Array.from({ length: count }, () => new WorkerLink(new Worker(url)));
    try {
      await Promise.all(
        links.map((link, index) =>
          link.request({ type: 'init', index, workers: count, topology, weights, optimizer: options.optimizer, exchange, barrier }),
        ),
      );
    } catch (err) {
      await Promise.all(links.map((l) => l.worker.terminate()));
      throw err;
    }
    const inputShape = model.inputs[0].shape.slice(1) as number[];
    const classes = model.outputs[0].shape[model.outputs[0].shape.length - 1] as number;
    return new DataParallelTrainer(links, inputShape, classes);
  }

  /**
   * One optimizer step on `rows` examples: x is [rows, ...inputShape], y one-hot [rows, classes],
   * both row-major. `learningRate` overrides the optimizer's for this step (schedules).
   */
  async trainBatch(x: Float32Array, y: Float32Array, rows: number, options: { learningRate?: number } = {}): Promise<BatchResult> {
    const xRow = tf.util.sizeFromShape(this.inputShape);
    if (x.length !== rows * xRow || y.length !== rows * this.classes) {
      throw new Error(`data-parallel: batch of ${rows} rows needs x of ${rows * xRow} and y of ${rows * this.classes} floats`);
    }
    const shardRows = splitRows(rows, this.links.length);
    let start = 0;
    const replies = await Promise.all(
      this.links.map((link, i) => {
        const end = start + shardRows[i];
        const xs = x.slice(start * xRow, end * xRow);
        const ys = y.slice(start * this.classes, end * this.classes);
        start = end;
        return link.request({ type: 'step', x: xs, y: ys, rows, shardRows, learningRate: options.learningRate }, [xs.buffer, ys.buffer]);
      }),
    );
    let loss = 0;
    let accuracy = 0;
    replies.forEach((r, i) => {
      if (r.type !== 'stepped') throw new Error(`data-parallel: unexpected reply ${r.type}`);
      loss += (r.loss * shardRows[i]) / rows;
      accuracy += (r.accuracy * shardRows[i]) / rows;
    });
    return { loss, accuracy };
  }

  /** Current weights, in `model.getWeights()` order (all replicas hold the same). */
  async getWeights(): Promise<Float32Array[]> {
    const reply = await this.links[0].request({ type: 'getWeights' });
    if (reply.type !== 'weights') throw new Error(`data-parallel: unexpected reply ${reply.type}`);
    return reply.weights;
  }

  /** Copies the replicas' current weights into `model` (same topology), e.g. to save or evaluate it. */
  async copyWeightsTo(model: tf.LayersModel): Promise<void> {
    const weights = await this.getWeights();
    const tensors = model.weights.map((w, i) => tf.tensor(weights[i], w.shape as number[]));
    model.setWeights(tensors);
    tf.dispose(tensors);
  }

  /** Replaces every replica's weights (optimizer state is kept). */
  async setWeights(weights: Float32Array[]): Promise<void> {
    await Promise.all(this.links.map((link) => link.request({ type: 'setWeights', weights })));
  }

  async dispose(): Promise<void> {
    await Promise.all(this.links.map((l) => l.worker.terminate()));
  }
}

/** Rows per worker, as even as possible (earlier workers take the remainder). */
export function splitRows(rows: number, workers: number): number[] {
  const base = Math.floor(rows / workers);
  return Array.from({ length: workers }, (_, i) => base + (i < rows % workers ? 1 : 0));
}
