// augment's copies as a sharded uint8 dataset (issue 24): the pixels of every copy and the training
// they give are those of the one-.npy-per-copy layout before it (figures pinned from that code), a
// flipped bit in a copy is caught before training uses it, and a SIGKILL while the shards are written
// leaves a store `verify` trusts and a rerun that finishes.
import { describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { COPIES_DIR, copyRow } from '../lib/augment/copies.js';
import { CopiesDatasetWriter } from '../lib/augment/copies-dataset.js';
import { DatasetReader } from '../lib/dataset/reader.js';
import { onEpochEnd } from '../lib/model/fit.js';
import { augmentKind } from '../stages/augment/augment.js';
import { runStage } from './helpers/stage-context.js';
import { TINY_MODEL, useToyTraining } from './helpers/toy-training.js';
import { toyImages, writeAugmentOutputs } from './helpers/fake-normalize.js';
import { writeNpy } from '../lib/npy.js';
import { rowBytesOf } from '../lib/dataset/format.js';
import { runCli, workspace, type CliResult } from './helpers/cli.js';
import { cifarSource, extractSubset } from './helpers/dataset.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const AUG = { copies: 3, seed: 5, threads: 2, chunk_size: 16, preview_count: 0, shear_range: 10, fill_mode: 'reflect' };

// Produced by the code before copies were sharded (copy_NNN.npy, read row by row by train), on the
// toy fixture below: sha256 of each copy's pixels, and the weights and losses of training on them.
const BEFORE = {
  copies: [
    '76ce0364f9d758ac774f1238dd473592ef0a04dd2a37fd45a262380697399947',
    '4bd03678d3603dd5dd3f7f9db09650e9295f8cbaf66e59717b2c0253d8a952d5',
    'd7172581722024f5dc9dafb6dac67e7b3263a884e5827959c32dea3a05f4a9ea',
  ],
  train: {
    'cpu, 1 worker': {
      params: {},
      weights: '4651854ad3deee6d69648f0f6055521eec395c902d6d899cebb5409bfbfda457',
      loss: [1.052329715092977, 1.0038712819417317, 0.9840852618217468, 0.9657552123069764],
    },
    'wasm, 2 workers': {
      params: { backend: 'wasm', workers: 2 },
      weights: 'ce55e88e78896213dcadb734413137b69842a4235849359d526df7673cd219d3',
      loss: [1.0511815190315246, 1.000000294049581, 0.9874675353368123, 0.9686643203099569],
    },
    'cpu, batch_augment': {
      params: { batch_augment: { crop_padding: 1 } },
      weights: 'da978f7a40d8fb6b0142fe69dd150b8d66b4e58921e34f18ffb423fba04e3914',
      loss: [1.0490225394566854, 1.0033639113108317, 0.9856662472089132, 0.9611080924669901],
    },
  },
};

describe('augmented copies as shards: the same pixels and the same training as copy_NNN.npy', () => {
  const toy = useToyTraining('augment-shards-', { backend: 'cpu', model: TINY_MODEL, batch_size: 32, epochs: 4, seed: 7 });
  let augDir = '';
  const augment = async () => {
    if (!augDir) {
      const run = await runStage(augmentKind, AUG, { normalize: toy.normalize });
      toy.removeLater(run.outDir, run.resumeDir);
      augDir = run.outDir;
    }
    return augDir;
  };

  test("every copy's pixels, streamed from the shards, are byte-identical to the copy_NNN.npy of before", async () => {
    const reader = await DatasetReader.open(join(await augment(), COPIES_DIR));
    try {
      const rows = toy.trainIndex.length;
      expect(reader.count).toBe(3 * rows);
      for (let k = 0; k < 3; k++) {
        expect(sha(reader.readRows(Int32Array.from({ length: rows }, (_, i) => copyRow(k, i, rows))))).toBe(BEFORE.copies[k]);
      }
    } finally {
      reader.close();
    }
  });

  test.each(Object.entries(BEFORE.train))('training on them (%s) gives the weights and losses of before', async (_name, want) => {
    const dir = await augment();
    const run = await toy.train({ augmented: 'augment', ...want.params }, { augment: { kind: 'augment', dir } });
    expect(sha(await readFile(join(run.outDir, 'model', 'weights.bin')))).toBe(want.weights);
    expect(JSON.parse(await readFile(join(run.outDir, 'history.json'), 'utf8')).loss).toEqual(want.loss);
    // Read through the prefetch thread, like the decoded data.
    const info = JSON.parse(await readFile(join(run.outDir, 'train.json'), 'utf8'));
    expect(info.prefetch.batches_read_ahead).toBeGreaterThan(0);
    expect(info.trained_on).toBe('augment (3 copies)');
  });

  test('a flipped bit in a copy is detected before training uses it', async () => {
    const damaged = join(toy.work, 'augment-damaged');
    await cp(await augment(), damaged, { recursive: true });
    const reader = await DatasetReader.open(join(damaged, COPIES_DIR));
    // Row 5 of copy 0: the first epoch reads it.
    const row = copyRow(0, 5, toy.trainIndex.length);
    const shard = join(damaged, COPIES_DIR, reader.manifest.shards[reader.rows.shard[row]!]!.file);
    const at = (await readFile(shard)).length - (reader.manifest.shards[reader.rows.shard[row]!]!.rows - reader.rows.slot[row]!) * reader.rowBytes + 17;
    reader.close();
    const handle = await open(shard, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0]! ^= 0x04;
    await handle.write(byte, 0, 1, at);
    await handle.close();
    const epochs: number[] = [];
    const off = onEpochEnd((e) => void epochs.push(e.logs.epoch));
    try {
      for (const prefetch of [3, 0]) {
        await expect(toy.train({ augmented: 'augment', prefetch }, { augment: { kind: 'augment', dir: damaged } })).rejects.toThrow(
          new RegExp(`copies/shards/[0-9a-f]+\\.npy: slot \\d+ \\(row ${row}\\) does not match its checksum`),
        );
      }
    } finally {
      off();
    }
    expect(epochs).toEqual([]);
  });

  test('copies from before they were sharded, or made from other rows, are refused with what to do', async () => {
    const legacy = join(toy.work, 'augment-legacy');
    await mkdir(legacy, { recursive: true });
    await writeNpy(join(legacy, 'copy_000.npy'), { dtype: 'uint8', shape: toy.trainRows.shape, data: new Uint8Array(rowBytesOf(toy.trainRows.shape)) });
    await expect(toy.train({ augmented: 'augment' }, { augment: { kind: 'augment', dir: legacy } })).rejects.toThrow(
      'augmented: augment holds copies as copy_000.npy… (a result from before copies were sharded): run augment again',
    );
    const other = join(toy.work, 'augment-other-rows');
    const shifted = Int32Array.from(toy.trainIndex, (r, i) => (i === 0 ? r + 1 : r));
    await writeAugmentOutputs(other, [toy.trainRows], shifted, toy.classes);
    await expect(toy.train({ augmented: 'augment' }, { augment: { kind: 'augment', dir: other } })).rejects.toThrow(
      'augment/source_index.npy does not list the training rows of normalize/train_index.npy: run augment again',
    );
    const relabelled = join(toy.work, 'augment-relabelled');
    await writeAugmentOutputs(
      relabelled,
      [{ ...toy.trainRows, labels: toy.trainRows.labels.map((l, i) => (i === 3 ? (l + 1) % 3 : l)) }],
      toy.trainIndex,
      toy.classes,
    );
    await expect(toy.train({ augmented: 'augment' }, { augment: { kind: 'augment', dir: relabelled } })).rejects.toThrow(
      /augment\/copies: row 3 is labelled \d, its source row \d/,
    );
  });

  test('a copy never shares a shard with another; shards stay under their size; rows read back with their labels', async () => {
    const dir = join(toy.work, 'small-shards');
    const set = toyImages(10, 3, 4, 3, 9);
    const copies = [0, 1].map((k) => ({ ...set, pixels: set.pixels.map((v) => (v + 31 * k) & 255) }));
    const source = new Array<string>(10).fill('x');
    const writer = new CopiesDatasetWriter(dir, { shape: set.shape, classes: ['a', 'b', 'c'], label: set.labels, source, digest: source }, 2, 'test', 4 * 48);
    for (const [k, c] of copies.entries()) {
      await writer.append(k, 0, 6, c.pixels.subarray(0, 6 * 48));
      await writer.append(k, 6, 4, c.pixels.subarray(6 * 48));
    }
    const manifest = await writer.finish();
    // 10 rows of 48 bytes in shards of at most 4 rows: 4 + 4 + 2 per copy.
    expect(manifest.shards.map((s) => s.rows)).toEqual([4, 4, 2, 4, 4, 2]);
    expect((await readdir(join(dir, 'shards'))).filter((f) => f.startsWith('.'))).toEqual([]);
    const reader = await DatasetReader.open(dir);
    try {
      for (const [k, c] of copies.entries()) {
        expect(Buffer.from(reader.readRows(Int32Array.from({ length: 10 }, (_, i) => copyRow(k, i, 10)))).equals(Buffer.from(c.pixels))).toBe(true);
      }
      expect(Array.from(reader.rows.label)).toEqual([...set.labels, ...set.labels]);
    } finally {
      reader.close();
    }
    await expect(writer.append(0, 0, 1, set.pixels.subarray(0, 48))).rejects.toThrow(/out of order/);
    expect(existsSync(join(dir, 'dataset.json'))).toBe(true);
  });
});

describe('SIGKILL while augment writes its shards', () => {
  const PIPELINE = `stages:
  fetch:
    uses: fetch
    with: {url: data}
  decode:
    uses: decode
    needs: [fetch]
  normalize:
    uses: normalize
    needs: [decode]
  augment:
    uses: augment
    needs: [normalize]
    with: {copies: 400, threads: 1, chunk_size: 8, preview_count: 0}
`;

  /** Files under `dir` (recursive) whose path matches `re`. */
  const find = async (dir: string, re: RegExp) => (await readdir(dir, { recursive: true }).catch(() => [] as string[])).filter((f) => re.test(f));

  test('leaves a store verify trusts, and a rerun finishes with every copy readable', async () => {
    const dir = await workspace(PIPELINE, 'augment-kill-');
    try {
      const source = await cifarSource({ perClassTrain: 12, perClassTest: 2 });
      await extractSubset(source.archive, join(dir, 'data'), 12, 2);
      await ok(['run', 'normalize'], dir);
      // Kill once a shard of the copies was written and before the dataset is complete: we watch the
      // files (coordination, not a timer deciding the outcome).
      let state = 'finished before the kill';
      const killed = await runCli(['run'], {
        cwd: dir,
        onSpawn: (child) => {
          const watch = async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            const shards = await find(join(dir, 'artifacts'), /copies\/shards\/[0-9a-f]+\.npy$/);
            const done = await find(join(dir, 'artifacts'), /copies\/dataset\.json$/);
            if (shards.length > 0 && done.length === 0) {
              state = `killed after ${shards.length} shards`;
              child.kill('SIGKILL');
            } else if (done.length === 0) setTimeout(() => void watch(), 5);
          };
          void watch();
        },
      });
      expect(state).toMatch(/^killed after/);
      expect(killed.signal).toBe('SIGKILL');
      await ok(['verify'], dir);
      const rerun = await ok(['run'], dir);
      expect(rerun.stdout).toMatch(/^ran\s+augment\s/m);
      expect((await ok(['verify'], dir)).stdout).toMatch(/0 corrupt, 0 missing/);
      const copies = join(dir, 'artifacts', 'stages', 'augment', COPIES_DIR);
      expect(await find(copies, /(^|\/)\.writing-/)).toEqual([]);
      const reader = await DatasetReader.open(copies);
      try {
        // Every row of every copy reads back and matches its checksum.
        reader.readRows(Int32Array.from({ length: reader.count }, (_, r) => r));
        expect(reader.manifest.shards).toHaveLength(400);
      } finally {
        reader.close();
      }
      expect((await ok(['run'], dir)).stdout).toMatch(/^cached\s+augment\s/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function ok(args: string[], cwd: string): Promise<CliResult> {
  const r = await runCli(args, { cwd });
  expect(r).toMatchObject({ code: 0 });
  return r;
}
