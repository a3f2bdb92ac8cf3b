// One replica of DataParallelTrainer (see data-parallel.ts): its own wasm backend, model and
// optimizer. Per step: gradient of its shard -> its exchange slot -> barrier -> the weighted mean
// of all slots, summed in the same order by every replica (so all apply bit-identical updates),
// applied by lib/model's Keras-rule optimizer.
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { reseedDropout } from './build.js';
import { skipInputGradient } from './input-gradient.js';
import { createOptimizer, type KerasOptimizer } from './optimizers.js';
import { deriveSeed } from './rng.js';
import { initBackend } from '../tf/backend.js';
import { asHeapBackend } from '../tf/kernels/heap.js';
import { fromTensorData, toTensorData, type InitMessage, type Reply, type Request } from './data-parallel.js';

if (parentPort === null) throw new Error('data-parallel-worker must run in a worker thread');
const port = parentPort;

interface Replica {
  init: InitMessage;
  model: tf.LayersModel;
  optimizer: KerasOptimizer;
  trainable: tf.Variable[];
  nonTrainable: tf.Variable[];
  /** Float offset of each trainable gradient / non-trainable weight inside a slot. */
  offsets: number[];
  slotFloats: number;
  slots: Float32Array[];
  barrier: Int32Array;
}

let replica: Replica | undefined;

function variableOf(w: tf.LayerVariable): tf.Variable {
  return w.read() as tf.Variable;
}

async function setUp(init: InitMessage): Promise<Replica> {
  await initBackend('wasm');
  const model = await tf.models.modelFromJSON({ modelTopology: JSON.parse(init.topology) as tf.io.ModelJSON['modelTopology'] });
  model.setWeights(init.weights.map((w, i) => tf.tensor(w, model.weights[i].shape as number[])));
  skipInputGradient(model);
  const trainable = model.trainableWeights.map(variableOf);
  const nonTrainable = model.nonTrainableWeights.map(variableOf);
  const offsets: number[] = [];
  let slotFloats = 0;
  for (const v of [...trainable, ...nonTrainable]) {
    offsets.push(slotFloats);
    slotFloats += v.size;
  }
  const slots = Array.from({ length: init.workers }, (_, i) => new Float32Array(init.exchange, i * slotFloats * 4, slotFloats));
  return {
    init,
    model,
    optimizer: createOptimizer(init.optimizer),
    trainable,
    nonTrainable,
    offsets,
    slotFloats,
    slots,
    barrier: new Int32Array(init.barrier),
  };
}

/** A float32 tensor's values in place on the wasm heap (dataSync would copy them first). */
function heapView(t: tf.Tensor): Float32Array {
  return asHeapBackend(tf.backend()).typedArrayFromHeap(t) as Float32Array;
}

/** sum_w weights[w] * slot_w[offset, offset + size) as a tensor of `shape` (the caller disposes it). */
function slotMean(r: Replica, weights: number[], offset: number, shape: number[]): tf.Tensor {
  const size = tf.util.sizeFromShape(shape);
  return tf.tidy(() =>
    r.slots.map((slot, w) => tf.mul(tf.tensor(slot.subarray(offset, offset + size), shape), weights[w])).reduce((sum, term) => tf.add(sum, term)),
  );
}

/** Blocks until every replica has arrived (generation barrier on [arrived, generation]). */
function awaitAll(barrier: Int32Array, workers: number): void {
  const generation = Atomics.load(barrier, 1);
  if (Atomics.add(barrier, 0, 1) + 1 === workers) {
    Atomics.store(barrier, 0, 0);
    Atomics.add(barrier, 1, 1);
    Atomics.notify(barrier, 1);
  } else {
    while (Atomics.load(barrier, 1) === generation) Atomics.wait(barrier, 1, generation);
  }
}

