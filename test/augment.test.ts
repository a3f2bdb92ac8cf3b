// The augment stage: transform exactness (known answers and a plain Keras/scipy reference),
// the random draws, and the stage on small real CIFAR data (outputs, determinism across pool
// sizes and chunkings, abort, bad inputs).
import { writeDataset } from './helpers/fake-normalize.js';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import type { ProgressReporter, StageContext } from '../engine/contract.js';
import { AbortedError, StageError } from '../engine/errors.js';
import { augmentRows } from '../lib/augment/chunk.js';
import { randomBits } from '../lib/augment/rng.js';
import { affineFor, drawTransform, type AugmentConfig, type FillMode, type TransformParams } from '../lib/augment/transform.js';
import { warpImage } from '../lib/augment/warp.js';
import { readNpy, writeNpy } from '../lib/npy.js';
import { augmentKind, augmentParams, type AugmentParams } from '../stages/augment/augment.js';
import { COPIES_DIR, copyRow, SOURCE_INDEX } from '../lib/augment/copies.js';
import { DatasetReader } from '../lib/dataset/reader.js';
import { cifarSource, extractSubset } from './helpers/dataset.js';
import { dirWriter, fakeInputs, fakeRunHistory, hashingDigestFile, quietLogger, runStage, testPools } from './helpers/stage-context.js';
import { referenceTransform } from './augment-reference.js';

const H = 32;
const W = 32;
const C = 3;
const IMAGE = H * W * C;
const MODES: FillMode[] = ['nearest', 'constant', 'reflect', 'wrap'];

interface Fixture {
  root: string;
  decodeDir: string;
  normalizeDir: string;
  /** Decoded training images [N, 32, 32, 3]. */
  images: Uint8Array;
  n: number;
  labels: Int32Array;
  /** Training rows (a shuffled subset of the images, as normalize makes). */
  index: Int32Array;
  real: boolean;
}

let fx: Fixture;

/** Decodes the first `perClass` training JPEGs of each class (real archive, else generated). */
async function buildFixture(perClass: number): Promise<Fixture> {
  const root = await mkdtemp(join(tmpdir(), 'augment-test-'));
  const source = await cifarSource({ perClassTrain: perClass, perClassTest: 1 });
  const tree = join(root, 'tree');
  await extractSubset(source.archive, tree, perClass, 1);
  const files: string[] = [];
  const labels: number[] = [];
  for (const [label, cls] of (await readdir(join(tree, 'train'))).sort().entries()) {
    for (const f of (await readdir(join(tree, 'train', cls))).sort()) {
      files.push(join(tree, 'train', cls, f));
      labels.push(label);
    }
  }
  const images = new Uint8Array(files.length * IMAGE);
  for (let k = 0; k < files.length; k++) {
    const img = jpeg.decode(await readFile(files[k]!), { useTArray: true, formatAsRGBA: false });
    expect([img.width, img.height]).toEqual([W, H]);
    images.set(img.data, k * IMAGE);
  }
  await rm(tree, { recursive: true });
  // A seeded shuffle of 80% of the rows, like normalize's train_index.
  const order = Array.from({ length: files.length }, (_, k) => k);
  for (let k = order.length - 1; k > 0; k--) {
    const r = randomBits(7, 0, k, 0) % (k + 1);
    [order[k], order[r]] = [order[r]!, order[k]!];
  }
  const index = Int32Array.from(order.slice(0, Math.floor(files.length * 0.8)));
  const decodeDir = join(root, 'decode');
  const normalizeDir = join(root, 'normalize');
  await mkdir(decodeDir, { recursive: true });
  await mkdir(normalizeDir, { recursive: true });
  const shape: [number, number, number] = [H, W, C];
  const classes = [...new Set(labels)].map((l) => `class${l}`);
  const none = { pixels: new Uint8Array(0), labels: new Int32Array(0), shape };
  await writeDataset(join(decodeDir, 'dataset'), { pixels: images, labels: Int32Array.from(labels), shape }, none, classes);
  await writeNpy(join(normalizeDir, 'train_index.npy'), { dtype: 'int32', shape: [index.length], data: index });
  return { root, decodeDir, normalizeDir, images, n: files.length, labels: Int32Array.from(labels), index, real: source.real };
}

