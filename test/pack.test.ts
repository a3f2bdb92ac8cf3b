// Packs (lib/fetch/pack.ts): many files kept as a few large ones and an index. Round trips, pack
// boundaries, content-named packs, damage found when an entry is read, index checks, and a local
// directory packed incrementally (lib/fetch/pack-directory.ts) against its previous packs.
import { afterAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PackError, PackIntegrityError } from '../lib/errors.js';
import { PACK_INDEX, PackReader, PackWriter, readPackIndex, type PackIndex } from '../lib/fetch/pack.js';
import { isCleanEntryPath, normalizeEntryPath, unsafePathReason } from '../lib/fetch/entry-path.js';
import { packDirectory, type DirectoryPackResult } from '../lib/fetch/pack-directory.js';

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Every entry's bytes, read back through a PackReader. */
async function contents(dir: string): Promise<Map<string, Buffer>> {
  const reader = await PackReader.open(dir);
  try {
    return new Map(reader.index.entries.map((e) => [e.path, reader.read(e)]));
  } finally {
    reader.close();
  }
}

describe('pack format', () => {
  test('round trip: entries streamed or whole, cut into packs of bounded size, named by content', async () => {
    const files: Record<string, Buffer> = {
      'train/cat/1.jpg': randomBytes(3000),
      'train/cat/2.jpg': randomBytes(5000),
      'train/dog/1.jpg': Buffer.alloc(0),
      'big.bin': randomBytes(25_000),
      'z/last.txt': Buffer.from('the end'),
    };
    const write = async (dir: string) => {
      const writer = new PackWriter(dir, 10_000);
      writer.addDir('empty/inside');
      // Out of order on purpose: the index is sorted whatever the order of arrival.
      for (const path of ['train/cat/2.jpg', 'big.bin', 'train/dog/1.jpg', 'z/last.txt']) writer.add(path, files[path]!);
      writer.begin('train/cat/1.jpg', 3000);
      for (let at = 0; at < 3000; at += 700) writer.write(files['train/cat/1.jpg']!.subarray(at, at + 700));
      writer.end();
      return writer.finish();
    };
    const dir = await tempDir('pack-');
    const index = await write(dir);
    expect(index.entries.map((e) => e.path)).toEqual(['big.bin', 'train/cat/1.jpg', 'train/cat/2.jpg', 'train/dog/1.jpg', 'z/last.txt']);
    expect(index.dirs).toEqual(['empty', 'empty/inside', 'train', 'train/cat', 'train/dog', 'z']);
    for (const e of index.entries) expect([e.path, e.size, e.sha256]).toEqual([e.path, files[e.path]!.length, sha256(files[e.path]!)]);
    // 10 kB packs: the 25 kB file has one of its own, the others share.
    expect(index.packs.length).toBeGreaterThanOrEqual(3);
    for (const p of index.packs) expect(p.bytes <= 10_000 || index.entries.filter((e) => index.packs[e.pack] === p).length === 1).toBe(true);
    expect((await readdir(dir)).sort()).toEqual([...index.packs.map((p) => p.file), PACK_INDEX].sort());
    for (const p of index.packs) expect((await stat(join(dir, p.file))).size).toBe(p.bytes);
    expect(await contents(dir)).toEqual(new Map(Object.entries(files)));
    expect(await readPackIndex(dir)).toEqual(index);

    // The same bytes make the same pack files, byte for byte.
    const again = await tempDir('pack-again-');
    await write(again);
    for (const p of index.packs) expect((await readFile(join(again, p.file))).equals(await readFile(join(dir, p.file)))).toBe(true);
  });

  test('a path added twice keeps the last bytes; a pack left with no entry is not kept', async () => {
    const dir = await tempDir('pack-dup-');
    const writer = new PackWriter(dir, 100);
    writer.add('a.txt', Buffer.from('first version, long enough to fill a pack of its own'.repeat(3)));
    writer.add('b.txt', Buffer.from('b'.repeat(150)));
    writer.add('a.txt', Buffer.from('second'));
    const index = await writer.finish();
    expect(index.entries.map((e) => e.path)).toEqual(['a.txt', 'b.txt']);
    expect((await contents(dir)).get('a.txt')!.toString()).toBe('second');
    expect((await readdir(dir)).filter((f) => f.endsWith('.bin'))).toHaveLength(index.packs.length);
  });

  test('a flipped bit is found when its entry is read, naming the entry; other entries still read', async () => {
    const dir = await tempDir('pack-flip-');
    const writer = new PackWriter(dir);
    const a = randomBytes(4000);
    const b = randomBytes(4000);
    writer.add('train/cat/0003.jpg', a);
    writer.add('train/cat/0004.jpg', b);
    const index = await writer.finish();
    const victim = index.entries[0]!;
    const packFile = join(dir, index.packs[victim.pack]!.file);
    const bytes = await readFile(packFile);
    bytes[victim.offset + 1234]! ^= 0x10;
    await writeFile(packFile, bytes);
    const reader = await PackReader.open(dir);
    try {
      expect(() => reader.read(victim)).toThrow(PackIntegrityError);
      expect(() => reader.read(victim)).toThrow(
        `${packFile}: entry "train/cat/0003.jpg" (4000 bytes at ${victim.offset}) does not match its checksum: the pack is damaged (run \`pipeline verify\`)`,
      );
      expect(reader.read(index.entries[1]!).equals(b)).toBe(true);
    } finally {
      reader.close();
    }
    // A truncated pack too.
    await writeFile(packFile, bytes.subarray(0, index.entries[1]!.offset + 10));
    const cut = await PackReader.open(dir);
    try {
      expect(() => cut.read(index.entries[1]!)).toThrow(/entry "train\/cat\/0004\.jpg" .* is truncated: the pack is damaged/);
    } finally {
      cut.close();
    }
  });

  test('an index path must be what an archive entry becomes once checked and normalised', () => {
    const names = ['a', 'a/b.jpg', 'train/cat/0003.jpg', '.hidden/x', 'a..b/c', 'x\\y', '', '.', '..', './a', 'a/', 'a//b', 'a/./b', 'a/../b', '../a'];
    const more = ['/abs', 'C:/x', 'C:x', '\\x', 'a\\..\\b', 'a\0b', 'a/b/.', 'a/b/..', ' a', 'ä/ö'];
    for (const name of [...names, ...more]) {
      const reference = name !== '' && unsafePathReason(name) === null && normalizeEntryPath(name) === name;
      expect([name, isCleanEntryPath(name)]).toEqual([name, reference]);
    }
  });

  test('an index with unsafe or inconsistent entries is refused when read', async () => {
    const dir = await tempDir('pack-index-');
    const writer = new PackWriter(dir);
    writer.add('a/x.txt', Buffer.from('x'));
    writer.add('b.txt', Buffer.from('yy'));
    const good = await writer.finish();
    const tamper = async (change: (index: PackIndex) => void): Promise<unknown> => {
      const index = structuredClone(good);
      change(index);
      await writeFile(join(dir, PACK_INDEX), JSON.stringify(index));
      return readPackIndex(dir).catch((e: unknown) => e);
    };
    const cases: Array<[(index: PackIndex) => void, RegExp]> = [
      [(i) => (i.entries[0]!.path = '../escape.txt'), /entry 0: bad path "\.\.\/escape\.txt"/],
      [(i) => (i.entries[0]!.path = '/etc/passwd'), /entry 0: bad path "\/etc\/passwd"/],
      [(i) => (i.entries[0]!.path = 'a/./x.txt'), /entry 0: bad path/],
      [(i) => i.entries.reverse(), /entry 1: "a\/x\.txt" is out of order or repeated/],
      [(i) => (i.entries[1]!.offset = 2), /entry "b\.txt": bytes outside its pack/],
      [(i) => (i.entries[1]!.pack = 7), /entry "b\.txt": pack 7 is out of range/],
      [(i) => (i.packs[0]!.file = '../x.bin'), /bad pack/],
      [(i) => i.dirs.push('b.txt'), /entry 1: "b\.txt" is also a directory/],
      [(i) => (i.version = 9 as 1), /version 9 is not supported/],
    ];
    for (const [change, message] of cases) {
      const err = await tamper(change);
      expect(err).toBeInstanceOf(PackError);
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('a local directory into packs, incrementally', () => {
  /** A folder of `n` files per class of two classes, ~2 kB each. */
  async function folder(n: number): Promise<string> {
    const dir = await tempDir('pack-src-');
    for (const cls of ['cat', 'dog']) {
      await mkdir(join(dir, 'train', cls), { recursive: true });
      for (let i = 0; i < n; i++) await writeFile(join(dir, 'train', cls, `${String(i).padStart(3, '0')}.jpg`), randomBytes(2000));
    }
    await mkdir(join(dir, 'empty'));
    return dir;
  }

  async function pack(src: string, previous?: string): Promise<DirectoryPackResult & { dest: string; carried: string[]; digested: number }> {
    const dest = join(await tempDir('pack-out-'), 'pack');
    const carried: string[] = [];
    let digested = 0;
    const reader = previous ? await PackReader.open(previous) : undefined;
    try {
      const result = await packDirectory({
        src,
        dest,
        digest: async (path) => {
          digested++;
          const bytes = await readFile(path);
          return { digest: sha256(bytes), size: bytes.length };
        },
        ...(reader
          ? {
              previous: {
                reader,
                carry: async (file) => {
                  carried.push(file);
                  await mkdir(dest, { recursive: true });
                  await link(join(previous!, file), join(dest, file));
                },
              },
            }
          : {}),
        maxPackBytes: 20_000,
        signal: new AbortController().signal,
      });
      return { ...result, dest, carried, digested };
    } finally {
      reader?.close();
    }
  }

  test('files added, changed and deleted: unchanged files stay in their packs, only new bytes are read', async () => {
    const src = await folder(40);
    const first = await pack(src);
    expect(first.files).toBe(80);
    expect(first.index.dirs).toEqual(['empty', 'train', 'train/cat', 'train/dog']);
    expect(first.changes).toMatchObject({ added: 80, changed: 0, removed: 0, reused: 0, bytes_read: 160_000 });
    expect(first.index.packs.length).toBeGreaterThanOrEqual(8);

    await writeFile(join(src, 'train', 'cat', '900-new.jpg'), randomBytes(2000)); // added
    await writeFile(join(src, 'train', 'dog', '005.jpg'), randomBytes(2100)); // changed
    await rm(join(src, 'train', 'cat', '010.jpg')); // removed
    const second = await pack(src, first.dest);
    expect(second.changes).toMatchObject({ added: 1, changed: 1, removed: 1, reused: 78, compacted_packs: 0, bytes_read: 4100 });
    // Every previous pack with a live entry is carried over as it is (the same file, not a copy).
    expect(second.carried.sort()).toEqual(first.index.packs.map((p) => p.file).sort());
    for (const file of second.carried) expect((await stat(join(second.dest, file))).ino).toBe((await stat(join(first.dest, file))).ino);
    expect(second.index.packs.length).toBe(first.index.packs.length + 1);

    // The same files and bytes as a pack made from scratch.
    const fresh = await pack(src);
    expect(second.index.entries.map((e) => [e.path, e.sha256])).toEqual(fresh.index.entries.map((e) => [e.path, e.sha256]));
    expect(await contents(second.dest)).toEqual(await contents(fresh.dest));
  });

  test('a pack left less than half live is compacted; one with nothing live is left out', async () => {
    const src = await folder(40);
    const first = await pack(src);
    // Delete every cat but the last: the cat packs lose all or most of their entries.
    const cats = (await readdir(join(src, 'train', 'cat'))).sort();
    for (const f of cats.slice(0, -1)) await rm(join(src, 'train', 'cat', f));
    const second = await pack(src, first.dest);
    expect(second.changes).toMatchObject({ added: 0, changed: 0, removed: 39, reused: 41, bytes_read: 0 });
    expect(second.changes.compacted_packs).toBe(1);
    const live = new Set(second.index.packs.map((p) => p.file));
    const catPacks = new Set(first.index.entries.filter((e) => e.path.startsWith('train/cat/')).map((e) => first.index.packs[e.pack]!.file));
    const dogPacks = new Set(first.index.entries.filter((e) => e.path.startsWith('train/dog/')).map((e) => first.index.packs[e.pack]!.file));
    for (const p of catPacks) if (!dogPacks.has(p)) expect(live.has(p)).toBe(false);
    expect(await contents(second.dest)).toEqual(await contents((await pack(src)).dest));
  });

  test('a flipped bit in a previous pack is not copied into a new one', async () => {
    const src = await folder(10);
    const first = await pack(src);
    // Force compaction of the pack holding cat/000 by deleting its neighbours, after damaging it.
    const victim = first.index.entries.find((e) => e.path === 'train/cat/000.jpg')!;
    const file = join(first.dest, first.index.packs[victim.pack]!.file);
    const bytes = await readFile(file);
    bytes[victim.offset]! ^= 1;
    await rm(file);
    await writeFile(file, bytes);
    for (const e of first.index.entries) if (e.pack === victim.pack && e !== victim) await rm(join(src, e.path));
    await expect(pack(src, first.dest)).rejects.toThrow(/entry "train\/cat\/000\.jpg" .* does not match its checksum/);
  });
});
