// The stat cache (like DVC's state db): (inode, size, mtime in ns) → content digest, so a file that
// has not changed since it was last hashed is never read again. Entries are only ever a shortcut:
// a file whose stat differs from its entry is rehashed.
import { readFile, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { hashFile, hashValue } from './hash.js';
import { isErrno, isSyntaxError, listFiles, writeFileAtomic } from './fs-tree.js';

/** [inode, size, mtime ns, sha256] — inode and mtime as decimal strings (they exceed 2^53). */
type Entry = [string, number, string, string];

interface CacheFile {
  format: 1;
  entries: Record<string, Entry>;
}

/**
 * A file modified within this window before it was hashed could be modified again within the same
 * mtime tick, with the same size, after we hashed it; such "racy" entries are not recorded
 * (the file is simply hashed again next time).
 */
const RACY_WINDOW_NS = 20_000_000n;

/** Files of a directory digested at once (stats in flight; libuv runs them on its thread pool). */
const DIGEST_LANES = 32;

export interface FileDigest {
  digest: string;
  size: number;
}

export class StatCache {
  private readonly entries: Map<string, Entry>;
  private dirty = false;
  /** Files hashed in this process (for tests and --verbose). */
  hashedFiles = 0;

  private constructor(
    private readonly file: string,
    private readonly root: string,
    entries: Map<string, Entry>,
  ) {
    this.entries = entries;
  }

  /** Loads the cache file (a missing or unreadable file is an empty cache). */
  static async load(file: string, root: string): Promise<StatCache> {
    const entries = new Map<string, Entry>();
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as CacheFile;
      if (parsed.format === 1) for (const [k, v] of Object.entries(parsed.entries)) entries.set(k, v);
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isSyntaxError(err)) throw err;
    }
    return new StatCache(file, root, entries);
  }

  private keyOf(abs: string): string {
    const rel = relative(this.root, abs);
    return rel.startsWith('..') || isAbsolute(rel) ? abs : rel.split('\\').join('/');
  }

  /**
   * Digest of a file, from the cache when its stat is unchanged. Throws ENOENT if absent. `stat`:
   * the file's stat just taken by a directory walk (listTree), so a 70,000-file folder is not
   * stat-ed twice.
   */
  async digestFile(path: string, options: { trustRecent?: boolean; signal?: AbortSignal; stat?: BigIntStats } = {}): Promise<FileDigest> {
    const abs = resolve(this.root, path);
    const st = options.stat ?? (await stat(abs, { bigint: true }));
    const key = this.keyOf(abs);
    const hit = this.lookup(key, st);
    if (hit) return { digest: hit, size: Number(st.size) };
    // Many stages may ask for one shared dep at once: hash it once.
    const flightKey = `${key}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${options.trustRecent === true}`;
    let flight = this.inflight.get(flightKey);
    if (!flight) {
      flight = this.hashAndRecord(abs, key, st, options).finally(() => this.inflight.delete(flightKey));
      this.inflight.set(flightKey, flight);
    }
    return flight;
  }

  private readonly inflight = new Map<string, Promise<FileDigest>>();

  private async hashAndRecord(abs: string, key: string, st: BigIntStats, options: { trustRecent?: boolean; signal?: AbortSignal }): Promise<FileDigest> {
    const started = BigInt(Date.now()) * 1_000_000n;
    const { digest, size } = await hashFile(abs, options.signal, Number(st.size));
    this.hashedFiles++;
    const after = await stat(abs, { bigint: true });
    // Record only if the file did not change while we read it, and is not racy (see RACY_WINDOW_NS).
    const racy = !options.trustRecent && after.mtimeNs > started - RACY_WINDOW_NS;
    if (!racy && sameStat(st, after)) this.set(key, after, digest);
    return { digest, size };
  }

  /** The cached digest if `path`'s current stat matches its entry (no hashing). */
  async peek(path: string): Promise<string | undefined> {
    const abs = resolve(this.root, path);
    try {
      return this.lookup(this.keyOf(abs), await stat(abs, { bigint: true }));
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  /** Current stat of a file, to pass to `remember` after reading it. */
  async statOf(path: string): Promise<BigIntStats> {
    return stat(resolve(this.root, path), { bigint: true });
  }

  /**
   * Records a digest we already know (a file just copied into or out of the store). With `before`
   * (its stat taken before it was read), nothing is recorded if the file changed meanwhile.
   */
  async remember(path: string, digest: string, before?: BigIntStats): Promise<void> {
    const abs = resolve(this.root, path);
    const now = await stat(abs, { bigint: true });
    if (before && !sameStat(before, now)) return;
    this.set(this.keyOf(abs), now, digest);
  }

  /**
   * Content digest of a file or a directory tree (a directory's digest covers each file's
   * relative path and digest). Undefined when the path does not exist.
   */
  async digestPath(path: string, signal?: AbortSignal): Promise<string | undefined> {
    const abs = resolve(this.root, path);
    const files = await listFiles(abs, '');
    if (!files) return undefined;
    if (files.length === 1 && files[0]!.rel === '') return (await this.digestFile(abs, { signal })).digest;
    // Many stats at once: a folder of 70,000 unchanged files is a stat each, and they overlap.
    const digests = new Array<string>(files.length);
    let next = 0;
    const lane = async () => {
      while (next < files.length) {
        const i = next++;
        try {
          digests[i] = (await this.digestFile(files[i]!.abs, { signal, stat: files[i]!.stat })).digest;
        } catch (err) {
          next = files.length; // the other lanes stop too
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DIGEST_LANES, files.length) }, lane));
    return 'tree:' + hashValue(files.map((f, i) => [f.rel, digests[i]!]));
  }

  /** Drops entries whose file no longer exists (gc). Returns how many were dropped. */
  async prune(): Promise<number> {
    let dropped = 0;
    await Promise.all(
      [...this.entries.keys()].map(async (key) => {
        try {
          await stat(resolve(this.root, key));
        } catch (err) {
          if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
          this.entries.delete(key);
          dropped++;
        }
      }),
    );
    if (dropped) this.dirty = true;
    return dropped;
  }

  /** Writes the cache if anything changed. */
  async save(): Promise<void> {
    if (!this.dirty) return;
    const data: CacheFile = { format: 1, entries: Object.fromEntries(this.entries) };
    await writeFileAtomic(this.file, JSON.stringify(data));
    this.dirty = false;
  }

  private lookup(key: string, st: BigIntStats): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    return e[0] === String(st.ino) && e[1] === Number(st.size) && e[2] === String(st.mtimeNs) ? e[3] : undefined;
  }

  private set(key: string, st: BigIntStats, digest: string): void {
    const e: Entry = [String(st.ino), Number(st.size), String(st.mtimeNs), digest];
    const old = this.entries.get(key);
    if (old && old.every((v, i) => v === e[i])) return;
    this.entries.set(key, e);
    this.dirty = true;
  }
}

function sameStat(a: BigIntStats, b: BigIntStats): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}