const inputs = () => ({
  decode: { kind: 'decode', dir: fx.decodeDir },
  normalize: { kind: 'normalize', dir: fx.normalizeDir },
});

const imageAt = (row: number) => fx.images.subarray(row * IMAGE, (row + 1) * IMAGE);

const identity: TransformParams = { theta: 0, tx: 0, ty: 0, shear: 0, zx: 1, zy: 1, flipHorizontal: false, flipVertical: false };

/** Our warp of one image with fixed parameters. */
function warp(src: Uint8Array, p: TransformParams, mode: FillMode, cval = 0, h = H, w = W, c = C): Uint8Array {
  const dst = new Uint8Array(h * w * c);
  warpImage({ src, srcOffset: 0, dst, dstOffset: 0, height: h, width: w, channels: c }, affineFor(p, h, w), mode, cval, p.flipHorizontal, p.flipVertical);
  return dst;
}

/** Builds an image from a per-pixel function of (row, col, channel). */
function expected(f: (i: number, j: number, k: number) => number): Uint8Array {
  const out = new Uint8Array(IMAGE);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) for (let k = 0; k < C; k++) out[(i * W + j) * C + k] = f(i, j, k);
  return out;
}

const px = (img: Uint8Array, i: number, j: number, k: number) => img[(i * W + j) * C + k]!;

/**
 * Runs the stage on a context we own (for failure paths: runStage leaves its temp dirs behind
 * when the stage rejects). Cleans up whatever happens.
 */
