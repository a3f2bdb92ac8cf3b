// The training options of the improved recipe (pipelines/improved.yaml): decoupled weight decay,
// label smoothing and per-batch random crop + flip — their math, their determinism, resuming, and
// that a pipeline not using them keeps its cache keys (the default pipeline's in particular).
import { describe, expect, test, beforeAll } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createOptimizer } from '../lib/model/optimizers.js';
import { OptimizerSpec } from '../lib/model/optimizer-spec.js';
import { BatchAugmentSpec } from '../lib/model/batch-augment-spec.js';
import { cropFlipImage, drawCropFlip, fillIndex, smoothLabels, transformedRows } from '../lib/model/batch-augment.js';
import { floatRows } from '../lib/model/data.js';
import { trainKeyParams, TrainParams } from '../stages/train/params.js';
import { LayerSpec, NOTEBOOK_MODEL_KEY } from '../lib/model/spec.js';
import { loadPipeline } from '../engine/config/load.js';
import { builtinKinds } from '../stages/index.js';
import { hashValue } from '../engine/store/hash.js';
import { AbortedError } from '../engine/errors.js';
import { useToyTraining, interruptAfterFirstEpoch } from './helpers/toy-training.js';
import { TINY_MODEL } from './helpers/toy-training.js';

const REPO = resolve(new URL('../..', import.meta.url).pathname);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Runs one optimizer over [kernel (2×2), bias (2)] with fixed gradients; returns both. */
function runSteps(spec: OptimizerSpec, grads: [number[], number[]][], lrs: number[]): [number[], number[]] {
  const opt = createOptimizer(spec);
  const kernel = tf.variable(tf.tensor2d([1, -2, 0.5, 3], [2, 2]));
  const bias = tf.variable(tf.tensor1d([1, -1]));
  grads.forEach(([gk, gb], i) => {
    opt.learningRate = lrs[i]!;
    opt.minimize(() => tf.add(tf.sum(tf.mul(kernel, tf.tensor2d(gk, [2, 2]))), tf.sum(tf.mul(bias, tf.tensor1d(gb)))), false, [kernel, bias]);
  });
  const out: [number[], number[]] = [Array.from(kernel.dataSync()), Array.from(bias.dataSync())];
  tf.dispose([kernel, bias]);
  opt.dispose();
  return out;
}

const closeTo = (a: number[], b: number[], digits = 6) => {
  expect(a).toHaveLength(b.length);
  a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, digits));
};

describe('decoupled weight decay', () => {
  const grads: [number[], number[]][] = [
    [
      [0.3, -1e-4, 2, 0.1],
      [0.5, -0.2],
    ],
    [
      [-0.1, 0.2, 1e-3, 0],
      [0.1, 0.1],
    ],
    [
      [0.05, 0.05, -0.5, 0.2],
      [-0.3, 0],
    ],
  ];
  const lrs = [0.01, 0.005, 0.001];

  test('adam (AdamW): w ← w·(1 − lr·λ), then the Adam step; biases are not decayed', () => {
    const wd = 0.1;
    const spec = OptimizerSpec.parse({ type: 'adam', lr: 0.01, weight_decay: wd });
    const w = [1, -2, 0.5, 3];
    const b = [1, -1];
    const mw = [0, 0, 0, 0],
      vw = [0, 0, 0, 0],
      mb = [0, 0],
      vb = [0, 0];
    grads.forEach(([gk, gb], step) => {
      const t = step + 1;
      const lr = lrs[step]!;
      const lrT = (lr * Math.sqrt(1 - 0.999 ** t)) / (1 - 0.9 ** t);
      const adam = (p: number[], g: number[], m: number[], v: number[], decay: boolean) =>
        g.forEach((gi, i) => {
          if (decay) p[i] = p[i]! * (1 - lr * wd);
          m[i] = 0.9 * m[i]! + 0.1 * gi;
          v[i] = 0.999 * v[i]! + 0.001 * gi * gi;
          p[i] = p[i]! - (lrT * m[i]!) / (Math.sqrt(v[i]!) + 1e-7);
        });
      adam(w, gk, mw, vw, true);
      adam(b, gb, mb, vb, false);
    });
    const [kernel, bias] = runSteps(spec, grads, lrs);
    closeTo(kernel, w);
    closeTo(bias, b);
    // The decay is visible: without it the kernel ends elsewhere, the bias in the same place.
    const [plainKernel, plainBias] = runSteps(OptimizerSpec.parse({ type: 'adam', lr: 0.01 }), grads, lrs);
    expect(Math.max(...plainKernel.map((v, i) => Math.abs(v - kernel[i]!)))).toBeGreaterThan(1e-4);
    expect(plainBias).toEqual(bias);
  });

  test('sgd and rmsprop take it too; weight_decay 0 is bit-identical to none', () => {
    const sgd = runSteps(OptimizerSpec.parse({ type: 'sgd', lr: 0.1, weight_decay: 0.5 }), grads, lrs)[0];
    const w = [1, -2, 0.5, 3];
    grads.forEach(([gk], step) => gk.forEach((g, i) => (w[i] = w[i]! * (1 - lrs[step]! * 0.5) - lrs[step]! * g)));
    closeTo(sgd, w);
    for (const type of ['rmsprop', 'adam', 'sgd'] as const) {
      const none = runSteps(OptimizerSpec.parse({ type }), grads, lrs);
      expect(runSteps(OptimizerSpec.parse({ type, weight_decay: 0 }), grads, lrs)).toEqual(none);
      expect(runSteps(OptimizerSpec.parse({ type, weight_decay: 0.01 }), grads, lrs)[0]).not.toEqual(none[0]);
    }
  });

  test('rejects a negative or ≥ 1 decay', () => {
    expect(() => OptimizerSpec.parse({ type: 'adam', weight_decay: -0.1 })).toThrow();
    expect(() => OptimizerSpec.parse({ type: 'adam', weight_decay: 1 })).toThrow();
  });
});

