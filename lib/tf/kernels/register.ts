// Installs our training kernels into the wasm backend's kernel registry.
import * as tf from '@tensorflow/tfjs';
import { batchMatMulConfig } from './batch-matmul.js';
import { conv2dConfig, fusedConv2dConfig } from './conv2d.js';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.js';
import { fusedMatMulConfig } from './fused-matmul.js';
import { identityConfig } from './identity.js';
import { kerasRmspropConfig } from './keras-rmsprop.js';
import { maxPoolGradConfig } from './max-pool-grad.js';
import { sumConfig } from './sum.js';
import { transposeConfig } from './transpose.js';
import { hasStockKernel, stockKernel } from './stock.js';

export { WASM_TRAINING_KERNELS_VERSION } from './version.js';

/** Kernels we add or replace on wasm. */
export const wasmTrainingKernels: readonly tf.KernelConfig[] = [
  conv2dConfig,
  fusedConv2dConfig,
  conv2dBackpropFilterConfig,
  conv2dBackpropInputConfig,
  batchMatMulConfig,
  fusedMatMulConfig,
  maxPoolGradConfig,
  identityConfig,
  kerasRmspropConfig,
  sumConfig,
  transposeConfig,
];

/** Stock kernels our kernels call; captured before anything is replaced. */
const usedStockKernels = [
  'Conv2D',
  'FusedConv2D',
  '_FusedMatMul',
  'Identity',
  'BatchMatMul',
  'Transpose',
  'Sum',
  'Reshape',
  'Slice',
  'PadV2',
  'Reverse',
  'Concat',
];

const installed = new Set<string>();

/**
 * Registers (or replaces) training kernels on the wasm backend: all of them, or only `names`
 * (benchmarks use that to measure the stock kernels). Idempotent. A replaced kernel keeps the
 * stock one's setupFunc, which binds its wasm export when the backend (re)initialises, so the
 * stock kernel we delegate to stays callable. Returns the names now installed.
 */
export function registerWasmTrainingKernels(names?: readonly string[]): string[] {
  for (const name of usedStockKernels) stockKernel(name);
  for (const config of wasmTrainingKernels) {
    const name = config.kernelName;
    if (installed.has(name) || (names !== undefined && !names.includes(name))) continue;
    let setupFunc: tf.KernelConfig['setupFunc'];
    if (hasStockKernel(name)) {
      setupFunc = stockKernel(name).setupFunc;
      tf.unregisterKernel(name, 'wasm');
    }
    tf.registerKernel({ ...config, setupFunc });
    installed.add(name);
  }
  return [...installed];
}
