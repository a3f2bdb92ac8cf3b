// The native path (oneDNN kernels on the wasm heap) against the cpu backend, kernel by kernel and
// through gradients, plus a short training run and the `auto` fallback when the addon is hidden.
// Where the addon is not built the suite is skipped, unless REQUIRE_NATIVE is set (CI sets it),
// where a missing addon must fail rather than pass quietly.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { initBackend, resolveBackend } from '../lib/tf/backend.js';
import { NATIVE_KERNEL_NAMES, nativeRunCount } from '../lib/tf/kernels/native.js';
import { wasmTrainingKernels } from '../lib/tf/kernels/register.js';
import { loadNativeAddon, resetNativeAddonForTests } from '../lib/tf/native-addon.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TINY_MODEL, useToyTraining } from './helpers/toy-training.js';

const available = loadNativeAddon().addon !== undefined || Boolean(process.env.REQUIRE_NATIVE);
const describeNative = available ? describe : describe.skip;

/** Deterministic values in [-1, 1). */
function values(shape: number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = seed * 2654435761 + 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = (s / 2147483648) * 2 - 1;
  }
  return out;
}

interface Outcome {
  maxDiff: number;
  scale: number;
  shapesMatch: boolean;
  nativeRuns: number;
}

/** Runs `f` on fresh tensors on cpu and on the native path; compares every output. */
async function compare(inputs: Array<{ shape: number[]; seed: number }>, f: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[]): Promise<Outcome> {
  const results: Record<string, { shapes: number[][]; data: Float32Array[] }> = {};
  let nativeRuns = 0;
  for (const backend of ['cpu', 'native']) {
    await tf.setBackend(backend === 'native' ? 'wasm' : 'cpu');
    const before = tf.backend().numDataIds();
    const runsBefore = nativeRunCount();
    const xs = inputs.map((i) => tf.tensor(values(i.shape, i.seed), i.shape));
    const out = tf.tidy(() => f(...xs)); // intermediates of f freed
    const outs = Array.isArray(out) ? out : [out];
    results[backend] = { shapes: outs.map((o) => o.shape), data: await Promise.all(outs.map(async (o) => (await o.data()) as Float32Array)) };
    tf.dispose([...xs, ...outs]);
    expect(tf.backend().numDataIds()).toBe(before);
    if (backend === 'native') nativeRuns = nativeRunCount() - runsBefore;
  }
  let maxDiff = 0;
  let scale = 0;
  results.cpu.data.forEach((ref, j) => {
    const got = results.native.data[j];
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
  });
  const shapesMatch = JSON.stringify(results.cpu.shapes) === JSON.stringify(results.native.shapes);
  return { maxDiff, scale, shapesMatch, nativeRuns };
}

const maxDiffs: Record<string, number> = {};

/** float32 sums of up to a few thousand terms in another order: a few ulps of the result's scale per term. */
function expectClose(label: string, o: Outcome, minNativeRuns = 1): void {
  expect(o.shapesMatch).toBe(true);
  expect(o.maxDiff).toBeLessThanOrEqual(2e-5 * Math.max(1, o.scale));
  expect(o.nativeRuns).toBeGreaterThanOrEqual(minNativeRuns);
  maxDiffs[label] = Math.max(maxDiffs[label] ?? 0, o.maxDiff);
}

type Stride = number | [number, number];
/** [x NHWC, filter [KH,KW,Ci,Co], strides, pad]: odd and even sizes, not square, 1x1, 5x5, RGB input. */
const convCases: Array<[number[], number[], Stride, 'same' | 'valid']> = [];
for (const pad of ['same', 'valid'] as const) {
  for (const stride of [1, 2]) {
    convCases.push([[2, 9, 9, 3], [3, 3, 3, 4], stride, pad]);
    convCases.push([[2, 8, 8, 8], [3, 3, 8, 5], stride, pad]);
    convCases.push([[3, 7, 10, 16], [3, 3, 16, 6], stride, pad]);
    convCases.push([[2, 8, 9, 8], [3, 3, 8, 16], stride, pad]);
    convCases.push([[2, 6, 7, 6], [3, 3, 6, 8], stride, pad]);
  }
}
convCases.push([[2, 9, 8, 4], [2, 3, 4, 3], [1, 2], 'same']);
convCases.push([[2, 11, 11, 12], [5, 5, 12, 4], 2, 'same']);
convCases.push([[2, 6, 6, 20], [1, 1, 20, 7], 2, 'valid']);
convCases.push([[2, 10, 10, 16], [3, 3, 16, 32], 1, 'same']); // wider channels, as in the seed model

