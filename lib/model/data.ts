// Training and evaluation data as flat typed arrays, turned into tensors one batch at a time so
// a 40,000-image set (~490 MB of float32) is never held twice or uploaded whole.
import * as tf from '@tensorflow/tfjs';
import type { DatasetReader } from '../dataset/reader.js';
import { PixelMapper } from '../dataset/pixel-map.js';
import type { PrefetchSource } from '../dataset/prefetch.js';
import type { NdArray } from '../npy.js';

/** normalize's `normalization.json`: how uint8 pixels become model input. */
export interface Normalization {
  method: 'scale' | 'standardize';
  /** Multiplier applied first (1/255 for the notebook's scaling). */
  scale: number;
  /** Per channel, in the scaled domain: input = (pixel·scale − mean[c]) / std[c] (standardize only). */
  mean?: number[];
  std?: number[];
}

/** A 256-entry lookup table per channel: uint8 pixel value → model input value. */
export function pixelTable(norm: Normalization, channels: number): Float32Array {
  const table = new Float32Array(channels * 256);
  // normalize computes pixel / 255, not pixel · (1/255); in float64 (before standardizing) the two can differ, and
  // augmented copies should become exactly the inputs normalize would have produced.
  const divisor = Math.round(1 / norm.scale);
  const scaled = (v: number) => (divisor > 0 && 1 / divisor === norm.scale ? v / divisor : v * norm.scale);
  for (let c = 0; c < channels; c++) {
    const mean = norm.method === 'standardize' ? (norm.mean?.[c] ?? 0) : 0;
    const std = norm.method === 'standardize' ? (norm.std?.[c] ?? 1) : 1;
    for (let v = 0; v < 256; v++) table[c * 256 + v] = (scaled(v) - mean) / std;
  }
  return table;
}

/** Rows of a dataset: inputs [N, ...sample] (float32 or uint8 + a pixel table) and targets [N, K]. */
export interface Rows {
  count: number;
  sampleShape: number[];
  classes: number;
  /** Gathers `rows` (in that order) into an input batch tensor and a target batch tensor. */
  batch(rows: ArrayLike<number>): { x: tf.Tensor; y: tf.Tensor };
  /** The training batch `batch()` makes tensors of, as fresh arrays (for steps that train off this thread). */
  batchArrays(rows: ArrayLike<number>): { x: Float32Array; y: Float32Array };
  /** The input batch alone, for prediction. */
  inputs(rows: ArrayLike<number>): tf.Tensor;
  /** The input batch [rows, ...sampleShape] and one-hot targets [rows, K] as fresh arrays (to transform before they become tensors). */
  gather(rows: ArrayLike<number>): { x: Float32Array; y: Float32Array };
  /** The order an epoch will ask for batches in (rows that read ahead use it; others ignore it). */
  plan?(order: Int32Array, batchSize: number): void;
}

function gatherTargets(y: Float32Array, k: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * k);
  for (let i = 0; i < rows.length; i++) out.set(y.subarray(rows[i]! * k, rows[i]! * k + k), i * k);
  return out;
}

export function checkRows(x: NdArray, y: NdArray, what: string): void {
  if (y.shape.length !== 2) throw new Error(`${what}: labels must be one-hot [N, K], got [${y.shape}]`);
  if (x.shape[0] !== y.shape[0]) throw new Error(`${what}: ${x.shape[0]} inputs but ${y.shape[0]} labels`);
}

/** Float inputs as normalize wrote them (train_x, val_x, test_x). */
export function floatRows(x: NdArray, y: NdArray, what: string): Rows {
  if (x.dtype !== 'float32') throw new Error(`${what}: expected float32 inputs, got ${x.dtype}`);
  checkRows(x, y, what);
  const xs = x.data as Float32Array;
  const sampleShape = x.shape.slice(1);
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const gatherInputs = (rows: ArrayLike<number>) => {
    // A fresh array per batch: some backends keep a reference to the array a tensor was made from.
    const out = new Float32Array(rows.length * size);
    for (let i = 0; i < rows.length; i++) out.set(xs.subarray(rows[i]! * size, rows[i]! * size + size), i * size);
    return out;
  };
  return rowsOf(x, y, gatherInputs);
}