describe('random crop from a padded image, horizontal flip', () => {
  test('fill modes follow scipy.ndimage (as the augment stage): nearest, reflect, wrap, constant', () => {
    const around = (mode: Parameters<typeof fillIndex>[2]) => [-5, -4, -3, -2, -1, 0, 3, 4, 5, 6, 7, 8].map((i) => fillIndex(i, 4, mode));
    expect(around('nearest')).toEqual([0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3]);
    // d c b a | a b c d | d c b a (the edge pixel repeats: numpy's "symmetric")
    expect(around('reflect')).toEqual([3, 3, 2, 1, 0, 0, 3, 3, 2, 1, 0, 0]);
    expect(around('wrap')).toEqual([3, 0, 1, 2, 3, 0, 3, 0, 1, 2, 3, 0]);
    expect(around('constant')).toEqual([-1, -1, -1, -1, -1, 0, 3, -1, -1, -1, -1, -1]);
  });

  test('out(y, x) = in(y + dy, x + dx), mirrored when flipped, padding filled', () => {
    // A 3×4 image with 2 channels: channel 0 = 10·y + x, channel 1 = its negative.
    const h = 3,
      w = 4,
      c = 2;
    const src = new Float32Array(h * w * c);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        src[(y * w + x) * c] = 10 * y + x;
        src[(y * w + x) * c + 1] = -(10 * y + x);
      }
    const channel0 = (dst: Float32Array) => Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => dst[(y * w + x) * c]));
    const out = (dy: number, dx: number, flip: boolean, mode: Parameters<typeof fillIndex>[2]) => {
      const dst = new Float32Array(src.length + 2);
      cropFlipImage(src, 0, dst, 2, [h, w, c], { dy, dx, flip }, mode, -7);
      expect(Array.from(dst.subarray(0, 2))).toEqual([0, 0]); // nothing written before `to`
      const img = dst.subarray(2);
      for (let i = 0; i < img.length; i += 2) expect(img[i + 1]).toBe(img[i] === -7 ? -7 : -img[i]!);
      return channel0(img);
    };
    expect(out(0, 0, false, 'reflect')).toEqual([
      [0, 1, 2, 3],
      [10, 11, 12, 13],
      [20, 21, 22, 23],
    ]);
    expect(out(1, -2, false, 'constant')).toEqual([
      [-7, -7, 10, 11],
      [-7, -7, 20, 21],
      [-7, -7, -7, -7],
    ]);
    expect(out(1, -2, false, 'reflect')).toEqual([
      [11, 10, 10, 11],
      [21, 20, 20, 21],
      [21, 20, 20, 21],
    ]);
    expect(out(0, 0, true, 'reflect')).toEqual([
      [3, 2, 1, 0],
      [13, 12, 11, 10],
      [23, 22, 21, 20],
    ]);
    // Flip, then shift: the mirrored image moved by dx.
    expect(out(-1, 1, true, 'nearest')).toEqual([
      [3, 3, 2, 1],
      [3, 3, 2, 1],
      [13, 13, 12, 11],
    ]);
  });

  test('draws depend only on (seed, epoch, row), cover every shift in −p..p, flip about half the time', () => {
    const spec = BatchAugmentSpec.parse({ crop_padding: 2 });
    expect(spec).toEqual({ crop_padding: 2, fill_mode: 'reflect', cval: 0, horizontal_flip: true });
    expect(drawCropFlip(1, 3, 17, spec)).toEqual(drawCropFlip(1, 3, 17, spec));
    const draws = Array.from({ length: 2000 }, (_, row) => drawCropFlip(1, 0, row, spec));
    expect(new Set(draws.map((d) => d.dy))).toEqual(new Set([-2, -1, 0, 1, 2]));
    expect(new Set(draws.map((d) => d.dx))).toEqual(new Set([-2, -1, 0, 1, 2]));
    const flips = draws.filter((d) => d.flip).length;
    expect(flips).toBeGreaterThan(900); // σ ≈ 22 around 1000
    expect(flips).toBeLessThan(1100);
    const otherEpoch = Array.from({ length: 2000 }, (_, row) => drawCropFlip(1, 1, row, spec));
    expect(otherEpoch.filter((d, i) => d.dx === draws[i]!.dx && d.dy === draws[i]!.dy && d.flip === draws[i]!.flip).length).toBeLessThan(200);
    expect(drawCropFlip(1, 0, 5, { ...spec, horizontal_flip: false }).flip).toBe(false);
    expect(drawCropFlip(1, 0, 5, { ...spec, crop_padding: 0 })).toMatchObject({ dy: 0, dx: 0 });
  });

  test('label smoothing: (1 − ε)·y + ε/K, rows still sum to 1', () => {
    const y = new Float32Array([0, 1, 0, 0, 1, 0, 0, 0]);
    smoothLabels(y, 4, 0.1);
    closeTo(Array.from(y), [0.025, 0.925, 0.025, 0.025, 0.925, 0.025, 0.025, 0.025]);
    const z = new Float32Array([0, 1]);
    smoothLabels(z, 2, 0);
    expect(Array.from(z)).toEqual([0, 1]);
  });

  test('a training batch: each row transformed by its own draw, whatever the batch order; prediction inputs untouched', () => {
    const n = 6;
    const x = new Float32Array(n * 4 * 4 * 1).map((_, i) => i);
    const y = new Float32Array(n * 3).map((_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1 : 0));
    const rows = floatRows({ dtype: 'float32', shape: [n, 4, 4, 1], data: x }, { dtype: 'float32', shape: [n, 3], data: y }, 'x');
    const spec = BatchAugmentSpec.parse({ crop_padding: 1, fill_mode: 'constant', cval: -1 });
    const epoch2 = transformedRows(rows, { augment: spec, labelSmoothing: 0.3, seed: 9 }, 2);
    const rowsOf = (order: number[]) => {
      const { x: bx, y: by } = epoch2.batch(order);
      const xs = Array.from(bx.dataSync());
      const ys = Array.from(by.dataSync());
      tf.dispose([bx, by]);
      return new Map(order.map((r, i) => [r, { x: xs.slice(i * 16, i * 16 + 16), y: ys.slice(i * 3, i * 3 + 3) }]));
    };
    const a = rowsOf([0, 1, 2, 3, 4, 5]);
    const b = rowsOf([5, 3, 1]);
    for (const r of [5, 3, 1]) expect(b.get(r)).toEqual(a.get(r));
    for (const r of [0, 1, 2, 3, 4, 5]) {
      const expected = new Float32Array(16);
      cropFlipImage(x, r * 16, expected, 0, [4, 4, 1], drawCropFlip(9, 2, r, spec), 'constant', -1);
      expect(a.get(r)!.x).toEqual(Array.from(expected));
      closeTo(
        a.get(r)!.y,
        [0, 1, 2].map((k) => (k === r % 3 ? 0.7 : 0) + 0.1),
      );
    }
    // Somebody's image actually moved or flipped, and the untransformed rows stay available.
    expect([0, 1, 2, 3, 4, 5].some((r) => a.get(r)!.x.join() !== Array.from(x.subarray(r * 16, r * 16 + 16)).join())).toBe(true);
    const plain = epoch2.inputs([2]);
    expect(Array.from(plain.dataSync())).toEqual(Array.from(x.subarray(32, 48)));
    plain.dispose();
  });
});

