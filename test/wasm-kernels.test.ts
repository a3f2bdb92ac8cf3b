// Every kernel we register on wasm against the cpu backend (the reference), on several shapes,
// strides and paddings, plus a whole conv model's gradients on real CIFAR images.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { createOptimizer } from '../lib/model/optimizers.js';
import { initBackend } from '../lib/tf/backend.js';
import { copiedRunCount, registeredHeaps } from '../lib/tf/kernels/simd-module.js';
import { wasmTrainingKernels } from '../lib/tf/kernels/register.js';
import { loadRealCifar } from './helpers/real-cifar.js';

type Spec = { shape: number[]; values: Float32Array | Int32Array; dtype: 'float32' | 'int32' };

/** Deterministic values in [-1, 1); `ties` rounds them to a few levels (pooling ties, relu zeros). */
function values(shape: number[], seed: number, ties = false): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = seed * 2654435761 + 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const v = (s / 2147483648) * 2 - 1;
    out[i] = ties ? Math.max(0, Math.round(v * 3) / 3) : v;
  }
  return out;
}

function f32(shape: number[], seed: number, ties = false): Spec {
  return { shape, values: values(shape, seed, ties), dtype: 'float32' };
}

interface Outcome {
  maxDiff: number;
  /** Largest |reference| value, for a relative tolerance. */
  scale: number;
  shapesMatch: boolean;
}

/** Runs one kernel on cpu and on wasm from the same inputs; checks wasm frees all intermediates. */
async function compare(kernel: string, inputs: Record<string, Spec>, attrs: tf.NamedAttrMap): Promise<Outcome> {
  const results: Record<string, { shape: number[]; data: tf.TypedArray }> = {};
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    const buffersBefore = tf.backend().numDataIds();
    const named: tf.NamedTensorMap = {};
    for (const [name, s] of Object.entries(inputs)) named[name] = tf.tensor(s.values, s.shape, s.dtype);
    const out = tf.engine().runKernel(kernel, named, attrs) as tf.Tensor;
    results[backend] = { shape: out.shape, data: await out.data() };
    tf.dispose([out, ...Object.values(named)]);
    // No intermediate buffer may outlive the kernel.
    expect(tf.backend().numDataIds()).toBe(buffersBefore);
  }
  const ref = results.cpu.data;
  const got = results.wasm.data;
  let maxDiff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  const shapesMatch = JSON.stringify(results.cpu.shape) === JSON.stringify(results.wasm.shape) && ref.length === got.length;
  return { maxDiff, scale, shapesMatch };
}

const maxDiffs: Record<string, number> = {};

function expectClose(label: string, o: Outcome, relTol = 2e-6): void {
  expect(o.shapesMatch).toBe(true);
  // float32 sums of up to a few hundred terms: a few ulps of the result's scale.
  expect(o.maxDiff).toBeLessThanOrEqual(relTol * Math.max(1, o.scale) * 8);
  const kernel = label.split(' ')[0];
  maxDiffs[kernel] = Math.max(maxDiffs[kernel] ?? 0, o.maxDiff);
}

/**
 * Conv geometries: [x shape NHWC, filter [KH,KW,Ci,Co], strides, pad]. The filter gradient takes
 * the SIMD route when Co % 8 == 0 (4-channel blocks plus a channel tail), else the patch route when Ci*KH*KW <= 64,
 * else the conv route.
 */
const convCases: Array<[number[], number[], number | [number, number], 'same' | 'valid']> = [];
for (const pad of ['same', 'valid'] as const) {
  for (const stride of [1, 2]) {
    convCases.push([[2, 9, 9, 3], [3, 3, 3, 4], stride, pad]); // patch route, odd size
    convCases.push([[2, 8, 8, 8], [3, 3, 8, 5], stride, pad]); // conv route, even size
    convCases.push([[3, 7, 10, 16], [3, 3, 16, 6], stride, pad]); // conv route, not square
    convCases.push([[2, 8, 9, 8], [3, 3, 8, 16], stride, pad]); // SIMD route, not square
    convCases.push([[3, 7, 7, 12], [3, 3, 12, 8], stride, pad]); // SIMD route, odd size
    convCases.push([[2, 9, 9, 3], [3, 3, 3, 16], stride, pad]); // SIMD route, RGB input (channel tail only)
    convCases.push([[2, 6, 7, 6], [3, 3, 6, 8], stride, pad]); // SIMD route, one block and a tail
  }
}
convCases.push([[2, 9, 8, 4], [2, 3, 4, 3], [1, 2], 'same']); // uneven filter and strides
convCases.push([[2, 11, 11, 12], [5, 5, 12, 4], 2, 'same']); // big window, conv route
convCases.push([[2, 6, 6, 20], [1, 1, 20, 7], 2, 'valid']); // 1x1 strided, conv route
convCases.push([[2, 9, 8, 4], [2, 3, 4, 8], [1, 2], 'same']); // SIMD route, uneven filter and strides
convCases.push([[2, 11, 11, 12], [5, 5, 12, 8], 2, 'same']); // SIMD route, big window
convCases.push([[2, 6, 6, 20], [1, 1, 20, 16], 2, 'valid']); // SIMD route, 1x1 strided

