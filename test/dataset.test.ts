// The sharded dataset library (lib/dataset/) on real files: a build from scratch, an incremental
// build that equals a full one while decoding only what changed, compaction, content-addressed
// shard names, and damaged shards found when a row is read.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { copyFile, mkdir, mkdtemp, open, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDataset, type BuildOptions, type BuildResult, type LabeledSource } from '../lib/dataset/build.js';
import { DatasetReader } from '../lib/dataset/reader.js';
import { readDataset, splitRange } from '../lib/dataset/format.js';
import { ShardIntegrityError, SourceDecodeError } from '../lib/errors.js';
import { readNpy } from '../lib/npy.js';

const SHAPE: [number, number, number] = [4, 4, 3];
const ROW = 48;
const CLASSES = ['cat', 'dog'];

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'dataset-test-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Pixels a "decoder" makes of a source: a function of its path and digest only. */
function pixelsOf(source: string, digest: string): Uint8Array {
  const out = new Uint8Array(ROW);
  let h = 2166136261;
  for (const ch of `${source}#${digest}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  for (let i = 0; i < ROW; i++) {
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
    out[i] = h & 0xff;
  }
  return out;
}

/** Sources in logical order: split, then class, then name. `version` per name changes its digest. */
function sources(names: Record<'train' | 'test', string[]>, version: Record<string, number> = {}): LabeledSource[] {
  const out: LabeledSource[] = [];
  for (const split of ['train', 'test'] as const) {
    CLASSES.forEach((cls, label) => {
      const mine = names[split].filter((n) => n.startsWith(`${cls}/`)).sort();
      for (const n of mine) out.push({ split, label, source: `${split}/${n}`, digest: `d${version[`${split}/${n}`] ?? 0}` });
    });
  }
  return out;
}

function names(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${CLASSES[i % 2]}/${prefix}${String(i).padStart(4, '0')}.jpg`);
}

interface Built {
  dir: string;
  decodedSources: string[];
  result: BuildResult;
}

async function build(name: string, srcs: LabeledSource[], extra: Partial<BuildOptions> = {}): Promise<Built> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const decodedSources: string[] = [];
  const result = await buildDataset({
    dir,
    shape: SHAPE,
    classes: CLASSES,
    settings: '{"decoder":1}',
    sources: srcs,
    skipFailed: false,
    maxShardBytes: ROW * 10,
    chunk: 7,
    decode: async (indices) =>
      indices.map((i) => {
        decodedSources.push(srcs[i]!.source);
        return pixelsOf(srcs[i]!.source, srcs[i]!.digest);
      }),
    carry: async (from, file) => {
      await mkdir(join(dir, 'shards'), { recursive: true });
      await copyFile(join(from, file), join(dir, file));
    },
    ...extra,
  });
  return { dir, decodedSources, result };
}

/** Everything a reader of logical rows sees: source, label, pixels. */
async function logicalRows(dir: string): Promise<Array<{ source: string; label: number; pixels: number[] }>> {
  const reader = await DatasetReader.open(dir);
  try {
    return Array.from({ length: reader.count }, (_, i) => ({
      source: reader.rows.source[i]!,
      label: reader.rows.label[i]!,
      pixels: Array.from(reader.readRows([i])),
    }));
  } finally {
    reader.close();
  }
}