describe('cache keys', () => {
  test('options left off (absent, 0) leave the key params as they were; turned on, they enter them', () => {
    const plain = trainKeyParams(TrainParams.parse({ optimizer: { type: 'adam' } }));
    expect(plain).not.toHaveProperty('label_smoothing');
    expect(plain).not.toHaveProperty('batch_augment');
    expect(plain).not.toHaveProperty('workers');
    expect(plain.optimizer).not.toHaveProperty('weight_decay');
    for (const name of ['monitor', 'mode', 'min_delta', 'patience', 'restore_best']) expect(plain).not.toHaveProperty(name);
    const stopping = trainKeyParams(
      TrainParams.parse({ optimizer: { type: 'adam' }, monitor: 'val_acc', mode: 'max', min_delta: 0.01, patience: 3, restore_best: true }),
    );
    expect(stopping).toMatchObject({ monitor: 'val_acc', mode: 'max', min_delta: 0.01, patience: 3, restore_best: true });
    const stoppingOff = TrainParams.parse({ optimizer: { type: 'adam' }, monitor: 'val_loss', mode: 'auto', min_delta: 0, restore_best: false });
    expect(hashValue(trainKeyParams(stoppingOff))).toBe(hashValue(plain));
    const zeros = trainKeyParams(TrainParams.parse({ optimizer: { type: 'adam', weight_decay: 0 }, label_smoothing: 0 }));
    expect(hashValue(zeros)).toBe(hashValue(plain));
    const on = trainKeyParams(TrainParams.parse({ optimizer: { type: 'adam', weight_decay: 0.05 }, label_smoothing: 0.1, batch_augment: {} }));
    expect(on).toMatchObject({
      label_smoothing: 0.1,
      optimizer: { weight_decay: 0.05 },
      batch_augment: { crop_padding: 4, fill_mode: 'reflect', horizontal_flip: true },
    });
  });

  test('the default model keys as the list it was before `units: auto`; a list that says auto keys as it says', () => {
    const model = trainKeyParams(TrainParams.parse({})).model as LayerSpec[];
    expect(model).toEqual(NOTEBOOK_MODEL_KEY.map((l) => LayerSpec.parse(l)));
    expect(model.filter((l) => l.type === 'dense').map((l) => l.type === 'dense' && l.units)).toEqual([512, 10]);
    const auto = trainKeyParams(TrainParams.parse({ model: [{ type: 'flatten' }, { type: 'dense', units: 'auto' }] })).model;
    expect(auto).toEqual([{ type: 'flatten' }, { type: 'dense', units: 'auto', activation: 'linear', use_bias: true }]);
  });

  test("the default pipeline's key params and kind versions are those of the release before these options", async () => {
    // Recorded from the code before weight decay, label smoothing and batch_augment existed
    // (sha256 of the canonical JSON of each stage's key params). The rest of a key (inputs, runtime
    // fingerprint) does not depend on these options. The versions of decode (4: also its own PNG decoder), normalize (2) and
    // augment (2) moved once, on purpose, when datasets became shards (their outputs changed form);
    // their key params did not (decode's shard_mb is layout, not content, and stays out of the key).
    // augment moved once more (3) when its copies became a sharded dataset (same pixels, new form).
    const before: Record<string, [number, string]> = {
      // fetch's key names its layout since archives became packs (layout: auto): one change, on purpose.
      fetch: [1, 'd8c7d6724d95555f41e70c71f303924e1277975a7371792016f7e5f861ad475f'],
      decode: [4, '9b92d1af0ea5a936a249b12bbf9a2e2fb4dee10e615c7368584dda776d1a7e54'],
      normalize: [2, '1767a3ec2cf395428d8b86f56ff5745dd99a5995bde77b76777a94eb0cb09735'],
      train: [1, 'bfbe1a82166c0d033bebc7bd2a81511a7b07dcdca8325379e09d51fde1c7525b'],
      evaluate: [1, 'ca48e2e4aac8a07b99995860353f9dfef4e67d6905df2808e6abe02229d0d889'],
      augment: [3, 'f741c08840b9acd019d03d49850c4c47356a0a7689e423af064d197f75d14ff9'],
      train_aug: [1, '21e4c6875bd7a224cf2d2e87cc26bdad0b806925bee8b945bd39cfb90f99aad4'],
      evaluate_aug: [1, 'ca48e2e4aac8a07b99995860353f9dfef4e67d6905df2808e6abe02229d0d889'],
      report: [1, '29904a08fea810383c17af283f382318e59aee5b7f4aaee0f6ab722e9ab22ff1'],
    };
    const pipeline = await loadPipeline(join(REPO, 'pipeline.yaml'), { kinds: builtinKinds });
    const now: Record<string, [number, string]> = {};
    for (const [name, stage] of pipeline.stages) {
      const kind = builtinKinds.get(stage.kind)!;
      now[name] = [kind.version, hashValue(kind.cacheParams?.(stage.params) ?? stage.params)];
    }
    expect(now).toEqual(before);
  });
});

