// Data-parallel training on wasm: N worker threads, each with its own wasm instance and a full
// replica of the model and optimizer. Every step each worker computes the gradient of its shard
// of the batch, the gradients meet in shared memory and are averaged (weighted by shard size, so
// the result is the full batch's mean-loss gradient), and every replica applies the same update
// with the Keras-rule optimizer of lib/model/optimizers.ts, so the replicas stay identical without
// ever shipping weights. The main thread only hands out shards. (wasm's own threaded build cannot
// run in Node: it starts its workers from blob: URLs.)
//
// Limits: the loss is categorical cross-entropy (no regularizer losses); non-trainable weights
// (batch-norm moving statistics) are averaged across replicas after every step, and batch
// norm sees per-shard batch statistics, like unsynchronised batch norm elsewhere; dropout masks
// are seeded per step by the caller, but shard i > 0 draws its mask from a seed derived from the
// step's seed and i, so masks differ from a single-thread run. The optimizer state (positional,
// as KerasOptimizer keeps it) can be exported and imported for checkpoints.
// DATA_PARALLEL_PROFILE=1 makes each worker print per-step timings (gradient, barrier wait,
// update) to stderr.
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { OptimizerSpec } from './optimizer-spec.js';

/** The optimizer spec this trainer first took; converted to lib/model's spec (Keras rules). */
export type LegacyOptimizerSpec =
  | { name: 'rmsprop'; learningRate: number; rho?: number; epsilon?: number; momentum?: number }
  | { name: 'adam'; learningRate: number; beta1?: number; beta2?: number; epsilon?: number }
  | { name: 'sgd'; learningRate: number; momentum?: number; nesterov?: boolean };

export interface DataParallelOptions {
  /** Topology and current weights are copied into every worker (the model itself is not used after). */
  model: tf.LayersModel;
  optimizer: OptimizerSpec | LegacyOptimizerSpec;
  /** Worker threads (default 2: one per core here). */
  workers?: number;
  /** Aborting terminates the workers at once (a step in flight rejects). */
  signal?: AbortSignal;
}

export interface BatchResult {
  /** Mean categorical cross-entropy over the batch (before the update). */
  loss: number;
  /** Mean categorical accuracy over the batch (before the update). */
  accuracy: number;
}

export interface BatchOptions {
  /** Learning rate for this step (schedules); default: the optimizer spec's. */
  learningRate?: number;
  /** One seed per Dropout layer (layer order) for this step; shard i > 0 derives its own from them. */
  dropoutSeeds?: number[];
}

/** A tensor as plain data, to cross a thread boundary. */
export interface TensorData {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  values: Float32Array | Int32Array;
}

export function toKerasSpec(spec: OptimizerSpec | LegacyOptimizerSpec): OptimizerSpec {
  if ('type' in spec) return spec;
  switch (spec.name) {
    case 'rmsprop':
      if (spec.momentum) throw new Error('data-parallel: Keras RMSprop has no momentum');
      return { type: 'rmsprop', lr: spec.learningRate, rho: spec.rho ?? 0.9, epsilon: spec.epsilon ?? 1e-7 };
    case 'adam':
      return { type: 'adam', lr: spec.learningRate, beta_1: spec.beta1 ?? 0.9, beta_2: spec.beta2 ?? 0.999, epsilon: spec.epsilon ?? 1e-7 };
    case 'sgd':
      return { type: 'sgd', lr: spec.learningRate, momentum: spec.momentum ?? 0, nesterov: spec.nesterov ?? false };
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
  | { type: 'step'; x: Float32Array; y: Float32Array; rows: number; shardRows: number[]; learningRate?: number; dropoutSeeds?: number[] }
  | { type: 'predict'; x: Float32Array; rows: number; batchSize: number }
  | { type: 'getWeights' }
  | { type: 'setWeights'; weights: Float32Array[] }
  | { type: 'getOptimizerState' }
  | { type: 'setOptimizerState'; state: TensorData[] };

export type Reply =
  | { type: 'ready'; exchangeFloats: number }
  | { type: 'stepped'; loss: number; accuracy: number }
  | { type: 'predicted'; probs: Float32Array }
  | { type: 'weights'; weights: Float32Array[] }
  | { type: 'optimizerState'; state: TensorData[] }
  | { type: 'ok' }
  | { type: 'error'; message: string };

/** Floats one worker's exchange slot holds: every trainable gradient plus every non-trainable weight. */
export function exchangeFloats(model: tf.LayersModel): number {
  return model.weights.reduce((n, w) => n + tf.util.sizeFromShape(w.shape as number[]), 0);
}

let liveWorkers = 0;

/** Worker threads of all trainers in this process that have not exited yet (tests check for leaks). */
export function liveWorkerCount(): number {
  return liveWorkers;
}

class WorkerLink {
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  readonly exited: Promise<void>;

  constructor(readonly worker: Worker) {
    liveWorkers++;
    worker.on('message', (reply: Reply) => {
      const p = this.pending;
      this.pending = undefined;
      if (p === undefined) return;
      if (reply.type === 'error') p.reject(new Error(`data-parallel worker: ${reply.message}`));
      else p.resolve(reply);
    });
    const fail = (err: Error): void => {
      this.failure ??= err;
      this.pending?.reject(this.failure);
      this.pending = undefined;
    };
    worker.on('error', fail);
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        liveWorkers--;
        fail(new Error(`data-parallel worker exited (code ${code})`));
        resolve();
      }),
    );
  }

  request(message: Request, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending !== undefined) return Promise.reject(new Error('data-parallel worker is busy'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(message, transfer);
    });
  }

  /** Stops the thread now (a request in flight rejects with `reason`). */
  terminate(reason: Error): Promise<void> {
    this.failure ??= reason;
    this.pending?.reject(this.failure);
    this.pending = undefined;
    void this.worker.terminate();
    return this.exited;
  }
}