async function runOwnContext(
  rawParams: Record<string, unknown>,
  stageInputs: ReturnType<typeof inputs>,
  hooks: { signal?: AbortSignal; progress?: ProgressReporter; check?: (outDir: string, pools: ReturnType<typeof testPools>) => void } = {},
): Promise<unknown> {
  const outDir = await mkdtemp(join(tmpdir(), 'augment-own-'));
  const pools = testPools();
  const ctx: StageContext<AugmentParams> = {
    stage: 'augment',
    params: augmentParams.parse(rawParams),
    root: fx.root,
    inputs: fakeInputs(stageInputs),
    out: dirWriter(outDir),
    resumeDir: outDir,
    log: quietLogger,
    progress: hooks.progress ?? { start: () => {}, tick: () => {}, update: () => {}, done: () => {} },
    signal: hooks.signal ?? new AbortController().signal,
    workers: pools,
    fingerprint: {},
    digestFile: hashingDigestFile(fx.root),
    runs: fakeRunHistory(),
  };
  try {
    return await augmentKind.run(ctx).then(
      () => null,
      (error: unknown) => error,
    );
  } finally {
    hooks.check?.(outDir, pools);
    await pools.destroy();
    await rm(outDir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  fx = await buildFixture(30);
  if (!fx.real) console.warn('augment tests run on generated images');
});

afterAll(async () => {
  if (fx) await rm(fx.root, { recursive: true, force: true });
});

describe('augment transform: known answers', () => {
  test('rotation by exactly 90° maps output (i, j) to input (j, W-1-i)', () => {
    const src = imageAt(5);
    const out = warp(src, { ...identity, theta: 90 }, 'nearest');
    expect(Buffer.from(out).equals(Buffer.from(expected((i, j, k) => px(src, j, W - 1 - i, k))))).toBe(true);
    // Keras' own 2×2 case (test_matrix_center): a 1 at (0, 1) moves to (0, 0).
    const tiny = warp(Uint8Array.from([0, 1, 0, 0]), { ...identity, theta: 90 }, 'nearest', 0, 2, 2, 1);
    expect([...tiny]).toEqual([1, 0, 0, 0]);
    // -90° turns the other way; 180° reverses both axes.
    const back = warp(src, { ...identity, theta: -90 }, 'nearest');
    expect(Buffer.from(back).equals(Buffer.from(expected((i, j, k) => px(src, H - 1 - j, i, k))))).toBe(true);
    const half = warp(src, { ...identity, theta: 180 }, 'nearest');
    expect(Buffer.from(half).equals(Buffer.from(expected((i, j, k) => px(src, H - 1 - i, W - 1 - j, k))))).toBe(true);
  });

  test('integer shifts: tx moves columns, ty rows, each fill mode fills as scipy does', () => {
    const src = imageAt(11);
    const p = { ...identity, tx: 3, ty: -2 }; // input col = j + 3, input row = i - 2
    const clamp = (v: number, n: number) => Math.min(n - 1, Math.max(0, v));
    const nearest = warp(src, p, 'nearest');
    expect(Buffer.from(nearest).equals(Buffer.from(expected((i, j, k) => px(src, clamp(i - 2, H), clamp(j + 3, W), k))))).toBe(true);

    const constant = warp(src, p, 'constant', 77);
    const inside = (i: number, j: number) => i - 2 >= 0 && j + 3 <= W - 1;
    expect(Buffer.from(constant).equals(Buffer.from(expected((i, j, k) => (inside(i, j) ? px(src, i - 2, j + 3, k) : 77))))).toBe(true);

    // reflect is half-sample symmetric: index -1 → 0, -2 → 1, W → W-1, W+1 → W-2.
    const reflect = warp(src, p, 'reflect');
    const mirror = (v: number, n: number) => (v < 0 ? -v - 1 : v >= n ? 2 * n - v - 1 : v);
    expect(Buffer.from(reflect).equals(Buffer.from(expected((i, j, k) => px(src, mirror(i - 2, H), mirror(j + 3, W), k))))).toBe(true);
    expect(px(reflect, 0, 0, 0)).toBe(px(src, 1, 3, 0)); // row -2 → 1
    expect(px(reflect, 1, 31, 1)).toBe(px(src, 0, 29, 1)); // row -1 → 0, col 34 → 29

    // scipy's 'wrap' has period W-1, not W: col 32 → 1, 33 → 2, 34 → 3; row -1 → 30, -2 → 29.
    const wrap = warp(src, p, 'wrap');
    const period = (v: number, n: number) => (v < 0 ? v + (n - 1) : v > n - 1 ? v - (n - 1) : v);
    expect(Buffer.from(wrap).equals(Buffer.from(expected((i, j, k) => px(src, period(i - 2, H), period(j + 3, W), k))))).toBe(true);
    expect(px(wrap, 0, 29, 2)).toBe(px(src, 29, 1, 2));
    expect(px(wrap, 1, 31, 0)).toBe(px(src, 30, 3, 0));
  });

  test('zoom 1 with no other change is the identity; zoom 2 samples the centre', () => {
    const src = imageAt(17);
    for (const mode of MODES) expect(Buffer.from(warp(src, identity, mode)).equals(Buffer.from(src))).toBe(true);
    // zx = zy = 0.5 (Keras zooms IN for factors < 1): input = c + 0.5·(out - c), c = 15.5.
    // Output (1, 1) → input (8.25, 8.25): bilinear weights 0.75/0.25 on rows and cols 8, 9.
    const zoomed = warp(src, { ...identity, zx: 0.5, zy: 0.5 }, 'nearest');
    const v = (r: number, c: number) => px(src, r, c, 0);
    const want = 0.5625 * v(8, 8) + 0.1875 * v(8, 9) + 0.1875 * v(9, 8) + 0.0625 * v(9, 9);
    expect(px(zoomed, 1, 1, 0)).toBe(Math.floor(want + 0.5));
  });

  test('flips reverse columns (horizontal) and rows (vertical) after the warp', () => {
    const src = imageAt(23);
    const h = warp(src, { ...identity, flipHorizontal: true }, 'nearest');
    expect(Buffer.from(h).equals(Buffer.from(expected((i, j, k) => px(src, i, W - 1 - j, k))))).toBe(true);
    const v = warp(src, { ...identity, flipVertical: true }, 'nearest');
    expect(Buffer.from(v).equals(Buffer.from(expected((i, j, k) => px(src, H - 1 - i, j, k))))).toBe(true);
    // After the warp: shift right by 3 then flip = the flipped image shifted the other way.
    const shiftedThenFlipped = warp(src, { ...identity, tx: 3, flipHorizontal: true }, 'constant', 0);
    const clampOut = (j: number) => (j + 3 <= W - 1 ? px(src, 0, j + 3, 0) : 0);
    for (let j = 0; j < W; j++) expect(px(shiftedThenFlipped, 0, W - 1 - j, 0)).toBe(clampOut(j));
  });
});

describe('augment transform: against a plain Keras + scipy reference', () => {
  const wide: AugmentConfig = {
    rotationRange: 180,
    widthShiftRange: 0.4,
    heightShiftRange: 0.4,
    shearRange: 30,
    zoomRange: [0.5, 1.6],
    horizontalFlip: true,
    verticalFlip: true,
    fillMode: 'nearest',
    cval: 0,
  };

  test.each(MODES)('random parameters, fill %s: max abs difference ≤ 0.5 (uint8 rounding only)', (mode) => {
    let maxDiff = 0;
    let roundMismatches = 0;
    let values = 0;
    const images = 60;
    for (let n = 0; n < images; n++) {
      const src = imageAt(fx.index[n]!);
      const p = drawTransform({ ...wide, fillMode: mode }, 1234, 5, n, H, W);
      const ours = warp(src, p, mode, 90);
      const ref = referenceTransform(src, H, W, C, p, mode, 90);
      for (let k = 0; k < ref.length; k++) {
        const d = Math.abs(ours[k]! - ref[k]!);
        if (d > maxDiff) maxDiff = d;
        if (ours[k] !== Math.floor(ref[k]! + 0.5)) roundMismatches++;
        values++;
      }
    }
    console.log(
      `augment reference (${mode}): ${values} values from ${images} images, max |ours - reference float| = ${maxDiff.toFixed(6)}, ` +
        `values differing from the rounded reference: ${roundMismatches}`,
    );
    expect(maxDiff).toBeLessThanOrEqual(0.5 + 1e-9);
    expect(roundMismatches).toBe(0);
  });

  test('Keras defaults on real images: max abs difference against the float reference', () => {
    const cfg: AugmentConfig = {
      ...wide,
      rotationRange: 40,
      widthShiftRange: 0.2,
      heightShiftRange: 0.2,
      shearRange: 0,
      zoomRange: [0.8, 1.2],
      verticalFlip: false,
    };
    let maxDiff = 0;
    let roundMismatches = 0;
    const rows = fx.index.length;
    const dst = new Uint8Array(rows * IMAGE);
    augmentRows(fx.images, fx.index, dst, 0, 0, rows, 3, 42, { height: H, width: W, channels: C }, cfg);
    for (let n = 0; n < rows; n++) {
      const ref = referenceTransform(imageAt(fx.index[n]!), H, W, C, drawTransform(cfg, 42, 3, n, H, W), 'nearest', 0);
      for (let k = 0; k < IMAGE; k++) {
        maxDiff = Math.max(maxDiff, Math.abs(dst[n * IMAGE + k]! - ref[k]!));
        if (dst[n * IMAGE + k] !== Math.floor(ref[k]! + 0.5)) roundMismatches++;
      }
    }
    console.log(
      `augment reference (notebook defaults, ${rows} images): max |ours - reference float| = ${maxDiff.toFixed(6)}, ` +
        `values differing from the rounded reference: ${roundMismatches} of ${rows * IMAGE}`,
    );
    expect(maxDiff).toBeLessThanOrEqual(0.5 + 1e-9);
    expect(roundMismatches).toBe(0);
  });
});

describe('augment random draws', () => {
  const cfg: AugmentConfig = {
    rotationRange: 40,
    widthShiftRange: 0.2,
    heightShiftRange: 0.1,
    shearRange: 10,
    zoomRange: [0.8, 1.2],
    horizontalFlip: true,
    verticalFlip: false,
    fillMode: 'nearest',
    cval: 0,
  };

  test("follow Keras' ranges and are keyed by (seed, copy, image) only", () => {
    const draws = Array.from({ length: 20000 }, (_, n) => drawTransform(cfg, 9, n % 7, n, H, W));
    const stat = (f: (p: TransformParams) => number) => {
      const v = draws.map(f);
      return { min: Math.min(...v), max: Math.max(...v), mean: v.reduce((a, b) => a + b, 0) / v.length };
    };
    const theta = stat((p) => p.theta);
    expect(theta.min).toBeGreaterThanOrEqual(-40);
    expect(theta.max).toBeLessThan(40);
    expect(theta.min).toBeLessThan(-39.5);
    expect(theta.max).toBeGreaterThan(39.5);
    expect(Math.abs(theta.mean)).toBeLessThan(0.6);
    const tx = stat((p) => p.tx); // height range 0.1 × H
    expect(tx.min).toBeGreaterThanOrEqual(-3.2);
    expect(tx.max).toBeLessThan(3.2);
    expect(tx.max).toBeGreaterThan(3.1);
    const ty = stat((p) => p.ty); // width range 0.2 × W
    expect(ty.max).toBeGreaterThan(6.3);
    expect(ty.max).toBeLessThan(6.4);
    const zoom = stat((p) => p.zx);
    expect(zoom.min).toBeGreaterThanOrEqual(0.8);
    expect(zoom.max).toBeLessThan(1.2);
    expect(Math.abs(zoom.mean - 1)).toBeLessThan(0.005);
    // zx and zy are independent draws.
    expect(draws.filter((p) => p.zx === p.zy).length).toBe(0);
    const flips = draws.filter((p) => p.flipHorizontal).length / draws.length;
    expect(Math.abs(flips - 0.5)).toBeLessThan(0.02);
    expect(draws.some((p) => p.flipVertical)).toBe(false);
    // Pure function of the key: recomputing gives the same draw; changing any part changes it.
    expect(drawTransform(cfg, 9, 3, 100, H, W)).toEqual(drawTransform(cfg, 9, 3, 100, H, W));
    expect(drawTransform(cfg, 9, 3, 100, H, W).theta).not.toBe(drawTransform(cfg, 10, 3, 100, H, W).theta);
    expect(drawTransform(cfg, 9, 3, 100, H, W).theta).not.toBe(drawTransform(cfg, 9, 4, 100, H, W).theta);
    expect(drawTransform(cfg, 9, 3, 100, H, W).theta).not.toBe(drawTransform(cfg, 9, 3, 101, H, W).theta);
    // A range set to zero does not shift the other parameters' streams.
    expect(drawTransform({ ...cfg, rotationRange: 0 }, 9, 3, 100, H, W).zx).toBe(drawTransform(cfg, 9, 3, 100, H, W).zx);
  });
});

describe('augment stage', () => {
  test("params default to the notebook's; pool size and chunking stay out of the cache key", () => {
    const p = augmentParams.parse({});
    expect(p).toMatchObject({
      rotation_range: 40,
      width_shift_range: 0.2,
      height_shift_range: 0.2,
      shear_range: 0,
      zoom_range: 0.2,
      horizontal_flip: true,
      vertical_flip: false,
      fill_mode: 'nearest',
      cval: 0,
      copies: 20,
    });
    const keyed = augmentKind.cacheParams!(augmentParams.parse({ threads: 2, chunk_size: 10 })) as Record<string, unknown>;
    expect(keyed).not.toHaveProperty('threads');
    expect(keyed).not.toHaveProperty('chunk_size');
    expect(keyed).toHaveProperty('seed', 0);
    expect(() => augmentParams.parse({ fill_mode: 'mirror' })).toThrow();
    expect(() => augmentParams.parse({ rotation: 40 })).toThrow();
    expect(() => augmentParams.parse({ zoom_range: [1.2, 0.8] })).toThrow(/low <= high/);
    expect(augmentParams.parse({ zoom_range: [0.9, 1.1] }).zoom_range).toEqual([0.9, 1.1]);
  });

  test('writes the copies as one uint8 dataset (a copy per epoch), previews and a contact sheet from real images', async () => {
    const params = { copies: 3, seed: 5, threads: 2, chunk_size: 32, preview_count: 4, preview_variants: 3 };
    const run = await runStage(augmentKind, params, inputs());
    const reader = await DatasetReader.open(join(run.outDir, COPIES_DIR));
    try {
      const rows = fx.index.length;
      expect(reader.manifest.shape).toEqual([H, W, C]);
      expect(reader.manifest.splits).toEqual({ train: 3 * rows, test: 0 });
      expect((await readNpy(join(run.outDir, SOURCE_INDEX))).data).toEqual(fx.index);
      const parsed = augmentParams.parse(params) as AugmentParams;
      const config: AugmentConfig = {
        rotationRange: parsed.rotation_range,
        widthShiftRange: parsed.width_shift_range,
        heightShiftRange: parsed.height_shift_range,
        shearRange: parsed.shear_range,
        zoomRange: [0.8, 1.2],
        horizontalFlip: true,
        verticalFlip: false,
        fillMode: 'nearest',
        cval: 0,
      };
      const copies = [];
      for (let k = 0; k < 3; k++) {
        // Row copy·Ntr + i is decode row train_index[i] augmented with key (seed, copy k, row i), with its label.
        const copy = reader.readRows(Int32Array.from({ length: rows }, (_, i) => copyRow(k, i, rows)));
        const want = new Uint8Array(rows * IMAGE);
        augmentRows(fx.images, fx.index, want, 0, 0, rows, k, 5, { height: H, width: W, channels: C }, config);
        expect(Buffer.from(copy.buffer).equals(Buffer.from(want.buffer))).toBe(true);
        copies.push(copy);
        for (let i = 0; i < rows; i++) expect(reader.rows.label[copyRow(k, i, rows)]).toBe(fx.labels[fx.index[i]!]);
        // A copy's rows have shards of their own.
        const shards = new Set(Array.from({ length: rows }, (_, i) => reader.rows.shard[copyRow(k, i, rows)]));
        for (let j = 0; j < reader.count; j++) if (Math.floor(j / rows) !== k) expect(shards.has(reader.rows.shard[j]!)).toBe(false);
      }
      // Each epoch's copy is a fresh draw.
      expect(Buffer.from(copies[0]!).equals(Buffer.from(copies[1]!))).toBe(false);

      const previews = (await readdir(join(run.outDir, 'preview'))).sort();
      expect(previews.length).toBe(4 * (1 + 3));
      const png = (name: string) => PNG.sync.read(readFileSync(join(run.outDir, name)));
      const original = png('preview/image_002_original.png');
      expect([original.width, original.height]).toEqual([W, H]);
      const src = imageAt(fx.index[2]!);
      for (let p = 0; p < H * W; p++) for (let k = 0; k < C; k++) expect(original.data[p * 4 + k]).toBe(src[p * C + k]);
      // Variant v of preview image p is row p of copy v.
      const variant = png('preview/image_002_variant_01.png');
      for (let p = 0; p < H * W; p++) expect(variant.data[p * 4]).toBe(copies[1]![2 * IMAGE + p * C]);
      const sheet = png('contact_sheet.png');
      expect([sheet.width, sheet.height]).toEqual([4 + 4 * (96 + 4), 4 + 4 * (96 + 4)]);

      const meta = JSON.parse(await readFile(join(run.outDir, 'augment.json'), 'utf8'));
      expect(meta).toMatchObject({ rows, image_shape: [H, W, C], copies: 3, dataset: 'copies/', seed: 5 });
      expect(meta.params.zoom_range).toEqual([0.8, 1.2]);
      expect(meta.preview.files).toHaveLength(16);
    } finally {
      reader.close();
      await rm(run.outDir, { recursive: true, force: true });
      await rm(run.resumeDir, { recursive: true, force: true });
    }
  });

  test('bytes do not depend on pool size or chunking; another seed changes them', async () => {
    const base = { copies: 2, preview_count: 0, fill_mode: 'reflect', shear_range: 15 };
    const runs = [
      await runStage(augmentKind, { ...base, seed: 1, threads: 1, chunk_size: 1000 }, inputs()),
      await runStage(augmentKind, { ...base, seed: 1, threads: 2, chunk_size: 7 }, inputs()),
      await runStage(augmentKind, { ...base, seed: 1, threads: 2, chunk_size: 1 }, inputs()),
      await runStage(augmentKind, { ...base, seed: 2, threads: 2, chunk_size: 7 }, inputs()),
    ];
    try {
      // The whole copies/ tree: same shard names (content addressed), same bytes.
      const tree = async (k: number) => {
        const dir = join(runs[k]!.outDir, COPIES_DIR);
        const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.npy') || f.endsWith('.json')).sort();
        return Promise.all(files.map(async (f) => `${f}:${(await readFile(join(dir, f))).toString('base64')}`));
      };
      const one = await tree(0);
      expect(one.filter((f) => f.startsWith('shards/'))).toHaveLength(2);
      expect(await tree(1)).toEqual(one);
      expect(await tree(2)).toEqual(one);
      const other = await tree(3);
      expect(other.filter((f) => one.includes(f))).toEqual([]);
      expect((await readFile(join(runs[0]!.outDir, 'augment.json'))).equals(await readFile(join(runs[1]!.outDir, 'augment.json')))).toBe(true);
    } finally {
      for (const r of runs) {
        await rm(r.outDir, { recursive: true, force: true });
        await rm(r.resumeDir, { recursive: true, force: true });
      }
    }
  });

  test('an abort mid-run stops the pool promptly and the stage rejects without finishing', async () => {
    const controller = new AbortController();
    let ticked = 0;
    let started = 0;
    const progress: ProgressReporter = {
      start: (_label, total) => {
        started = total;
      },
      // The first finished chunk triggers the abort: no timers involved.
      tick: (n = 1) => {
        ticked += n;
        controller.abort();
      },
      update: () => {},
      done: () => {},
    };
    const tasks = Math.ceil(fx.index.length / 4) * 100;
    let completed = -1;
    let finished = true;
    const error = await runOwnContext({ copies: 100, chunk_size: 4, threads: 2, preview_count: 0 }, inputs(), {
      signal: controller.signal,
      progress,
      check: (outDir, pools) => {
        completed = pools.get(new URL('../workers/augment.js', import.meta.url).href, { threads: 2 }).completed;
        finished = existsSync(join(outDir, 'augment.json')) || existsSync(join(outDir, COPIES_DIR, 'dataset.json'));
      },
    });
    expect(error).toBeInstanceOf(AbortedError);
    expect(started).toBe(fx.index.length * 100);
    expect(ticked).toBeGreaterThan(0);
    expect(ticked).toBeLessThan(started / 10);
    // Queued tasks were dropped, not run: the pool completed only a small fraction of them.
    expect(completed).toBeGreaterThanOrEqual(0);
    expect(completed).toBeLessThan(tasks / 10);
    expect(finished).toBe(false);
  });

  test('bad inputs fail with one clear StageError', async () => {
    const badDir = await mkdtemp(join(tmpdir(), 'augment-bad-'));
    try {
      await writeNpy(join(badDir, 'train_index.npy'), { dtype: 'int32', shape: [3], data: Int32Array.from([0, 1, fx.n]) });
      const bad = { ...inputs(), normalize: { kind: 'normalize', dir: badDir } };
      const outOfRange = await runOwnContext({ copies: 1 }, bad);
      expect(outOfRange).toBeInstanceOf(StageError);
      expect((outOfRange as Error).message).toBe(`augment: normalize/train_index.npy[2] = ${fx.n} is outside decode/dataset training rows 0..${fx.n - 1}`);
      await writeNpy(join(badDir, 'train_index.npy'), { dtype: 'float32', shape: [1], data: Float32Array.from([0]) });
      const wrongType = await runOwnContext({ copies: 1 }, bad);
      expect(wrongType).toBeInstanceOf(StageError);
      expect((wrongType as Error).message).toBe('augment: normalize/train_index.npy must be int32 [Ntr], got float32 [1]');
    } finally {
      await rm(badDir, { recursive: true, force: true });
    }
  });
});