const asX = (t: tf.Tensor) => t as tf.Tensor4D;

beforeAll(async () => {
  if (available) await initBackend('native');
});

afterAll(async () => {
  console.log(`max |native - cpu| per kernel: ${JSON.stringify(maxDiffs)}`);
  await tf.setBackend('cpu');
});

describeNative('native kernels match the cpu backend', () => {
  test('initBackend(native) puts the oneDNN kernels on the wasm backend and says so', async () => {
    const info = await initBackend('native');
    expect(info.name).toBe('native');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.native?.kernels.sort()).toEqual([...NATIVE_KERNEL_NAMES].sort());
    expect(info.native?.threads).toBeGreaterThanOrEqual(1);
    expect(Object.keys(info.versions)).toEqual(expect.arrayContaining(['native-kernels', 'onednn', '@tensorflow/tfjs-backend-wasm']));
  });

  test.each(convCases)('Conv2D forward and both gradients x=%j filter=%j strides=%j pad=%s', async (xShape, wShape, strides, pad) => {
    const conv = (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(asX(x), asX(w), strides, pad);
    expectClose(
      'Conv2D',
      await compare(
        [
          { shape: xShape, seed: 1 },
          { shape: wShape, seed: 2 },
        ],
        conv,
      ),
    );
    // The gradient of sum(conv * r) for a fixed r: dx and dw are Conv2DBackpropInput / Filter of r.
    const grads = (x: tf.Tensor, w: tf.Tensor) => {
      const y = conv(x, w);
      const r = tf.tensor(values(y.shape, 3), y.shape);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => conv(a, b).mul(r).sum())([x, w]);
      tf.dispose([y, r]);
      return g;
    };
    expectClose(
      'Conv2D gradients',
      await compare(
        [
          { shape: xShape, seed: 1 },
          { shape: wShape, seed: 2 },
        ],
        grads,
      ),
      2,
    );
  });

  test.each([
    ['relu', true],
    ['linear', true],
    ['relu', false],
  ] as const)('FusedConv2D activation=%s bias=%s, forward and gradients', async (activation, withBias) => {
    const xShape = [3, 9, 7, 5];
    const wShape = [3, 3, 5, 8];
    const fused = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      tf.fused.conv2d({ x: asX(x), filter: asX(w), strides: 1, pad: 'same', bias: withBias ? b : undefined, activation });
    const inputs = [
      { shape: xShape, seed: 4 },
      { shape: wShape, seed: 5 },
      { shape: [8], seed: 6 },
    ];
    expectClose('FusedConv2D', await compare(inputs, fused));
    // With no bias the bias input takes no part: differentiate by x and the filter only.
    const grads = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      withBias
        ? tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => fused(a, c, d).square().sum())([x, w, b])
        : tf.grads((a: tf.Tensor, c: tf.Tensor) => fused(a, c, b).square().sum())([x, w]);
    expectClose('FusedConv2D gradients', await compare(inputs, grads), 2);
  });

  test('a dilated convolution forward', async () => {
    const conv = (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(asX(x), asX(w), 1, 'same', 'NHWC', 2);
    expectClose(
      'Conv2D dilated',
      await compare(
        [
          { shape: [2, 10, 9, 4], seed: 7 },
          { shape: [3, 3, 4, 6], seed: 8 },
        ],
        conv,
      ),
    );
  });

  test.each([
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[4, 5, 7], [4, 7, 3], false, false],
    [[4, 7, 5], [1, 3, 7], true, true],
    [[1, 33, 17], [2, 17, 9], false, false],
  ] as const)('BatchMatMul a=%j b=%j transposeA=%s transposeB=%s', async (aShape, bShape, tA, tB) => {
    const mm = (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b, tA, tB);
    expectClose(
      'BatchMatMul',
      await compare(
        [
          { shape: [...aShape], seed: 9 },
          { shape: [...bShape], seed: 10 },
        ],
        mm,
      ),
    );
  });

  test.each(['relu', 'linear'] as const)('_FusedMatMul (dense layer) activation=%s, forward and gradients', async (activation) => {
    const dense = (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) => tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation });
    const inputs = [
      { shape: [6, 50], seed: 11 },
      { shape: [50, 13], seed: 12 },
      { shape: [13], seed: 13 },
    ];
    expectClose('_FusedMatMul', await compare(inputs, dense));
    const grads = (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
      tf.grads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => dense(x, y, z).square().sum())([a, b, bias]);
    expectClose('_FusedMatMul gradients', await compare(inputs, grads), 2);
  });

  // The ops between the convolutions (native-ops.ts). Shapes above 32768 elements take the
  // multi-threaded path, smaller ones the calling thread; odd sizes leave ragged tails.
  const opShapes: Array<[number[]]> = [[[3, 5, 7, 3]], [[4, 33, 17, 40]]];

  test.each(opShapes)('Relu forward and its gradient (Step x Multiply) x=%j', async (shape) => {
    expectClose('Relu', await compare([{ shape, seed: 30 }], (x) => tf.relu(x)));
    const grad = (x: tf.Tensor) => {
      const r = tf.tensor(values(x.shape, 31), x.shape);
      const g = tf.grad((a: tf.Tensor) => tf.relu(a).mul(r).sum())(x);
      r.dispose();
      return g;
    };
    expectClose('Relu gradient', await compare([{ shape, seed: 30 }], grad), 2);
    expectClose('Step', await compare([{ shape, seed: 32 }], (x) => tf.step(x, 0.25)));
    expectClose('Floor', await compare([{ shape, seed: 33 }], (x) => tf.floor(x.mul(3))));
  });

  test.each([
    [
      [4, 33, 17, 40],
      [4, 33, 17, 40],
    ],
    [[4, 33, 17, 40], [40]],
    [[40], [4, 33, 17, 40]],
    [[4, 33, 17, 40], []],
    [[], [3, 5, 7]],
    [
      [3, 5, 7],
      [1, 5, 7],
    ],
    [
      [6, 5],
      [6, 5],
    ],
  ])('Add, Sub, Multiply, RealDiv a=%j b=%j', async (aShape, bShape) => {
    const inputs = [
      { shape: aShape, seed: 34 },
      { shape: bShape, seed: 35 },
    ];
    expectClose('Add', await compare(inputs, (a, b) => tf.add(a, b)));
    expectClose('Sub', await compare(inputs, (a, b) => tf.sub(a, b)));
    expectClose('Multiply', await compare(inputs, (a, b) => tf.mul(a, b)));
    // Away from zero, so the quotients stay finite and comparable.
    expectClose('RealDiv', await compare(inputs, (a, b) => tf.div(a, tf.abs(b).add(0.5))));
  });

  test('broadcasts and dtypes the native ops leave to wasm still agree', async () => {
    const runs = nativeRunCount();
    const column = await compare(
      [
        { shape: [6, 1], seed: 36 },
        { shape: [6, 5], seed: 37 },
      ],
      (a, b) => tf.mul(a, b),
    );
    expect(column.shapesMatch).toBe(true);
    expect(column.maxDiff).toBe(0);
    const ints = await compare([{ shape: [5, 7], seed: 38 }], (x) => tf.add(x.mul(10).toInt(), tf.scalar(3, 'int32')).toFloat());
    expect(ints.shapesMatch).toBe(true);
    expect(ints.maxDiff).toBe(0);
    expect(nativeRunCount()).toBeGreaterThanOrEqual(runs);
  });

  test('Cast float32 to float32 shares the buffer; other casts still convert', async () => {
    expectClose('Cast', await compare([{ shape: [3, 4], seed: 39 }], (x) => tf.cast(x, 'float32').add(1)));
    const ints = await compare([{ shape: [3, 4], seed: 40 }], (x) => tf.cast(tf.cast(x.mul(5), 'int32'), 'float32'));
    expect(ints.maxDiff).toBe(0);
  });

  test.each([
    [[4, 33, 17, 40], [0, 1, 2], false],
    [[4, 33, 17, 40], [0, 1, 2], true],
    [[7, 13], [0], false],
    [[1, 128, 10], [0, 1], false],
  ] as const)('Sum over leading axes (bias gradients) x=%j axes=%j keepDims=%s', async (shape, axes, keepDims) => {
    expectClose('Sum', await compare([{ shape: [...shape], seed: 41 }], (x) => tf.sum(x, [...axes], keepDims)));
  });

  test('Sum over other axes goes to wasm and agrees', async () => {
    const o = await compare([{ shape: [4, 6, 5], seed: 42 }], (x) => tf.sum(x, [1]));
    expect(o.shapesMatch).toBe(true);
    expect(o.maxDiff).toBeLessThanOrEqual(1e-5);
  });

  type Pool = [number[], [number, number], Stride, 'same' | 'valid'];
  const poolCases: Pool[] = [
    [[4, 32, 32, 32], [2, 2], 2, 'valid'], // the seed model's pools
    [[4, 14, 14, 64], [2, 2], 2, 'valid'],
    [[3, 9, 7, 5], [2, 2], 2, 'valid'], // odd sizes: a row and a column no window reads
    [[3, 9, 7, 5], [2, 2], 2, 'same'],
    [[2, 10, 11, 6], [3, 3], 2, 'same'],
    [[2, 10, 11, 6], [3, 3], 1, 'same'], // overlapping windows
    [[2, 10, 11, 6], [3, 3], 1, 'valid'],
    [[2, 9, 12, 3], [2, 3], [1, 2], 'valid'],
    [[2, 8, 8, 4], [3, 2], [2, 1], 'same'],
  ];

  test.each(poolCases)('MaxPool forward and gradient x=%j filter=%j strides=%j pad=%s', async (shape, filter, strides, pad) => {
    const pool = (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, filter, strides, pad);
    expectClose('MaxPool', await compare([{ shape, seed: 43 }], pool));
    const grad = (x: tf.Tensor) => {
      const y = pool(x);
      const r = tf.tensor(values(y.shape, 44), y.shape);
      const g = tf.grad((a: tf.Tensor) => pool(a).mul(r).sum())(x);
      tf.dispose([y, r]);
      return g;
    };
    expectClose('MaxPool gradient', await compare([{ shape, seed: 43 }], grad), 2);
    // Ties: values on a coarse grid, so windows hold equal maxima; the first one takes the gradient.
    const tied = (x: tf.Tensor) => {
      const q = tf.round(x.mul(1.5));
      const g = grad(q);
      q.dispose();
      return g;
    };
    expectClose('MaxPool gradient, ties', await compare([{ shape, seed: 45 }], tied), 2);
  });

  test('repeats bit for bit: the same inputs give the same forward and gradients', async () => {
    await initBackend('native');
    const x = tf.tensor(values([8, 12, 12, 16], 21), [8, 12, 12, 16]) as tf.Tensor4D;
    const w = tf.tensor(values([3, 3, 16, 32], 22), [3, 3, 16, 32]) as tf.Tensor4D;
    const run = async () => {
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(asX(a), asX(b), 1, 'same').square().sum())([x, w]);
      const out = [await dx.data(), await dw.data()];
      tf.dispose([dx, dw]);
      return out;
    };
    const first = await run();
    const second = await run();
    const bytes = (a: tf.TypedArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    expect(bytes(second[0]).equals(bytes(first[0]))).toBe(true);
    expect(bytes(second[1]).equals(bytes(first[1]))).toBe(true);
    tf.dispose([x, w]);
  });

  test('a short training run on the native path lowers the loss', async () => {
    await initBackend('native');
    const runsBefore = nativeRunCount();
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 3], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu', kernelInitializer: init(2) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: init(3) }),
        tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(4) }),
      ],
    });
    model.compile({ optimizer: tf.train.rmsprop(1e-3), loss: 'categoricalCrossentropy' });
    // Four classes told apart by which quadrant is bright.
    const n = 32;
    const x = tf.tidy(() => {
      const labels = Array.from({ length: n }, (_, i) => i % 4);
      const imgs = labels.map((l) => {
        const img = new Float32Array(12 * 12 * 3);
        for (let r = 0; r < 12; r++)
          for (let c = 0; c < 12; c++) {
            const q = (r < 6 ? 0 : 2) + (c < 6 ? 0 : 1);
            for (let ch = 0; ch < 3; ch++) img[(r * 12 + c) * 3 + ch] = (q === l ? 1 : 0) + 0.1 * Math.sin(r * 7 + c * 3 + ch);
          }
        return tf.tensor3d(img, [12, 12, 3]);
      });
      return tf.stack(imgs);
    });
    const y = tf
      .oneHot(
        tf.tensor1d(
          Array.from({ length: n }, (_, i) => i % 4),
          'int32',
        ),
        4,
      )
      .toFloat();
    const first = Number(await model.trainOnBatch(x, y));
    let last = first;
    for (let i = 0; i < 15; i++) last = Number(await model.trainOnBatch(x, y));
    expect(Number.isFinite(first)).toBe(true);
    expect(last).toBeLessThan(first * 0.7);
    expect(nativeRunCount() - runsBefore).toBeGreaterThan(16 * 4);
    tf.dispose([x, y]);
    model.dispose();
  });
});

