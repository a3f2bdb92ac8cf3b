// KerasRMSprop: one Keras RMSprop update of a variable as a single kernel (lib/model/optimizers.ts
// runs it where a backend registers it). As tensor ops the update is eight passes over the
// weights, ~10 ms a step for the notebook's 1.7M parameters on wasm; this is one pass of our SIMD
// module, bit-identical to the ops (same float32 operations in the same order).
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './heap.js';
import { KERAS_RMSPROP } from './keras-rmsprop-name.js';
import { rmspropStep } from './simd-module.js';

function kerasRmsprop(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo[] {
  const { acc, value, g } = args.inputs as Record<'acc' | 'value' | 'g', tf.TensorInfo>;
  const { lr, rho, epsilon } = args.attrs as unknown as { lr: number; rho: number; epsilon: number };
  const heap = asHeapBackend(args.backend);
  const accOut = heap.makeOutput(acc.shape, 'float32');
  const valueOut = heap.makeOutput(value.shape, 'float32');
  const view = (t: tf.TensorInfo) => heap.typedArrayFromHeap(t) as Float32Array; // after the allocations
  rmspropStep(view(acc), view(value), view(g), view(accOut), view(valueOut), { lr, rho, epsilon });
  return [accOut, valueOut];
}

export const kerasRmspropConfig: tf.KernelConfig = {
  kernelName: KERAS_RMSPROP,
  backendName: 'wasm',
  kernelFunc: kerasRmsprop as unknown as tf.KernelFunc,
};