beforeAll(async () => {
  await initBackend('wasm');
});

afterAll(() => {
  console.log(`max |wasm - cpu| per kernel: ${JSON.stringify(maxDiffs)}`);
});

describe('wasm training kernels match the cpu backend', () => {
  test('the kernels are registered on wasm', () => {
    for (const k of wasmTrainingKernels) expect(tf.getKernel(k.kernelName, 'wasm')?.kernelFunc).toBe(k.kernelFunc);
  });

  test('our SIMD module runs in place on the wasm heap (no operand copies)', async () => {
    await tf.setBackend('wasm');
    const y = tf.conv2d(tf.ones([1, 4, 4, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 8]) as tf.Tensor4D, 1, 'same');
    expect((await y.data())[(1 * 4 + 1) * 8]).toBe(18); // pixel (1,1): 9 taps x 2 channels
    y.dispose();
    expect(registeredHeaps()).toBeGreaterThanOrEqual(1);
    // A 3x3 stride-1 layer (Winograd, with scratch on the heap) forward and backward: no copies.
    const before = copiedRunCount();
    const x = tf.randomNormal([2, 6, 6, 8]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 8, 16]) as tf.Tensor4D;
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf
        .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')
        .square()
        .sum(),
    )([x, w]);
    await Promise.all([dx.data(), dw.data()]);
    expect(copiedRunCount()).toBe(before);
    tf.dispose([x, w, dx, dw]);
  });

  test.each(convCases)('Conv2D x=%j filter=%j strides=%j pad=%s', async (xShape, wShape, strides, pad) => {
    const o = await compare('Conv2D', { x: f32(xShape, 11), filter: f32(wShape, 12) }, {
      strides,
      pad,
      dataFormat: 'NHWC',
      dilations: 1,
      dimRoundingMode: 'floor',
    } as unknown as tf.NamedAttrMap);
    expectClose('Conv2D', o);
  });

  test.each(convCases)('FusedConv2D (bias, linear and relu) x=%j filter=%j strides=%j pad=%s', async (xShape, wShape, strides, pad) => {
    const co = wShape[3];
    for (const activation of ['linear', 'relu']) {
      const o = await compare('FusedConv2D', { x: f32(xShape, 15), filter: f32(wShape, 16), bias: f32([co], 17) }, {
        strides,
        pad,
        dataFormat: 'NHWC',
        dilations: 1,
        dimRoundingMode: 'floor',
        activation,
      } as unknown as tf.NamedAttrMap);
      expectClose('FusedConv2D', o);
    }
  });

  test.each(convCases)('Conv2DBackpropFilter x=%j filter=%j strides=%j pad=%s', async (xShape, wShape, strides, pad) => {
    await tf.setBackend('cpu');
    const dyShape = tf.conv2d(tf.zeros<tf.Rank>(xShape) as tf.Tensor4D, tf.zeros<tf.Rank>(wShape) as tf.Tensor4D, strides, pad).shape;
    const o = await compare('Conv2DBackpropFilter', { x: f32(xShape, 1), dy: f32(dyShape, 2) }, {
      strides,
      pad,
      dataFormat: 'NHWC',
      dimRoundingMode: 'floor',
      filterShape: wShape,
    } as unknown as tf.NamedAttrMap);
    expectClose('Conv2DBackpropFilter', o);
  });

  test.each(convCases)('Conv2DBackpropInput x=%j filter=%j strides=%j pad=%s', async (xShape, wShape, strides, pad) => {
    await tf.setBackend('cpu');
    const dyShape = tf.conv2d(tf.zeros<tf.Rank>(xShape) as tf.Tensor4D, tf.zeros<tf.Rank>(wShape) as tf.Tensor4D, strides, pad).shape;
    const o = await compare('Conv2DBackpropInput', { dy: f32(dyShape, 3), filter: f32(wShape, 4) }, {
      strides,
      pad,
      dataFormat: 'NHWC',
      dimRoundingMode: 'floor',
      inputShape: xShape,
    } as unknown as tf.NamedAttrMap);
    expectClose('Conv2DBackpropInput', o);
  });

  test('FusedConv2D: no bias with relu; elu goes to the stock kernel', async () => {
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1, dimRoundingMode: 'floor' };
    const x = f32([2, 6, 5, 4], 18);
    const filter = f32([3, 3, 4, 8], 19);
    expectClose('FusedConv2D', await compare('FusedConv2D', { x, filter }, { ...attrs, activation: 'relu' }));
    expectClose('FusedConv2D', await compare('FusedConv2D', { x, filter, bias: f32([8], 20) }, { ...attrs, activation: 'elu' }));
  });

  test('explicit (numeric) padding', async () => {
    const attrs = { strides: 1, pad: 1, dataFormat: 'NHWC', filterShape: [3, 3, 8, 4], inputShape: [2, 7, 7, 8] };
    expectClose('Conv2DBackpropFilter', await compare('Conv2DBackpropFilter', { x: f32([2, 7, 7, 8], 5), dy: f32([2, 7, 7, 4], 6) }, attrs));
    expectClose('Conv2DBackpropInput', await compare('Conv2DBackpropInput', { dy: f32([2, 7, 7, 4], 6), filter: f32([3, 3, 8, 4], 7) }, attrs));
    const wide = { ...attrs, pad: 2, dilations: 1, filterShape: [3, 3, 8, 16], inputShape: [2, 7, 7, 8] };
    expectClose('Conv2D', await compare('Conv2D', { x: f32([2, 7, 7, 8], 13), filter: f32([3, 3, 8, 16], 14) }, wide));
    expectClose('Conv2DBackpropFilter', await compare('Conv2DBackpropFilter', { x: f32([2, 7, 7, 8], 5), dy: f32([2, 9, 9, 16], 6) }, wide));
    expectClose('Conv2DBackpropInput', await compare('Conv2DBackpropInput', { dy: f32([2, 9, 9, 16], 6), filter: f32([3, 3, 8, 16], 7) }, wide));
  });

  const matMulCases: Array<[number[], number[], boolean, boolean]> = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[64, 300], [64, 40], true, false], // dense layer's dW = x^T dy
    [[16, 40], [300, 40], false, true], // dense layer's dx = dy W^T (swapped route)
    [[3, 5, 7], [3, 7, 4], false, false], // batched
    [[3, 7, 5], [1, 4, 7], true, true], // batched, b broadcast
    [[2, 2, 6, 5], [2, 2, 6, 4], true, false], // rank 4
  ];
  test.each(matMulCases)('BatchMatMul a=%j b=%j transposeA=%s transposeB=%s', async (aShape, bShape, transposeA, transposeB) => {
    const o = await compare('BatchMatMul', { a: f32(aShape, 8), b: f32(bShape, 9) }, { transposeA, transposeB });
    expectClose('BatchMatMul', o);
  });

  // tfjs-core hands _FusedMatMul rank-3 operands (the stock kernel reads them as such).
  const fusedMatMulCases: Array<[number[], number[], boolean, boolean, string, boolean]> = [
    [[1, 5, 300], [1, 300, 16], false, false, 'linear', true], // dense layer: our kernel
    [[1, 9, 40], [1, 40, 24], false, false, 'relu', true],
    [[1, 6, 20], [1, 20, 8], false, false, 'linear', false], // no bias
    [[1, 6, 20], [1, 20, 10], false, false, 'linear', true], // N % 8 != 0: stock
    [[1, 6, 20], [1, 20, 16], false, false, 'elu', true], // other activation: stock
  ];
  test.each(fusedMatMulCases)(
    '_FusedMatMul a=%j b=%j transposeA=%s transposeB=%s %s bias=%s',
    async (aShape, bShape, transposeA, transposeB, activation, withBias) => {
      const n = transposeB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
      const inputs: Record<string, Spec> = { a: f32(aShape, 22), b: f32(bShape, 23) };
      if (withBias) inputs.bias = f32([n], 24);
      const o = await compare('_FusedMatMul', inputs, { transposeA, transposeB, activation } as unknown as tf.NamedAttrMap);
      expectClose('_FusedMatMul', o);
    },
  );

  const poolCases: Array<[number[], number | [number, number], number | [number, number], 'same' | 'valid']> = [
    [[2, 8, 8, 3], 2, 2, 'valid'],
    [[2, 9, 9, 3], 2, 2, 'valid'], // odd: last row/col unused
    [[2, 9, 9, 5], 2, 2, 'same'],
    [[2, 9, 9, 3], 3, 2, 'same'], // overlapping windows
    [[2, 7, 9, 4], [2, 3], [1, 2], 'valid'], // C % 4 == 0 from here on: the SIMD kernel
    [[2, 9, 9, 8], 2, 2, 'valid'],
    [[2, 9, 9, 8], 3, 2, 'same'], // overlapping windows
    [[3, 6, 7, 12], 3, 1, 'same'],
  ];
  test.each(poolCases)('MaxPoolGrad x=%j filter=%j strides=%j pad=%s (with ties)', async (xShape, filterSize, strides, pad) => {
    await tf.setBackend('cpu');
    const x = f32(xShape, 10, true);
    const y = tf.maxPool(tf.tensor<tf.Rank>(x.values, xShape) as tf.Tensor4D, filterSize, strides, pad);
    const o = await compare(
      'MaxPoolGrad',
      { dy: f32(y.shape, 11), input: x, output: { shape: y.shape, values: y.dataSync() as Float32Array, dtype: 'float32' } },
      { filterSize, strides, pad } as unknown as tf.NamedAttrMap,
    );
    // Overlapping windows add several dy into one dx: cpu sums in double, we in float32.
    expectClose('MaxPoolGrad', o, 1e-7);
  });

  test('MaxPoolGrad: a window of -Infinity sends nothing (both kernels)', async () => {
    for (const c of [3, 4]) {
      const xs = Float32Array.from({ length: 2 * 4 * 4 * c }, (_, i) => (i % 5 === 0 ? 1 : -Infinity));
      const x: Spec = { shape: [2, 4, 4, c], values: xs, dtype: 'float32' };
      await tf.setBackend('cpu');
      const y = tf.maxPool(tf.tensor4d(xs, [2, 4, 4, c]), 2, 2, 'valid');
      const out: Spec = { shape: y.shape, values: y.dataSync() as Float32Array, dtype: 'float32' };
      const o = await compare('MaxPoolGrad', { dy: f32(y.shape, 13), input: x, output: out }, {
        filterSize: 2,
        strides: 2,
        pad: 'valid',
      } as unknown as tf.NamedAttrMap);
      expectClose('MaxPoolGrad', o, 1e-7);
    }
  });

  const sumCases: Array<[number[], number[], boolean]> = [
    [[64, 9, 9, 12], [0, 1, 2], false], // conv bias gradient, C % 4 == 0
    [[4, 5, 6, 7], [0, 1, 2], false], // bias gradient: leading axes
    [[4, 5, 6, 7], [0, 1, 2], true],
    [[6, 7], [0], false],
    [[4, 5, 6, 7], [1, 2], false], // not leading: stock kernel
    [[4, 5, 6, 7], [3], true],
  ];
  test.each(sumCases)('Sum x=%j axis=%j keepDims=%s', async (shape, axis, keepDims) => {
    expectClose('Sum', await compare('Sum', { x: f32(shape, 12) }, { axis, keepDims }));
  });

  test('Identity shares its input buffer and outlives the input', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const before = tf.backend().numDataIds();
    const y = tf.engine().runKernel('Identity', { x }, {}) as tf.Tensor;
    expect(tf.backend().numDataIds()).toBe(before); // no new buffer
    x.dispose();
    expect(Array.from(await y.data())).toEqual([1, 2, 3, 4]);
    y.dispose();
    expect(tf.backend().numDataIds()).toBe(before - 1);
  });

  test('Sum of int32 goes to the stock kernel and stays exact', async () => {
    const x: Spec = { shape: [3, 4], values: Int32Array.from({ length: 12 }, (_, i) => i * 7 - 30), dtype: 'int32' };
    expect((await compare('Sum', { x }, { axis: [0], keepDims: false })).maxDiff).toBe(0);
  });

  const transposeCases: Array<[number[], number[]]> = [
    [
      [4, 5, 6, 7],
      [3, 1, 2, 0],
    ], // conv filter gradient's x layout
    [
      [4, 5, 6, 7],
      [1, 2, 0, 3],
    ],
    [
      [70, 90],
      [1, 0],
    ], // more than one tile
    [
      [2, 1, 3, 1, 5],
      [4, 2, 0, 3, 1],
    ], // size-1 axes
    [
      [3, 4, 5, 6, 7],
      [4, 0, 3, 1, 2],
    ],
  ];
  test('Keras RMSprop runs as one kernel on wasm, bit-identical to the tensor ops on cpu', async () => {
    // 4099 floats: the SIMD loop and its scalar tail; several steps so the accumulator matters.
    const run = async (backend: string): Promise<{ value: Float32Array; acc: Float32Array; kernels: string[] }> => {
      await tf.setBackend(backend);
      const v = tf.variable(tf.tensor(values([4099], 31)));
      const opt = createOptimizer({ type: 'rmsprop', lr: 0.003, rho: 0.9, epsilon: 1e-7 });
      const grads = [32, 33, 34].map((seed) => tf.tensor(values([4099], seed)));
      const profile = await tf.profile(() => grads.forEach((g) => opt.applyGradients({ [v.name]: g })));
      const [, acc] = await opt.getWeights();
      const out = { value: (await v.data()) as Float32Array, acc: (await acc!.tensor.data()) as Float32Array, kernels: profile.kernels.map((k) => k.name) };
      tf.dispose([v, ...grads]);
      opt.dispose();
      return out;
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    expect(wasm.kernels.filter((k) => k === 'KerasRMSprop')).toHaveLength(3);
    expect(cpu.kernels).not.toContain('KerasRMSprop');
    expect(Array.from(wasm.value)).toEqual(Array.from(cpu.value));
    expect(Array.from(wasm.acc)).toEqual(Array.from(cpu.acc));
  });

  test.each(transposeCases)('Transpose x=%j perm=%j', async (shape, perm) => {
    expect((await compare('Transpose', { x: f32(shape, 13) }, { perm })).maxDiff).toBe(0);
    const ints: Spec = { shape, values: Int32Array.from(values(shape, 14), (v) => Math.round(v * 1000)), dtype: 'int32' };
    expect((await compare('Transpose', { x: ints }, { perm })).maxDiff).toBe(0);
  });
});