describe('backend auto without the addon', () => {
  test('falls back to wasm and says why, in one line', async () => {
    const saved = process.env.PIPELINE_NATIVE_ADDON;
    process.env.PIPELINE_NATIVE_ADDON = '/nonexistent/dnnl_kernels.node';
    resetNativeAddonForTests();
    try {
      const planned = resolveBackend('auto');
      expect(planned.name).not.toBe('native');
      const info = await initBackend('auto');
      expect(info.name).toBe(planned.name);
      expect(['tensorflow', 'wasm']).toContain(info.name);
      expect(info.fallbacks).toHaveLength(1);
      expect(info.fallbacks?.[0]).toMatch(/^native backend unavailable: not built \(\/nonexistent\/dnnl_kernels\.node missing: .*\); using the next backend$/);
      // Plain wasm again: none of the native kernels stays registered.
      if (info.name === 'wasm') {
        const wasmConv = wasmTrainingKernels.find((k) => k.kernelName === 'Conv2D');
        expect(tf.getKernel('Conv2D', 'wasm')?.kernelFunc).toBe(wasmConv?.kernelFunc);
      }
    } finally {
      if (saved === undefined) delete process.env.PIPELINE_NATIVE_ADDON;
      else process.env.PIPELINE_NATIVE_ADDON = saved;
      resetNativeAddonForTests();
    }
  });

  test('an explicit `native` where the addon does not load is an error that says why', async () => {
    process.env.PIPELINE_NATIVE = 'off';
    resetNativeAddonForTests();
    try {
      await expect(initBackend('native')).rejects.toThrow(/native backend unavailable: PIPELINE_NATIVE=off/);
    } finally {
      delete process.env.PIPELINE_NATIVE;
      resetNativeAddonForTests();
    }
  });
});