/** The Rows around an input gatherer: targets are gathered from one-hot `y` the same way for any input dtype. */
function rowsOf(x: NdArray, y: NdArray, gatherInputs: (rows: ArrayLike<number>) => Float32Array): Rows {
  const ys = y.data as Float32Array;
  const k = y.shape[1]!;
  const sampleShape = x.shape.slice(1);
  const inputs = (rows: ArrayLike<number>) => tf.tensor(gatherInputs(rows), [rows.length, ...sampleShape]);
  return {
    count: x.shape[0]!,
    sampleShape,
    classes: k,
    inputs,
    batch: (rows) => ({ x: inputs(rows), y: tf.tensor2d(gatherTargets(ys, k, rows), [rows.length, k]) }),
    gather: (rows) => ({ x: gatherInputs(rows), y: gatherTargets(ys, k, rows) }),
    batchArrays: (rows) => ({ x: gatherInputs(rows), y: gatherTargets(ys, k, rows) }),
  };
}

/** uint8 images (augment's copies) converted to model input per batch through `table`. */
export function uint8Rows(x: NdArray, y: NdArray, table: Float32Array, what: string): Rows {
  if (x.dtype !== 'uint8') throw new Error(`${what}: expected uint8 images, got ${x.dtype}`);
  checkRows(x, y, what);
  const xs = x.data as Uint8Array;
  const sampleShape = x.shape.slice(1);
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const channels = sampleShape[sampleShape.length - 1]!;
  if (table.length !== channels * 256) throw new Error(`${what}: normalization has ${table.length / 256} channels, images have ${channels}`);
  const mapper = new PixelMapper(table, size);
  const gatherInputs = (rows: ArrayLike<number>) => {
    const out = new Float32Array(rows.length * size);
    for (let i = 0; i < rows.length; i++) {
      mapper.pixels.set(xs.subarray(rows[i]! * size, rows[i]! * size + size));
      mapper.mapInto(out, i * size);
    }
    return out;
  };
  return rowsOf(x, y, gatherInputs);
}

/** One-hot targets [rows.length, K] of dataset rows `rows`. */
export function oneHotOf(reader: DatasetReader, rows: ArrayLike<number>): Float32Array {
  const k = reader.manifest.classes.length;
  const out = new Float32Array(rows.length * k);
  for (let i = 0; i < rows.length; i++) out[i * k + reader.rows.label[rows[i]!]!] = 1;
  return out;
}

/**
 * Rows of a sharded dataset (the training part, validation or test: `index[i]` is the dataset row
 * of row i), read from the shards when a batch is gathered and mapped through the pixel table: no
 * float copy of the data exists, and memory holds a batch, not the dataset.
 */
export function datasetRows(reader: DatasetReader, index: Int32Array, table: Float32Array, what: string, prefetch?: PrefetchSource): Rows {
  const [h, w, c] = reader.manifest.shape;
  const size = h * w * c;
  if (table.length !== c * 256) throw new Error(`${what}: normalization has ${table.length / 256} channels, images have ${c}`);
  const mapper = new PixelMapper(table, size);
  const gatherInputs = (rows: ArrayLike<number>) => {
    const ahead = prefetch?.take(rows);
    if (ahead) return ahead;
    const out = new Float32Array(rows.length * size);
    for (let i = 0; i < rows.length; i++) {
      reader.readRowInto(index[rows[i]!]!, mapper.pixels);
      mapper.mapInto(out, i * size);
    }
    return out;
  };
  const k = reader.manifest.classes.length;
  const targets = (rows: ArrayLike<number>) =>
    oneHotOf(
      reader,
      Array.from(rows, (r) => index[r]!),
    );
  const inputs = (rows: ArrayLike<number>) => tf.tensor(gatherInputs(rows), [rows.length, h, w, c]);
  return {
    count: index.length,
    sampleShape: [h, w, c],
    classes: k,
    inputs,
    batch: (rows) => ({ x: inputs(rows), y: tf.tensor2d(targets(rows), [rows.length, k]) }),
    gather: (rows) => ({ x: gatherInputs(rows), y: targets(rows) }),
    batchArrays: (rows) => ({ x: gatherInputs(rows), y: targets(rows) }),
    ...(prefetch ? { plan: (order: Int32Array, batchSize: number) => prefetch.plan(order, batchSize) } : {}),
  };
}

/** 0..n-1 in blocks of `size` (prediction batches, in order). */
export function* sequentialBatches(n: number, size: number): Generator<Int32Array> {
  for (let start = 0; start < n; start += size) {
    const end = Math.min(n, start + size);
    const rows = new Int32Array(end - start);
    for (let i = 0; i < rows.length; i++) rows[i] = start + i;
    yield rows;
  }
}