describe('a conv model on wasm', () => {
  /** Conv (same, stride 1) -> conv (valid, stride 2) -> max pool -> dense, seeded initialisers. */
  function smallConvNet(): tf.LayersModel {
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    return tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.conv2d({ filters: 12, kernelSize: 3, strides: 2, activation: 'relu', kernelInitializer: init(2) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(3) }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(4) }),
      ],
    });
  }

  async function gradients(backend: string, x: Float32Array, y: Float32Array, n: number): Promise<{ loss: number; grads: Float32Array[] }> {
    await tf.setBackend(backend);
    const model = smallConvNet();
    const xs = tf.tensor4d(x, [n, 32, 32, 3]);
    const ys = tf.tensor2d(y, [n, 10]);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.metrics.categoricalCrossentropy(ys, model.apply(xs) as tf.Tensor)) as tf.Scalar, vars);
    const out = { loss: (await value.data())[0], grads: await Promise.all(vars.map(async (v) => (await grads[v.name].data()) as Float32Array)) };
    tf.dispose([xs, ys, value, ...Object.values(grads)]);
    model.dispose();
    return out;
  }

  test('tf.variableGrads of the loss match cpu on real CIFAR images', async () => {
    const { train } = await loadRealCifar(2, 1);
    const n = train.labels.length;
    const x = Float32Array.from(train.pixels, (p) => p / 255);
    const y = new Float32Array(n * 10);
    train.labels.forEach((c, i) => (y[i * 10 + c] = 1));

    const cpu = await gradients('cpu', x, y, n);
    const wasm = await gradients('wasm', x, y, n);
    expect(Math.abs(cpu.loss - wasm.loss)).toBeLessThan(1e-5);
    let worst = 0;
    cpu.grads.forEach((g, i) => {
      const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale).toBeGreaterThan(0); // a gradient that is all zeros would prove nothing
      const diff = g.reduce((m, v, j) => Math.max(m, Math.abs(v - wasm.grads[i][j])), 0);
      worst = Math.max(worst, diff / scale);
      expect(diff).toBeLessThanOrEqual(1e-4 * scale);
    });
    console.log(`model gradients on ${n} images: loss cpu ${cpu.loss} wasm ${wasm.loss}, worst max|diff|/max|grad| ${worst.toExponential(2)}`);
  });
});
