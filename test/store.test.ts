// The store's parts on real files in temp dirs: hashing, the stat cache, objects, commits, views,
// manifests, gc and verify.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { chmod, link, mkdir, mkdtemp, open, readdir, readFile, rm, stat, utimes, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalJson, hashValue, sha256 } from '../engine/store/hash.js';
import { StatCache } from '../engine/store/stat-cache.js';
import { Store } from '../engine/store/store.js';
import { adoptTree, ingestWorkspaceOuts } from '../engine/run/commit.js';
import { MANIFEST_FORMAT, outputsDigestOf, type Manifest } from '../engine/store/manifest.js';
import { collectGarbage } from '../engine/store/gc.js';
import { verifyStore } from '../engine/store/verify.js';
import { KEY_FORMAT } from '../engine/store/cache-key.js';
import { DiskFullError } from '../engine/errors.js';
import { writeFileAtomic } from '../engine/store/fs-tree.js';
import type { RunRecord } from '../engine/store/runs.js';
import { mountTmpfs, tmpfsSkipReason, unmountTmpfs } from './helpers/tmpfs.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'store-test-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function manifest(key: string, stage: string, tree: { files: Manifest['files']; dirs: string[] }, entries: string[]): Manifest {
  return {
    format: MANIFEST_FORMAT,
    key,
    stage,
    kind: 'test',
    material: { format: KEY_FORMAT, kind: 'test', params: {}, inputs: {} },
    params: {},
    entries,
    dirs: tree.dirs,
    files: tree.files,
    outputsDigest: outputsDigestOf(tree.files),
    createdAt: new Date().toISOString(),
    durationMs: 1,
    runId: 'r',
  };
}

/** Sets a file's mtime a minute back, so the stat cache does not consider it racy. */
async function age(path: string): Promise<void> {
  const t = new Date(Date.now() - 60_000);
  await utimes(path, t, t);
}

describe('canonical JSON', () => {
  test('sorts keys at every level, keeps array order, drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1], c: 'x' }, u: undefined })).toBe('{"a":{"c":"x","d":[3,1]},"b":1}');
    expect(hashValue({ x: 1, y: 2 })).toBe(hashValue({ y: 2, x: 1 }));
    expect(hashValue([1, 2])).not.toBe(hashValue([2, 1]));
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/not JSON/);
  });
});

describe('stat cache', () => {
  test('an unchanged file is not rehashed; a changed one is, even with the same size', async () => {
    const f = join(root, 'data.txt');
    await writeFile(f, 'hello');
    await age(f);
    const cache = await StatCache.load(join(root, 'state.json'), root);
    const first = await cache.digestFile(f);
    expect(first).toEqual({ digest: sha256('hello'), size: 5 });
    expect(cache.hashedFiles).toBe(1);
    expect(await cache.digestFile(f)).toEqual(first);
    expect(cache.hashedFiles).toBe(1);

    await writeFile(f, 'HELLO'); // same size, new mtime
    expect((await cache.digestFile(f)).digest).toBe(sha256('HELLO'));
    expect(cache.hashedFiles).toBe(2);
  });

  test('survives save and load; a file modified just before hashing is not cached (racy)', async () => {
    const old = join(root, 'old.txt');
    const fresh = join(root, 'fresh.txt');
    await writeFile(old, 'old');
    await age(old);
    await writeFile(fresh, 'fresh');
    // Modified "now" (set ahead so the test does not depend on how fast it runs): racy, not recorded.
    const soon = new Date(Date.now() + 10_000);
    await utimes(fresh, soon, soon);
    const cache = await StatCache.load(join(root, 'state', 'cache.json'), root);
    await cache.digestFile(old);
    await cache.digestFile(fresh);
    await cache.save();

    const again = await StatCache.load(join(root, 'state', 'cache.json'), root);
    await again.digestFile(old);
    expect(again.hashedFiles).toBe(0);
    await again.digestFile(fresh);
    expect(again.hashedFiles).toBe(1);
    expect(await again.peek(old)).toBe(sha256('old'));
    expect(await again.peek(join(root, 'absent'))).toBeUndefined();
  });

  test('directory digests cover names and contents', async () => {
    const dir = join(root, 'd');
    await mkdir(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'a'), '1');
    await writeFile(join(dir, 'sub', 'b'), '2');
    const cache = await StatCache.load(join(root, 's.json'), root);
    const d1 = await cache.digestPath(dir);
    expect(d1).toMatch(/^tree:[0-9a-f]{64}$/);
    await rm(join(dir, 'sub', 'b'));
    await writeFile(join(dir, 'sub', 'c'), '2');
    expect(await cache.digestPath(dir)).not.toBe(d1);
    expect(await cache.digestPath(join(root, 'nope'))).toBeUndefined();
  });
});

