// Layer specs → a tf.Sequential with Keras' defaults (glorot-uniform kernels, zero biases) and
// Keras 2 layer names (conv2d_1, activation_1, ...), every initializer seeded from one seed.
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from './rng.js';
import { AUTO_UNITS, resolveUnits, type LayerSpec } from './spec.js';

const KERAS_NAME: Record<LayerSpec['type'], string> = {
  conv2d: 'conv2d',
  maxPooling2d: 'max_pooling2d',
  averagePooling2d: 'average_pooling2d',
  globalAveragePooling2d: 'global_average_pooling2d',
  dropout: 'dropout',
  flatten: 'flatten',
  dense: 'dense',
  activation: 'activation',
  batchNormalization: 'batch_normalization',
};

function pair(v: number | [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : v;
}

type LayerArgs = { name: string; inputShape?: number[] };

function makeLayer(spec: LayerSpec, args: LayerArgs, seed: number): tf.layers.Layer {
  const kernelInitializer = tf.initializers.glorotUniform({ seed });
  switch (spec.type) {
    case 'conv2d':
      return tf.layers.conv2d({
        ...args,
        filters: spec.filters,
        kernelSize: pair(spec.kernel_size),
        strides: pair(spec.strides),
        padding: spec.padding,
        activation: spec.activation,
        useBias: spec.use_bias,
        kernelInitializer,
        biasInitializer: 'zeros',
      });
    case 'maxPooling2d':
      return tf.layers.maxPooling2d({
        ...args,
        poolSize: pair(spec.pool_size),
        strides: pair(spec.strides ?? spec.pool_size),
        padding: spec.padding,
      });
    case 'averagePooling2d':
      return tf.layers.averagePooling2d({
        ...args,
        poolSize: pair(spec.pool_size),
        strides: pair(spec.strides ?? spec.pool_size),
        padding: spec.padding,
      });
    case 'globalAveragePooling2d':
      return tf.layers.globalAveragePooling2d(args);
    case 'dropout':
      // No fixed seed here: a fixed seed would draw the same mask every step. Dropout masks are
      // seeded per step by `reseedDropout` instead.
      return tf.layers.dropout({ ...args, rate: spec.rate });
    case 'flatten':
      return tf.layers.flatten(args);
    case 'dense':
      if (spec.units === AUTO_UNITS) throw new Error('units: auto needs the number of classes');
      return tf.layers.dense({
        ...args,
        units: spec.units,
        activation: spec.activation,
        useBias: spec.use_bias,
        kernelInitializer,
        biasInitializer: 'zeros',
      });
    case 'activation':
      return tf.layers.activation({ ...args, activation: spec.activation });
    case 'batchNormalization':
      return tf.layers.batchNormalization({ ...args, momentum: spec.momentum, epsilon: spec.epsilon });
  }
}

/**
 * Builds the model for inputs of `inputShape` (e.g. [32, 32, 3]) and `classes` outputs where a
 * dense layer says `units: auto`; same seed → same initial weights.
 */
export function buildModel(layers: readonly LayerSpec[], inputShape: readonly number[], seed: number, classes?: number): tf.Sequential {
  const counts = new Map<string, number>();
  const model = tf.sequential({ name: 'sequential_1' });
  (classes === undefined ? layers : resolveUnits(layers, classes)).forEach((spec, i) => {
    const base = KERAS_NAME[spec.type];
    const n = (counts.get(base) ?? 0) + 1;
    counts.set(base, n);
    const args: LayerArgs = { name: `${base}_${n}` };
    if (i === 0) args.inputShape = [...inputShape];
    model.add(makeLayer(spec, args, deriveSeed(seed, `init:${i}`)));
  });
  return model;
}

/** Output size of the model's last layer (the number of classes it predicts). */
export function outputUnits(model: tf.LayersModel): number {
  const shape = model.outputs[0]!.shape;
  return shape[shape.length - 1] ?? 0;
}

/** Shape check before copying weights from another model (init_from, checkpoints). */
export function copyWeights(from: tf.LayersModel, to: tf.LayersModel, what: string): void {
  const src = from.getWeights();
  const dst = to.weights;
  const mismatch =
    src.length !== dst.length ? `${src.length} weight tensors vs ${dst.length}` : dst.findIndex((w, i) => w.shape.join('x') !== src[i]!.shape.join('x'));
  if (typeof mismatch === 'string' || mismatch >= 0) {
    const detail =
      typeof mismatch === 'string' ? mismatch : `${dst[mismatch]!.originalName} is [${dst[mismatch]!.shape}] here, [${src[mismatch]!.shape}] in ${what}`;
    throw new Error(`${what}: model architecture differs (${detail})`);
  }
  to.setWeights(src);
}

/**
 * Gives every Dropout layer a fresh seed drawn from `next` before a training step. tfjs' Dropout
 * takes one seed at construction and would reuse the same mask on every step; drawing per step
 * keeps masks random yet reproducible (and resumable, since `next` comes from a checkpointed RNG).
 */
export function reseedDropout(model: tf.LayersModel, next: () => number): void {
  for (const layer of model.layers) {
    if (layer.getClassName() === 'Dropout') (layer as unknown as { seed?: number }).seed = next();
  }
}

/** Clears the per-step seeds so saved model.json carries none (tfjs serialises Dropout's seed). */
export function clearDropoutSeeds(model: tf.LayersModel): void {
  for (const layer of model.layers) {
    if (layer.getClassName() === 'Dropout') (layer as unknown as { seed?: number }).seed = undefined;
  }
}
