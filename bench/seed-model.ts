// The notebook CNN as the benchmark's workload: the train stage's default model (NOTEBOOK_MODEL,
// built by the same code), compiled as the train stage compiles it (Keras-rule RMSprop).
import type * as tf from '@tensorflow/tfjs';
import { buildModel } from '../lib/model/build.js';
import { createOptimizer } from '../lib/model/optimizers.js';
import { ModelSpec } from '../lib/model/spec.js';

export function buildSeedModel(): tf.LayersModel {
  const model = buildModel(ModelSpec.parse(undefined), [32, 32, 3], 42, 10);
  const optimizer = createOptimizer({ type: 'rmsprop', lr: 1e-3, rho: 0.9, epsilon: 1e-7 });
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}

/** Deterministic random images in [0,1) and one-hot labels. */
export function randomBatch(n: number, seed: number): { x: Float32Array; y: Float32Array } {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const x = new Float32Array(n * 32 * 32 * 3);
  for (let i = 0; i < x.length; i++) x[i] = next();
  const y = new Float32Array(n * 10);
  for (let i = 0; i < n; i++) y[i * 10 + Math.floor(next() * 10)] = 1;
  return { x, y };
}