describe('a dataset built from scratch', () => {
  test('holds every source in logical order, in shards of bounded size readable as .npy', async () => {
    const srcs = sources({ train: names('a', 25), test: names('t', 6) });
    const { dir, decodedSources } = await build('full', srcs);
    expect(decodedSources).toHaveLength(31);
    const { manifest } = await readDataset(dir);
    expect(manifest.splits).toEqual({ train: 25, test: 6 });
    expect(splitRange(manifest, 'test')).toEqual([25, 31]);
    expect(manifest.shards.map((s) => s.rows)).toEqual([10, 10, 10, 1]);
    const rows = await logicalRows(dir);
    expect(rows.map((r) => r.source)).toEqual(srcs.map((s) => s.source));
    expect(rows.map((r) => r.label)).toEqual(srcs.map((s) => s.label));
    for (const [i, r] of rows.entries()) expect(r.pixels).toEqual(Array.from(pixelsOf(srcs[i]!.source, srcs[i]!.digest)));
    // A shard is a plain uint8 [rows, H, W, C] .npy file.
    const first = await readNpy(join(dir, manifest.shards[0]!.file));
    expect(first.dtype).toBe('uint8');
    expect(first.shape).toEqual([10, ...SHAPE]);
    expect(Array.from(first.data.subarray(0, ROW))).toEqual(rows[0]!.pixels);
    expect((await readdir(join(dir, 'shards'))).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  test('the same sources decoded the same way make the same shard files; other settings make others', async () => {
    const srcs = sources({ train: names('a', 12), test: names('t', 2) });
    const a = await readDataset((await build('a', srcs)).dir);
    const b = await readDataset((await build('b', srcs)).dir);
    const c = await readDataset((await build('c', srcs, { settings: '{"decoder":2}' })).dir);
    expect(b.manifest.shards).toEqual(a.manifest.shards);
    expect(c.manifest.shards.map((s) => s.id)).not.toEqual(a.manifest.shards.map((s) => s.id));
  });

  test('a source that fails is skipped and listed, or fails the build naming it', async () => {
    const srcs = sources({ train: names('a', 6), test: names('t', 2) });
    const bad = srcs[2]!.source;
    const decode: BuildOptions['decode'] = async (indices) =>
      indices.map((i) => (srcs[i]!.source === bad ? { failed: 'not a JPEG' } : pixelsOf(srcs[i]!.source, srcs[i]!.digest)));
    const skipping = await build('skip', srcs, { decode, skipFailed: true });
    const rows = await logicalRows(skipping.dir);
    expect(rows.map((r) => r.source)).toEqual(srcs.map((s) => s.source).filter((s) => s !== bad));
    expect((await readDataset(skipping.dir)).manifest.splits).toEqual({ train: 5, test: 2 });
    const failing = build('fail', srcs, { decode });
    await expect(failing).rejects.toThrow(SourceDecodeError);
    await expect(failing).rejects.toThrow(`${bad}: not a JPEG`);
    // Nothing half-written is left: no open shard file.
    expect((await readdir(join(root, 'fail', 'shards'))).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});

describe('an incremental build', () => {
  test('after files are added, changed and deleted equals a full build, decoding only the new and changed files', async () => {
    const before = { train: names('a', 40), test: names('t', 8) };
    const first = await build('v1', sources(before));
    const after = {
      train: [...before.train.filter((n) => !n.endsWith('0003.jpg') && !n.endsWith('0010.jpg')), 'cat/b0001.jpg', 'dog/b0002.jpg'],
      test: [...before.test, 'dog/t9999.jpg'],
    };
    const changed = { 'train/cat/a0004.jpg': 1 };
    const srcs = sources(after, changed);
    const previous = await DatasetReader.open(first.dir);
    let built: Built;
    try {
      built = await build('v2', srcs, { previous });
    } finally {
      previous.close();
    }
    const { dir, result } = built;
    const decoded = built.decodedSources;
    expect(decoded.sort()).toEqual(['test/dog/t9999.jpg', 'train/cat/a0004.jpg', 'train/cat/b0001.jpg', 'train/dog/b0002.jpg']);
    expect(result.plan).toMatchObject({ added: 3, changed: 1, removed: 2, decoded: 4 });
    const full = await build('full', srcs);
    expect(await logicalRows(dir)).toEqual(await logicalRows(full.dir));
    // New bytes: the new shard(s) only; every kept shard is the previous file.
    const prevShards = new Set((await readDataset(first.dir)).manifest.shards.map((s) => s.id));
    const now = (await readDataset(dir)).manifest.shards;
    const fresh = now.filter((s) => !prevShards.has(s.id));
    expect(fresh.reduce((n, s) => n + s.rows, 0)).toBe(4 + result.plan.copied);
  });

  test('a shard left less than half live is compacted by copying, not decoding; an emptied shard is dropped', async () => {
    const before = { train: names('a', 30), test: names('t', 2) };
    const first = await build('v1', sources(before));
    const { manifest, rows } = await readDataset(first.dir);
    // Keep 3 of the first shard's 10 rows, none of the second's.
    const inShard = (s: number) => rows.source.filter((_, i) => rows.shard[i] === s);
    const drop = new Set([...inShard(0).slice(3), ...inShard(1)]);
    const after = {
      train: before.train.filter((n) => !drop.has(`train/${n}`)),
      test: before.test.filter((n) => !drop.has(`test/${n}`)),
    };
    const srcs = sources(after);
    const previous = await DatasetReader.open(first.dir);
    let built: Built;
    try {
      built = await build('v2', srcs, { previous, chunk: 500 });
    } finally {
      previous.close();
    }
    const { dir, result } = built;
    const decoded = built.decodedSources;
    expect(decoded).toEqual([]);
    expect(result.plan).toMatchObject({ compacted: 1, copied: 3, decoded: 0 });
    const ids = (await readDataset(dir)).manifest.shards.map((s) => s.id);
    expect(ids).not.toContain(manifest.shards[0]!.id);
    expect(ids).not.toContain(manifest.shards[1]!.id);
    expect(await logicalRows(dir)).toEqual(await logicalRows((await build('full', srcs)).dir));
  });

  test('changed decode settings decode everything again', async () => {
    const srcs = sources({ train: names('a', 8), test: names('t', 2) });
    const first = await build('v1', srcs);
    const previous = await DatasetReader.open(first.dir);
    try {
      const again = await build('v2', srcs, { previous, settings: '{"decoder":2}' });
      expect(again.decodedSources).toHaveLength(10);
    } finally {
      previous.close();
    }
  });
});

describe('a damaged shard', () => {
  test('a flipped bit is an error naming the shard, the row and its source, before the pixels are used', async () => {
    const srcs = sources({ train: names('a', 12), test: names('t', 2) });
    const { dir } = await build('d', srcs);
    const { manifest, rows } = await readDataset(dir);
    const victim = 5;
    const file = join(dir, manifest.shards[rows.shard[victim]!]!.file);
    const handle = await open(file, 'r+');
    try {
      const at = 128 + rows.slot[victim]! * ROW + 7;
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, at);
      byte[0]! ^= 0x10;
      await handle.write(byte, 0, 1, at);
    } finally {
      await handle.close();
    }
    const reader = await DatasetReader.open(dir);
    try {
      expect(() => reader.readRows([4])).not.toThrow();
      expect(() => reader.readRows([4, victim])).toThrow(ShardIntegrityError);
      expect(() => reader.readRows([victim])).toThrow(
        new RegExp(`slot ${rows.slot[victim]} \\(row ${victim}, ${rows.source[victim]}\\) does not match its checksum`),
      );
    } finally {
      reader.close();
    }
  });

  test('a truncated shard is an error, not short pixels', async () => {
    const srcs = sources({ train: names('a', 10), test: [] });
    const { dir } = await build('t', srcs);
    const { manifest } = await readDataset(dir);
    const file = join(dir, manifest.shards[0]!.file);
    await truncate(file, (await stat(file)).size - ROW);
    const reader = await DatasetReader.open(dir);
    try {
      expect(() => reader.readRows([9])).toThrow(/truncated at slot 9/);
    } finally {
      reader.close();
    }
  });
});