describeNative('the train stage on the native path (toy data)', () => {
  const toy = useToyTraining('native-train-', { model: TINY_MODEL, batch_size: 32, epochs: 3, seed: 7 });
  const readJson = async (path: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;

  test('backend native: train.json records it with oneDNN in the versions, and the loss falls', async () => {
    const lines: string[] = [];
    const log = { info: (m: string) => void lines.push(m), warn: (m: string) => void lines.push(`warn: ${m}`), debug: () => {} };
    const run = await toy.train({ backend: 'native' }, {}, { log });
    const info = await readJson(join(run.outDir, 'train.json'));
    expect(info).toMatchObject({
      backend: 'native',
      requested_backend: 'native',
      versions: { onednn: expect.any(String), 'native-kernels': expect.any(String) },
    });
    const history = (await readJson(join(run.outDir, 'history.json'))) as { loss: number[] };
    expect(history.loss[2]).toBeLessThan(history.loss[0]);
    expect(lines.some((l) => l.startsWith('backend native ('))).toBe(true);
  });

  test('backend auto with the addon hidden: one warning line, then wasm', async () => {
    process.env.PIPELINE_NATIVE_ADDON = '/nonexistent/dnnl_kernels.node';
    resetNativeAddonForTests();
    try {
      if (resolveBackend('auto').name === 'tensorflow') return; // tfjs-node comes first where installed
      const warnings: string[] = [];
      const log = { info: () => {}, warn: (m: string) => void warnings.push(m), debug: () => {} };
      const run = await toy.train({ backend: 'auto', workers: 1, epochs: 1 }, {}, { log });
      expect(warnings.filter((w) => w.startsWith('native backend unavailable'))).toHaveLength(1);
      expect(await readJson(join(run.outDir, 'train.json'))).toMatchObject({ backend: 'wasm', requested_backend: 'auto' });
    } finally {
      delete process.env.PIPELINE_NATIVE_ADDON;
      resetNativeAddonForTests();
    }
  });
});
