// Backend selection: resolveBackend is a cheap prediction, initBackend activates it (and on wasm
// installs the training kernels, so the seed model's layers can train there).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { initBackend, resolveBackend } from '../lib/tf/backend.js';
import { loadNativeAddon } from '../lib/tf/native-addon.js';
import { tfjsNodeState, tfjsNodeStateIn } from '../lib/tf/tfjs-node.js';

const require = createRequire(import.meta.url);
function resolvable(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

describe('resolveBackend', () => {
  test('an explicit preference is taken as is, with the versions that change results', () => {
    expect(resolveBackend('cpu')).toEqual({ name: 'cpu', versions: { '@tensorflow/tfjs-core': expect.any(String) } });
    const wasm = resolveBackend('wasm');
    expect(wasm.name).toBe('wasm');
    expect(Object.keys(wasm.versions).sort()).toEqual(['@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-core', 'wasm-training-kernels']);
  });

  test('auto prefers tfjs-node where it is installed, else native where the addon loads, else wasm', () => {
    const expected = tfjsNodeState().state === 'ready' ? 'tensorflow' : loadNativeAddon().addon ? 'native' : 'wasm';
    expect(resolveBackend('auto').name).toBe(expected);
  });
});

describe('tfjs-node, told without loading it', () => {
  test('the package with its binding is ready; without it (its install script skipped), unbuilt', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tfjs-node-state-'));
    try {
      expect(tfjsNodeStateIn(dir, '4.22.0')).toEqual({ state: 'unbuilt', version: '4.22.0' });
      await mkdir(join(dir, 'lib', 'napi-v8'), { recursive: true });
      expect(tfjsNodeStateIn(dir, '4.22.0').state).toBe('unbuilt');
      await writeFile(join(dir, 'lib', 'napi-v8', 'tfjs_binding.node'), '');
      expect(tfjsNodeStateIn(dir, '4.22.0')).toEqual({ state: 'ready', version: '4.22.0' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('here: missing where the package is not installed; then `tensorflow` is a clear error and auto says nothing about it', async () => {
    if (resolvable('@tensorflow/tfjs-node')) return; // a machine with tfjs-node: nothing to check
    expect(tfjsNodeState()).toEqual({ state: 'missing' });
    await expect(initBackend('tensorflow')).rejects.toThrow(
      'no usable tfjs backend for \'tensorflow\': @tensorflow/tfjs-node is not installed (optional: see the README, "tfjs-node")',
    );
    const auto = await initBackend('auto');
    expect(auto.fallbacks ?? []).not.toContainEqual(expect.stringContaining('tfjs-node'));
  });
});

describe('initBackend', () => {
  test('wasm: activates it, reports SIMD and installs the training kernels (idempotently)', async () => {
    const info = await initBackend('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.name).toBe('wasm');
    expect(typeof info.wasm?.simd).toBe('boolean');
    expect(info.wasm?.kernels).toEqual(expect.arrayContaining(['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'BatchMatMul']));
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    const again = await initBackend('wasm');
    expect(again.wasm?.kernels).toEqual(info.wasm?.kernels);
  });

  test('wasm trains a conv layer: one SGD step lowers the loss', async () => {
    await initBackend('wasm');
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [8, 8, 2],
          filters: 4,
          kernelSize: 3,
          activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
    const x = tf.tensor4d(
      Float32Array.from({ length: 6 * 8 * 8 * 2 }, (_, i) => Math.sin(i)),
      [6, 8, 8, 2],
    );
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3).toFloat();
    const before = Number(await model.trainOnBatch(x, y));
    await model.trainOnBatch(x, y);
    const after = (model.evaluate(x, y, { batchSize: 6 }) as tf.Scalar).dataSync()[0];
    expect(Number.isFinite(before)).toBe(true);
    expect(after).toBeLessThan(before);
  });

  test('cpu: activates the cpu backend', async () => {
    const info = await initBackend('cpu');
    expect(info.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });
});