export class DataParallelTrainer {
  private disposed: Promise<void> | undefined;
  private readonly onAbort = (): void => void this.dispose();

  private constructor(
    private readonly links: WorkerLink[],
    private readonly inputShape: number[],
    private readonly classes: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  static async create(options: DataParallelOptions): Promise<DataParallelTrainer> {
    const { model, signal } = options;
    const count = options.workers ?? 2;
    if (!Number.isInteger(count) || count < 1) throw new Error(`data-parallel: workers must be a positive integer, got ${count}`);
    if (signal?.aborted) throw new Error('data-parallel: aborted');
    const optimizer = toKerasSpec(options.optimizer);
    const topology = JSON.stringify(model.toJSON(null, false));
    const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
    const slotFloats = exchangeFloats(model);
    const exchange = new SharedArrayBuffer(count * slotFloats * 4);
    const barrier = new SharedArrayBuffer(8);
    const url = new URL('./data-parallel-worker.js', import.meta.url);
    const links = Array.from({ length: count }, () => new WorkerLink(new Worker(url)));
    const stopAll = () => Promise.all(links.map((l) => l.terminate(new Error('data-parallel: aborted'))));
    // Not awaited: the init requests in flight reject at once, and the caller awaits those.
    const onAbort = (): void => void stopAll();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const replies = await Promise.all(
        links.map((link, index) => link.request({ type: 'init', index, workers: count, topology, weights, optimizer, exchange, barrier })),
      );
      for (const r of replies) {
        if (r.type !== 'ready' || r.exchangeFloats !== slotFloats) throw new Error('data-parallel: a replica does not match the model');
      }
    } catch (err) {
      await stopAll();
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    const inputShape = model.inputs[0].shape.slice(1) as number[];
    const classes = model.outputs[0].shape[model.outputs[0].shape.length - 1] as number;
    const trainer = new DataParallelTrainer(links, inputShape, classes, signal);
    if (signal?.aborted) {
      await trainer.dispose();
      throw new Error('data-parallel: aborted');
    }
    return trainer;
  }

  get workers(): number {
    return this.links.length;
  }

  /**
   * One optimizer step on `rows` examples: x is [rows, ...inputShape], y one-hot [rows, classes],
   * both row-major. `learningRate` overrides the optimizer's for this step (schedules).
   */
  async trainBatch(x: Float32Array, y: Float32Array, rows: number, options: BatchOptions = {}): Promise<BatchResult> {
    const xRow = tf.util.sizeFromShape(this.inputShape);
    if (x.length !== rows * xRow || y.length !== rows * this.classes) {
      throw new Error(`data-parallel: batch of ${rows} rows needs x of ${rows * xRow} and y of ${rows * this.classes} floats`);
    }
    const { learningRate, dropoutSeeds } = options;
    const { shardRows, replies } = await this.scatter(rows, (start, end, shardRows) => {
      const xs = x.slice(start * xRow, end * xRow);
      const ys = y.slice(start * this.classes, end * this.classes);
      return [{ type: 'step', x: xs, y: ys, rows, shardRows, learningRate, dropoutSeeds }, [xs.buffer, ys.buffer]];
    });
    let loss = 0;
    let accuracy = 0;
    replies.forEach((r, i) => {
      if (r.type !== 'stepped') throw new Error(`data-parallel: unexpected reply ${r.type}`);
      loss += (r.loss * shardRows[i]) / rows;
      accuracy += (r.accuracy * shardRows[i]) / rows;
    });
    return { loss, accuracy };
  }

  /**
   * Class probabilities [rows, classes] for `rows` inputs x [rows, ...inputShape] (inference mode:
   * no dropout), the rows split across the replicas, each predicting `batchSize` rows at a time.
   */
  async predict(x: Float32Array, rows: number, batchSize: number): Promise<Float32Array> {
    const xRow = tf.util.sizeFromShape(this.inputShape);
    if (x.length !== rows * xRow) throw new Error(`data-parallel: ${rows} rows need ${rows * xRow} input floats, got ${x.length}`);
    const { replies } = await this.scatter(rows, (start, end) => {
      const xs = x.slice(start * xRow, end * xRow);
      return [{ type: 'predict', x: xs, rows: end - start, batchSize }, [xs.buffer]];
    });
    const probs = new Float32Array(rows * this.classes);
    let at = 0;
    for (const r of replies) {
      if (r.type !== 'predicted') throw new Error(`data-parallel: unexpected reply ${r.type}`);
      probs.set(r.probs, at);
      at += r.probs.length;
    }
    return probs;
  }

  /** Splits `rows` rows across the workers and sends each the request for its shard [start, end). */
  private async scatter(
    rows: number,
    request: (start: number, end: number, shardRows: number[]) => [Request, ArrayBuffer[]],
  ): Promise<{ shardRows: number[]; replies: Reply[] }> {
    const shardRows = splitRows(rows, this.links.length);
    let start = 0;
    const replies = await Promise.all(
      this.links.map((link, i) => {
        const end = start + shardRows[i];
        const [message, transfer] = request(start, end, shardRows);
        start = end;
        return link.request(message, transfer);
      }),
    );
    return { shardRows, replies };
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

  /** The replicas' optimizer state, as KerasOptimizer.getWeights() lists it (iterations first, then slots). */
  async getOptimizerState(): Promise<TensorData[]> {
    const reply = await this.links[0].request({ type: 'getOptimizerState' });
    if (reply.type !== 'optimizerState') throw new Error(`data-parallel: unexpected reply ${reply.type}`);
    return reply.state;
  }

  /** Replaces every replica's optimizer state (e.g. restored from a checkpoint). */
  async setOptimizerState(state: TensorData[]): Promise<void> {
    await Promise.all(this.links.map((link) => link.request({ type: 'setOptimizerState', state })));
  }

  /** Terminates the workers (idempotent); a request in flight rejects. */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      this.signal?.removeEventListener('abort', this.onAbort);
      const reason = new Error(this.signal?.aborted ? 'data-parallel: aborted' : 'data-parallel: trainer disposed');
      await Promise.all(this.links.map((l) => l.terminate(reason)));
    })();
    return this.disposed;
  }
}

/** Rows per worker, as even as possible (earlier workers take the remainder). */
export function splitRows(rows: number, workers: number): number[] {
  const base = Math.floor(rows / workers);
  return Array.from({ length: workers }, (_, i) => base + (i < rows % workers ? 1 : 0));
}

/** Converts named tensors (e.g. KerasOptimizer.getWeights()) to plain data. */
export async function toTensorData(named: Array<{ name: string; tensor: tf.Tensor }>): Promise<TensorData[]> {
  return Promise.all(
    named.map(async ({ name, tensor }) => {
      const dtype = tensor.dtype === 'int32' ? 'int32' : 'float32';
      const values = (await tensor.data()) as Float32Array | Int32Array;
      return { name, shape: tensor.shape.slice(), dtype, values: values.slice() } satisfies TensorData;
    }),
  );
}

/** Plain data back to named tensors (the caller disposes them). */
export function fromTensorData(state: TensorData[]): Array<{ name: string; tensor: tf.Tensor }> {
  return state.map(({ name, shape, dtype, values }) => ({ name, tensor: tf.tensor(values, shape, dtype) }));
}