describe('objects, commits and views', () => {
  test('a stage output tree (nested dirs) becomes read-only objects, a manifest and a hard-linked view', async () => {
    const store = new Store(root);
    await store.init();
    const out = await store.makeTmpDir('stage');
    await mkdir(join(out, 'model', 'deep'), { recursive: true });
    await mkdir(join(out, 'empty'));
    await writeFile(join(out, 'metrics.json'), '{"acc":1}');
    await writeFile(join(out, 'model', 'weights.bin'), Buffer.alloc(1000, 7));
    await writeFile(join(out, 'model', 'deep', 'copy.json'), '{"acc":1}'); // same content: one object
    const tree = await adoptTree(store.objects, out);
    expect(Object.keys(tree.files)).toEqual(['metrics.json', 'model/deep/copy.json', 'model/weights.bin']);
    expect(tree.dirs).toEqual(['empty', 'model', 'model/deep']);
    expect((await store.objects.list()).length).toBe(2);

    const digest = tree.files['model/weights.bin']!.digest;
    const st = await stat(store.objects.path(digest));
    expect(st.mode & 0o777).toBe(0o444);
    expect(digest).toBe(sha256(Buffer.alloc(1000, 7)));

    const m = manifest('k'.repeat(64).replace(/k/g, 'a'), 'train', tree, ['empty', 'metrics.json', 'model']);
    await store.writeManifest(m);
    expect(await store.readManifest(m.key)).toEqual(m);
    const view = await store.ensureView(m);
    await store.linkStage('train', m.key);
    expect(await readFile(join(store.stageLinkPath('train'), 'model', 'weights.bin'))).toEqual(Buffer.alloc(1000, 7));
    expect((await stat(join(view, 'model', 'weights.bin'))).ino).toBe(st.ino); // hard link, no copy
    expect((await stat(join(view, 'empty'))).isDirectory()).toBe(true);
  });

  test('a reused file that is its object is recorded unread; a claim that does not hold is hashed like any file', async () => {
    const store = new Store(root);
    await store.init();
    const first = await store.makeTmpDir('a');
    await writeFile(join(first, 'shard.npy'), Buffer.alloc(5000, 3));
    const digest = (await adoptTree(store.objects, first)).files['shard.npy']!.digest;
    const out = await store.makeTmpDir('b');
    await link(store.objects.path(digest), join(out, 'kept.npy'));
    await writeFile(join(out, 'copied.npy'), Buffer.alloc(10, 1));
    // A claim for a file that is not the object (another inode) is not believed: it is hashed.
    const reused = new Map([
      ['kept.npy', digest],
      ['copied.npy', digest],
    ]);
    const tree = await adoptTree(store.objects, out, undefined, undefined, reused);
    expect(tree.files['kept.npy']).toEqual({ digest, size: 5000 });
    expect(tree.files['copied.npy']).toEqual({ digest: sha256(Buffer.alloc(10, 1)), size: 10 });
    expect((await stat(store.objects.path(digest))).nlink).toBe(1); // the link in tmp/ is gone, the object stays
  });

  test('workspace outs are copied in, and their stats recorded so they are not rehashed', async () => {
    const store = new Store(root);
    await store.init();
    await mkdir(join(root, 'out'));
    await writeFile(join(root, 'out', 'a.txt'), 'A');
    await writeFile(join(root, 'single.txt'), 'S');
    const cache = await StatCache.load(store.statCacheFile, root);
    const tree = await ingestWorkspaceOuts(store.objects, cache, root, ['out', 'single.txt', 'missing.txt']);
    expect(tree.missing).toEqual(['missing.txt']);
    expect(tree.files).toEqual({ 'out/a.txt': { digest: sha256('A'), size: 1 }, 'single.txt': { digest: sha256('S'), size: 1 } });
    // The workspace files stay writable and separate from the read-only objects.
    expect((await stat(join(root, 'single.txt'))).ino).not.toBe((await stat(store.objects.path(sha256('S')))).ino);
    await cache.digestFile(join(root, 'out', 'a.txt'));
    expect(cache.hashedFiles).toBe(0);
  });

  test('an unreadable or foreign manifest counts as absent', async () => {
    const store = new Store(root);
    await store.init();
    const key = 'b'.repeat(64);
    await writeFile(store.manifestPath(key), '{"format": 1, "key": "b');
    expect(await store.readManifest(key)).toBeNull();
    await writeFile(store.manifestPath(key), JSON.stringify({ format: 1, key: 'c'.repeat(64), files: {}, entries: [], material: {} }));
    expect(await store.readManifest(key)).toBeNull();
    expect(await store.readManifest('d'.repeat(64))).toBeNull();
  });

  test('tmp/ is cleaned, read-only leftovers included', async () => {
    const store = new Store(root);
    await store.init();
    const t = await store.makeTmpDir('x');
    await writeFile(join(t, 'f'), 'x');
    await chmod(join(t, 'f'), 0o444);
    expect(await store.cleanTmp()).toBe(1);
    await expect(stat(t)).rejects.toThrow();
  });
});

