// The wasm backend's own (stock) kernels, captured before ours replace them, so that our kernels can
// still call them for the cases they do not cover.
import * as tf from '@tensorflow/tfjs';

/** Stock wasm kernel configs, captured before we replace any of them (so we can still call them). */
const stockKernels = new Map<string, tf.KernelConfig>();

/** Remembers the stock wasm config for `name` the first time we see it; later calls return that one. */
export function stockKernel(name: string): tf.KernelConfig {
  let config = stockKernels.get(name);
  if (config === undefined) {
    config = tf.getKernel(name, 'wasm');
    if (config === undefined) throw new Error(`wasm backend has no '${name}' kernel`);
    stockKernels.set(name, config);
  }
  return config;
}

/** Whether `name` has a stock wasm kernel (false for kernels the wasm backend lacks). */
export function hasStockKernel(name: string): boolean {
  return stockKernels.has(name) || tf.getKernel(name, 'wasm') !== undefined;
}