function step(r: Replica, msg: Extract<Request, { type: 'step' }>): Reply {
  const prof = process.env.DATA_PARALLEL_PROFILE !== undefined;
  const t0 = performance.now();
  const { index, workers } = r.init;
  const own = msg.shardRows[index];
  const slot = r.slots[index];
  const inputShape = r.model.inputs[0].shape.slice(1) as number[];
  const classes = msg.y.length / Math.max(own, 1);
  let loss = 0;
  let accuracy = 0;

  if (msg.dropoutSeeds !== undefined) {
    // Seeds arrive in Dropout-layer order. Shard 0 uses them as a single-thread run would (its
    // rows are the batch's first rows and seeded masks are drawn in row-major order, so its
    // masks are the first rows of that run's masks); other shards need masks of their own, from
    // seeds derived from the step's seed and the shard index.
    const seeds = msg.dropoutSeeds.map((s) => (index === 0 ? s : deriveSeed(s, `shard:${index}`)));
    let next = 0;
    reseedDropout(r.model, () => seeds[next++] ?? 0);
  }
  if (own > 0) {
    const x = tf.tensor(msg.x, [own, ...inputShape]);
    const y = tf.tensor2d(msg.y, [own, classes]);
    let acc: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const pred = r.model.apply(x, { training: true }) as tf.Tensor;
      acc = tf.keep(tf.mean(tf.metrics.categoricalAccuracy(y, pred)) as tf.Scalar);
      return tf.mean(tf.metrics.categoricalCrossentropy(y, pred)) as tf.Scalar;
    }, r.trainable);
    loss = value.dataSync()[0];
    accuracy = acc === undefined ? 0 : acc.dataSync()[0];
    r.trainable.forEach((v, i) => slot.set(heapView(grads[v.name]), r.offsets[i]));
    tf.dispose([x, y, value, acc, ...Object.values(grads)]);
  } else {
    slot.fill(0, 0, r.offsets[r.trainable.length] ?? r.slotFloats);
  }
  r.nonTrainable.forEach((v, i) => slot.set(heapView(v), r.offsets[r.trainable.length + i]));

  const t1 = performance.now();
  awaitAll(r.barrier, workers);
  const t2 = performance.now();

  // Weighted mean over slots in slot order, as tensor ops on the heap: identical arithmetic in
  // every replica. (A JS loop over the shared slots took 10-40 ms a step; this takes a few.)
  const weights = msg.shardRows.map((n) => n / msg.rows);
  if (msg.learningRate !== undefined) r.optimizer.learningRate = msg.learningRate;
  const named: tf.NamedTensorMap = {};
  r.trainable.forEach((v, i) => (named[v.name] = slotMean(r, weights, r.offsets[i], v.shape)));
  r.optimizer.applyGradients(named);
  tf.dispose(Object.values(named));
  r.nonTrainable.forEach((v, i) => {
    const mean = slotMean(r, weights, r.offsets[r.trainable.length + i], v.shape);
    v.assign(mean);
    mean.dispose();
  });
  if (prof)
    console.error(`worker ${index}: grads ${(t1 - t0).toFixed(0)} ms, barrier ${(t2 - t1).toFixed(0)} ms, apply ${(performance.now() - t2).toFixed(0)} ms`);
  // Nobody may overwrite a slot for the next step before all have read this one: the main
  // thread sends the next step only after every replica has replied, which happens below.
  return { type: 'stepped', loss, accuracy };
}

/** Inference-mode probabilities for the shard, `batchSize` rows at a time. */
function predict(r: Replica, msg: Extract<Request, { type: 'predict' }>): Float32Array {
  const inputShape = r.model.inputs[0].shape.slice(1) as number[];
  const xRow = tf.util.sizeFromShape(inputShape);
  const classes = r.model.outputs[0].shape[r.model.outputs[0].shape.length - 1] as number;
  const probs = new Float32Array(msg.rows * classes);
  for (let start = 0; start < msg.rows; start += msg.batchSize) {
    const n = Math.min(msg.batchSize, msg.rows - start);
    const out = tf.tidy(() => {
      const x = tf.tensor(msg.x.subarray(start * xRow, (start + n) * xRow), [n, ...inputShape]);
      return r.model.predict(x, { batchSize: n }) as tf.Tensor;
    });
    probs.set(out.dataSync() as Float32Array, start * classes);
    out.dispose();
  }
  return probs;
}

async function handle(msg: Request): Promise<Reply> {
  if (msg.type === 'init') {
    replica = await setUp(msg);
    return { type: 'ready', exchangeFloats: replica.slotFloats };
  }
  const r = replica;
  if (r === undefined) throw new Error('not initialised');
  switch (msg.type) {
    case 'step':
      return step(r, msg);
    case 'predict':
      return { type: 'predicted', probs: predict(r, msg) };
    case 'getWeights':
      return { type: 'weights', weights: r.model.getWeights().map((w) => w.dataSync() as Float32Array) };
    case 'setWeights': {
      const tensors = msg.weights.map((w, i) => tf.tensor(w, r.model.weights[i].shape as number[]));
      r.model.setWeights(tensors);
      tf.dispose(tensors);
      return { type: 'ok' };
    }
    case 'getOptimizerState': {
      const named = await r.optimizer.getWeights();
      const state = await toTensorData(named);
      named[0]?.tensor.dispose(); // the iteration count is a fresh scalar; the rest are live slots
      return { type: 'optimizerState', state };
    }
    case 'setOptimizerState': {
      const named = fromTensorData(msg.state);
      await r.optimizer.setWeights(named);
      tf.dispose(named.map((n) => n.tensor)); // the slot variables hold their own references
      return { type: 'ok' };
    }
  }
}

port.on('message', (msg: Request) => {
  handle(msg).then(
    (reply) => port.postMessage(reply),
    (err: unknown) => port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) } satisfies Reply),
  );
});