describe('gc and verify', () => {
  async function storeWith(): Promise<{ store: Store; cache: StatCache; a: Manifest; b: Manifest }> {
    const store = new Store(root);
    await store.init();
    const cache = await StatCache.load(store.statCacheFile, root);
    const commitOne = async (stage: string, key: string, content: string) => {
      const dir = await store.makeTmpDir(stage);
      await writeFile(join(dir, 'out.txt'), content);
      const m = manifest(key, stage, await adoptTree(store.objects, dir), ['out.txt']);
      await store.writeManifest(m);
      await store.ensureView(m);
      return m;
    };
    const a = await commitOne('a', '1'.repeat(64), 'old result');
    const b = await commitOne('a', '2'.repeat(64), 'new result, longer');
    await store.writeRefs(new Map([['a', { key: b.key, at: 'now' }]]));
    return { store, cache, a, b };
  }

  test('gc removes what the current refs do not reach (dry run first)', async () => {
    const { store, cache, a, b } = await storeWith();
    const dry = await collectGarbage(store, cache, { stages: ['a'], keepRuns: 0, dryRun: true });
    expect(dry).toMatchObject({ removedManifests: 1, removedObjects: 1, freedBytes: 'old result'.length, removedViews: 1, keptKeys: 1 });
    expect(await store.readManifest(a.key)).not.toBeNull();

    const done = await collectGarbage(store, cache, { stages: ['a'], keepRuns: 0, dryRun: false });
    expect(done).toMatchObject({ removedManifests: 1, removedObjects: 1 });
    expect(await store.readManifest(a.key)).toBeNull();
    expect(await store.objects.has(a.files['out.txt']!.digest)).toBe(false);
    expect(await store.objects.has(b.files['out.txt']!.digest)).toBe(true);
    expect((await verifyStore(store)).corrupt).toEqual([]);
  });

  test('gc keeps the results of the last N runs', async () => {
    const { store, cache, a } = await storeWith();
    await store.runs.write({
      id: '20260101T000000000Z-1',
      command: ['run'],
      pid: 1,
      startedAt: '',
      outcome: 'ok',
      stages: [{ stage: 'a', outcome: 'ran', key: a.key, durationMs: 1 }],
    });
    const r = await collectGarbage(store, cache, { stages: ['a'], keepRuns: 1, dryRun: false });
    expect(r).toMatchObject({ removedManifests: 0, removedObjects: 0, keptKeys: 2 });
  });

  test('verify finds a corrupted object and a missing one', async () => {
    const { store, a, b } = await storeWith();
    const obj = store.objects.path(a.files['out.txt']!.digest);
    await chmod(obj, 0o644);
    await appendFile(obj, ' tampered');
    await rm(store.objects.path(b.files['out.txt']!.digest));
    const r = await verifyStore(store);
    expect(r.checkedObjects).toBe(1);
    expect(r.corrupt).toEqual([{ digest: a.files['out.txt']!.digest, actual: sha256('old result tampered'), usedBy: ['a:out.txt'] }]);
    expect(r.missing).toEqual([{ digest: b.files['out.txt']!.digest, usedBy: ['a:out.txt'] }]);

    const fixed = await verifyStore(store, { fix: true });
    expect(fixed.removed).toBe(1);
    expect(await store.objects.has(a.files['out.txt']!.digest)).toBe(false);
  });
});