describe('training with the recipe options (cpu, toy data)', () => {
  const toy = useToyTraining('train-recipe-', { backend: 'cpu', model: TINY_MODEL, batch_size: 32, epochs: 3, seed: 7 });
  const recipe = {
    optimizer: { type: 'adam', lr: 0.003, weight_decay: 0.05 },
    lr_schedule: { type: 'cosine', warmup_epochs: 1 },
    batch_augment: { crop_padding: 1, fill_mode: 'reflect' },
    label_smoothing: 0.1,
  };
  const weights = (run: { outDir: string }) => readFile(join(run.outDir, 'model', 'weights.bin'));

  test('learns; deterministic; differs from plain training; an interrupted run resumes byte-identical', async () => {
    const first = await toy.train(recipe);
    const history = JSON.parse(await readFile(join(first.outDir, 'history.json'), 'utf8')) as { loss: number[]; val_acc: number[] };
    expect(history.loss[2]!).toBeLessThan(history.loss[0]!);
    expect(history.val_acc[2]!).toBeGreaterThan(0.5); // 3 classes: chance is 1/3
    const info = JSON.parse(await readFile(join(first.outDir, 'train.json'), 'utf8')) as Record<string, unknown>;
    expect(info).toMatchObject({
      label_smoothing: 0.1,
      weight_decay: 0.05,
      batch_augment: { crop_padding: 1, fill_mode: 'reflect', cval: 0, horizontal_flip: true },
    });

    expect((await weights(await toy.train(recipe))).equals(await weights(first))).toBe(true);
    const { batch_augment: _b, ...noAugment } = recipe;
    expect((await weights(await toy.train(noAugment))).equals(await weights(first))).toBe(false);

    const { resumeDir, signal, epochs, off } = await interruptAfterFirstEpoch(toy, 'train-recipe-resume-');
    try {
      await expect(toy.train(recipe, {}, { resumeDir, signal })).rejects.toBeInstanceOf(AbortedError);
      const resumed = await toy.train(recipe, {}, { resumeDir });
      expect(epochs).toEqual([1, 2, 3]);
      expect((await weights(resumed)).equals(await weights(first))).toBe(true);
    } finally {
      off();
    }
  }, 600_000); // four cpu trainings: a hang guard for a loaded machine, not a speed check

  test('batch_augment on non-image rows is a clear error', async () => {
    const rows = floatRows(
      { dtype: 'float32', shape: [2, 3], data: new Float32Array(6) },
      { dtype: 'float32', shape: [2, 2], data: new Float32Array(4) },
      'flat',
    );
    expect(() => transformedRows(rows, { augment: BatchAugmentSpec.parse({}), labelSmoothing: 0, seed: 1 }, 0)).toThrow(
      /batch_augment needs images \[H, W, C\]/,
    );
  });
});