const onTmpfs = tmpfsSkipReason('store') === undefined ? test : test.skip;

/** Fills the file system of `dir` to the last byte with `filler.bin` (the write stops at ENOSPC). */
async function fillDisk(dir: string): Promise<void> {
  const handle = await open(join(dir, 'filler.bin'), 'w');
  try {
    const chunk = Buffer.alloc(1 << 16, 1);
    for (;;) await handle.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
  // What a partial last chunk left: one byte at a time until nothing more fits.
  const last = await open(join(dir, 'filler.bin'), 'a');
  try {
    for (;;) await last.write(Buffer.alloc(1));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await last.close();
  }
}

describe('a full disk', () => {
  beforeEach(() => {
    if (tmpfsSkipReason('store') === undefined) mountTmpfs(root, '4m');
  });
  afterEach(() => {
    if (tmpfsSkipReason('store') === undefined) unmountTmpfs(root);
  });

  onTmpfs('storing an out that does not fit: the error names it, no partial object is left, and the store verifies', async () => {
    const store = new Store(root);
    await store.init();
    await writeFile(join(root, 'small.txt'), 'S');
    await writeFile(join(root, 'big.bin'), Buffer.alloc(2_500_000, 3));
    const cache = await StatCache.load(store.statCacheFile, root);
    const error = await ingestWorkspaceOuts(store.objects, cache, root, ['small.txt', 'big.bin']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiskFullError);
    expect((error as DiskFullError).message).toBe(
      'no space left on device while storing big.bin in artifacts/ (the disk holding the store is full); make room and run again',
    );
    expect(await readdir(store.tmpDir)).toEqual([]);
    expect((await store.objects.list()).map((o) => o.digest)).toEqual([sha256('S')]);
    const report = await verifyStore(store);
    expect(report.corrupt.length + report.missing.length + report.badManifests.length).toBe(0);
  });

  onTmpfs('a file written atomically: a full disk names the file and leaves no temp file beside it', async () => {
    await fillDisk(root);
    const file = join(root, 'state', 'x.json');
    const error = await writeFileAtomic(file, 'x'.repeat(10_000)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiskFullError);
    expect((error as DiskFullError).message).toBe(`no space left on device writing ${file}: the disk holding it is full; make room and run again`);
    expect((error as DiskFullError).code).toBe('ENOSPC');
    expect(await readdir(join(root, 'state'))).toEqual([]);
  });

  onTmpfs("a run's final record is written over the space its first version reserved when the disk filled meanwhile", async () => {
    const store = new Store(root);
    await store.init();
    const record: RunRecord = { id: 'r1', command: ['run'], pid: process.pid, startedAt: new Date().toISOString(), outcome: 'running', stages: [] };
    await store.runs.write(record);
    await fillDisk(root);
    const done: RunRecord = {
      ...record,
      outcome: 'failed',
      finishedAt: new Date().toISOString(),
      stages: Array.from({ length: 20 }, (_, i) => ({
        stage: `s${i}`,
        outcome: 'failed' as const,
        durationMs: i,
        error: 'no space left on device '.repeat(8),
      })),
    };
    await store.runs.write(done);
    expect(await store.runs.list()).toEqual([done]);
  });
});
