// Packs (docs/datasets.md, "Fast ingest"): a tree of files kept as a few large files, so the store
// holds tens of objects where it held tens of thousands.
//   pack/index.json   format, packs, directories, and per entry (sorted by path): path, size,
//                     pack (index into packs), offset, sha256, crc32
//   pack/<id>.bin     entries' bytes back to back, up to ~64 MiB (a larger entry gets a pack of its own)
// A pack's id is the sha256 of the (size, sha256) list of the entries written into it, so the same
// bytes always make the same file (one object in the store). Reads are positioned reads, and each
// entry is checked against its crc32 before anyone sees its bytes (the store's sha256 covers packs
// at rest, for `verify`).
import { createHash, type Hash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { PackError, PackIntegrityError } from '../errors.js';
import { isCleanEntryPath } from './entry-path.js';

export const PACK_DIR = 'pack';
export const PACK_INDEX = 'index.json';
export const PACK_FORMAT = 'file-pack';
export const PACK_VERSION = 1;
export const DEFAULT_PACK_BYTES = 64 << 20;

export interface PackInfo {
  /** sha256 (hex) of the (size, sha256) list of the entries written into it. */
  id: string;
  /** File name inside the pack directory: `<id>.bin`. */
  file: string;
  bytes: number;
}

export interface PackEntry {
  /** Relative, `/`-separated, in normal form (no `.`, `..` or empty segments). */
  path: string;
  size: number;
  /** Index into the index's packs. */
  pack: number;
  offset: number;
  sha256: string;
  crc32: number;
}

export interface PackIndex {
  format: typeof PACK_FORMAT;
  version: typeof PACK_VERSION;
  packs: PackInfo[];
  /** Every directory of the tree (implied ones too), sorted: empty directories survive packing. */
  dirs: string[];
  /** Sorted by path (code unit order). */
  entries: PackEntry[];
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const SHA256 = /^[0-9a-f]{64}$/;

// ---- reading ---------------------------------------------------------------------------------

/** Reads and checks `dir/index.json` (not the packs' bytes). */
export async function readPackIndex(dir: string): Promise<PackIndex> {
  const where = join(dir, PACK_INDEX);
  let index: PackIndex;
  try {
    index = JSON.parse(await readFile(where, 'utf8')) as PackIndex;
  } catch (err) {
    throw new PackError(`${dir}: not a readable pack (${(err as Error).message})`, { cause: err });
  }
  checkIndex(index, where);
  return index;
}

function checkIndex(index: PackIndex, where: string): void {
  const bad = (what: string): never => {
    throw new PackError(`${where}: ${what}`);
  };
  if (index?.format !== PACK_FORMAT) bad(`format is ${JSON.stringify(index?.format)}, expected ${PACK_FORMAT}`);
  if (index.version !== PACK_VERSION) bad(`version ${index.version} is not supported (this build reads ${PACK_VERSION})`);
  if (!Array.isArray(index.packs) || !Array.isArray(index.dirs) || !Array.isArray(index.entries)) bad('packs, dirs and entries must be lists');
  for (const p of index.packs) {
    if (typeof p?.id !== 'string' || !SHA256.test(p.id) || p.file !== `${p.id}.bin` || !isInt(p.bytes, 0, Number.MAX_SAFE_INTEGER)) {
      bad(`bad pack ${JSON.stringify(p)}`);
    }
  }
  const dirs = new Set<string>();
  for (const d of index.dirs) {
    if (typeof d !== 'string' || !isCleanEntryPath(d)) bad(`bad directory ${JSON.stringify(d)}`);
    dirs.add(d);
  }
  const parentListed = (path: string) => {
    const slash = path.lastIndexOf('/');
    return slash < 0 || dirs.has(path.slice(0, slash));
  };
  for (const d of dirs) if (!parentListed(d)) bad(`directory "${d}": its parent is not listed`);
  let last = '';
  index.entries.forEach((e, i) => {
    if (typeof e?.path !== 'string' || !isCleanEntryPath(e.path)) bad(`entry ${i}: bad path ${JSON.stringify(e?.path)}`);
    if (i > 0 && byCodeUnit(last, e.path) >= 0) bad(`entry ${i}: "${e.path}" is out of order or repeated`);
    last = e.path;
    if (dirs.has(e.path)) bad(`entry ${i}: "${e.path}" is also a directory`);
    if (!parentListed(e.path)) bad(`entry "${e.path}": its directory is not listed`);
    if (!isInt(e.pack, 0, index.packs.length - 1)) bad(`entry "${e.path}": pack ${JSON.stringify(e.pack)} is out of range`);
    const pack = index.packs[e.pack]!;
    if (!isInt(e.size, 0, pack.bytes) || !isInt(e.offset, 0, pack.bytes - e.size)) bad(`entry "${e.path}": bytes outside its pack ${pack.file}`);
    if (typeof e.sha256 !== 'string' || !SHA256.test(e.sha256)) bad(`entry "${e.path}": sha256 must be 64 hex digits`);
    if (!isInt(e.crc32, 0, 0xffffffff)) bad(`entry "${e.path}": crc32 ${JSON.stringify(e.crc32)} is not a crc32`);
  });
}

/**
 * Reads `size` bytes at `offset` of an open pack file into `into` (from its start) and checks them
 * against `crc`; `describe()` names the entry in the error. For worker threads that get (file,
 * offset, size) rather than a reader.
 */
export function readPackedInto(fd: number, offset: number, size: number, crc: number, into: Uint8Array, describe: () => string): Uint8Array {
  const target = into.subarray(0, size);
  let done = 0;
  while (done < size) {
    const n = readSync(fd, target, done, size - done, offset + done);
    if (n === 0) throw new PackIntegrityError(`${describe()} is truncated: the pack is damaged (run \`pipeline verify\`)`);
    done += n;
  }
  if (crc32(target) !== crc) throw new PackIntegrityError(`${describe()} does not match its checksum: the pack is damaged (run \`pipeline verify\`)`);
  return target;
}

/** How an entry is named in an integrity error: its path and where its bytes are. */
export function describeEntry(packPath: string, path: string, offset: number, size: number): string {
  return `${packPath}: entry "${path}" (${size} bytes at ${offset})`;
}

export class PackReader {
  private readonly byPath = new Map<string, number>();
  private readonly fds: Array<number | undefined>;
  private readonly paths: string[];

  private constructor(
    readonly dir: string,
    readonly index: PackIndex,
  ) {
    index.entries.forEach((e, i) => this.byPath.set(e.path, i));
    this.fds = new Array<number | undefined>(index.packs.length);
    this.paths = index.packs.map((p) => join(dir, p.file));
  }

  static async open(dir: string): Promise<PackReader> {
    return new PackReader(dir, await readPackIndex(dir));
  }

  entry(path: string): PackEntry | undefined {
    const i = this.byPath.get(path);
    return i === undefined ? undefined : this.index.entries[i];
  }

  /** Absolute path of pack `pack` (an index into the index's packs). */
  packPath(pack: number): string {
    return this.paths[pack]!;
  }

  /** An entry's bytes (a new buffer), checked against its crc32. */
  read(entry: PackEntry): Buffer {
    const out = Buffer.allocUnsafe(entry.size);
    readPackedInto(this.fd(entry.pack), entry.offset, entry.size, entry.crc32, out, () =>
      describeEntry(this.packPath(entry.pack), entry.path, entry.offset, entry.size),
    );
    return out;
  }

  close(): void {
    for (const fd of this.fds) if (fd !== undefined) closeSync(fd);
    this.fds.fill(undefined);
  }

  private fd(pack: number): number {
    const open = this.fds[pack];
    if (open !== undefined) return open;
    try {
      const fd = openSync(this.packPath(pack), 'r');
      this.fds[pack] = fd;
      return fd;
    } catch (err) {
      throw new PackIntegrityError(`${this.packPath(pack)}: cannot open pack (${(err as Error).message})`, { cause: err });
    }
  }
}

// ---- writing ---------------------------------------------------------------------------------

/** Bytes gathered before a write: entries are often ~1 KB (a CIFAR JPEG), writes should not be. */
const STAGING_BYTES = 4 << 20;

interface OpenPack {
  index: number;
  fd: number;
  tmp: string;
  bytes: number;
  id: Hash;
}

interface OpenEntry {
  path: string;
  offset: number;
  size: number;
  sha256: Hash;
  crc: number;
}

/**
 * Writes entries into packs of bounded size under `dir` (synchronous I/O through a staging buffer:
 * an archive's entries arrive as synchronous stream events). Entries go in with `add`, or streamed
 * with `begin` / `write` / `end`; entries already in a pack (a kept previous pack, a hard link) with
 * `place`. `finish` writes index.json. The same path added twice keeps the last one, as unpacking
 * an archive does.
 */
export class PackWriter {
  private readonly packs: PackInfo[] = [];
  private readonly entries: PackEntry[] = [];
  private readonly dirs = new Set<string>();
  private current: OpenPack | undefined;
  private entry: OpenEntry | undefined;
  private readonly staging = Buffer.allocUnsafe(STAGING_BYTES);
  private staged = 0;
  private serial = 0;

  constructor(
    readonly dir: string,
    private readonly maxPackBytes = DEFAULT_PACK_BYTES,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  /** Registers a pack file already in `dir` (carried over from a previous index); returns its number for `place`. */
  addExisting(info: PackInfo): number {
    this.packs.push({ ...info });
    return this.packs.length - 1;
  }

  /** Records an entry whose bytes are already in pack `entry.pack` of this writer. */
  place(entry: PackEntry): void {
    this.entries.push({ ...entry });
  }

  /** Drops what was added for `path` so far (an archive entry replaced by something that is not a file). */
  forget(path: string): void {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.path === path) this.entries.splice(i, 1);
  }

  addDir(path: string): void {
    if (path !== '') this.dirs.add(path);
  }

  /** Adds an entry whose bytes are all at hand. */
  add(path: string, bytes: Uint8Array): PackEntry {
    this.begin(path, bytes.length);
    this.write(bytes);
    return this.end();
  }

  /** Starts an entry of about `sizeHint` bytes (where the pack is cut); then `write` its bytes and `end` it. */
  begin(path: string, sizeHint: number): void {
    if (this.entry) throw new Error(`pack writer: entry ${this.entry.path} is still open`);
    if (this.current && this.current.bytes > 0 && this.current.bytes + sizeHint > this.maxPackBytes) this.closePack();
    const pack = this.current ?? this.openPack();
    this.entry = { path, offset: pack.bytes, size: 0, sha256: createHash('sha256'), crc: 0 };
  }

  write(chunk: Uint8Array): void {
    const entry = this.entry;
    if (!entry) throw new Error('pack writer: write() outside an entry');
    entry.sha256.update(chunk);
    entry.crc = crc32(chunk, entry.crc);
    entry.size += chunk.length;
    this.current!.bytes += chunk.length;
    if (this.staged + chunk.length > this.staging.length) this.flush();
    if (chunk.length >= this.staging.length) this.writeOut(chunk);
    else {
      this.staging.set(chunk, this.staged);
      this.staged += chunk.length;
    }
  }

  end(): PackEntry {
    const e = this.entry;
    if (!e) throw new Error('pack writer: end() outside an entry');
    this.entry = undefined;
    const entry: PackEntry = { path: e.path, size: e.size, pack: this.current!.index, offset: e.offset, sha256: e.sha256.digest('hex'), crc32: e.crc };
    this.current!.id.update(`${entry.size} ${entry.sha256}\n`);
    this.entries.push(entry);
    return entry;
  }

  /** Closes the open pack and writes index.json; returns the index. */
  async finish(): Promise<PackIndex> {
    if (this.entry) throw new Error(`pack writer: entry ${this.entry.path} is still open`);
    this.closePack();
    const index = this.assemble();
    await writeFile(join(this.dir, PACK_INDEX), JSON.stringify(index) + '\n');
    return index;
  }

  /** Removes the pack being written (after a failure; closed packs are left to the caller's output tree). */
  abort(): void {
    const pack = this.current;
    this.current = undefined;
    this.entry = undefined;
    this.staged = 0;
    if (!pack) return;
    try {
      closeSync(pack.fd);
    } catch {
      // already closed
    }
    rmSync(pack.tmp, { force: true });
  }

  private openPack(): OpenPack {
    const tmp = join(this.dir, `.writing-${this.serial++}.bin`);
    const fd = openSync(tmp, 'w');
    this.packs.push({ id: '', file: '', bytes: 0 });
    this.current = { index: this.packs.length - 1, fd, tmp, bytes: 0, id: createHash('sha256') };
    return this.current;
  }

  private flush(): void {
    if (this.staged === 0) return;
    this.writeOut(this.staging.subarray(0, this.staged));
    this.staged = 0;
  }

  /** Writes to the open pack; a failure (a full disk) names the pack file, as a failed write to a path would. */
  private writeOut(bytes: Uint8Array): void {
    try {
      writeAll(this.current!.fd, bytes);
    } catch (err) {
      if (typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).path === undefined) (err as NodeJS.ErrnoException).path = this.current!.tmp;
      throw err;
    }
  }

  private closePack(): void {
    const pack = this.current;
    if (!pack) return;
    try {
      this.flush();
    } finally {
      closeSync(pack.fd);
      this.current = undefined;
    }
    const id = pack.id.digest('hex');
    const info = { id, file: `${id}.bin`, bytes: pack.bytes };
    // The same bytes as a pack already here (kept, or written twice): one file, one name.
    if (this.packs.some((p) => p.id === id)) rmSync(pack.tmp);
    else renameSync(pack.tmp, join(this.dir, info.file));
    this.packs[pack.index] = info;
  }

  /** Packs deduplicated by id (empty ones dropped), entries sorted with the last of each path kept. */
  private assemble(): PackIndex {
    const latest = new Map<string, PackEntry>();
    for (const e of this.entries) latest.set(e.path, e);
    const used = new Map<string, number>();
    const packs: PackInfo[] = [];
    const entries = [...latest.values()].sort((a, b) => byCodeUnit(a.path, b.path));
    for (const e of entries) {
      const info = this.packs[e.pack]!;
      let n = used.get(info.id);
      if (n === undefined) {
        n = packs.length;
        used.set(info.id, n);
        packs.push(info);
      }
      e.pack = n;
    }
    for (const p of this.packs) {
      if (!used.has(p.id)) rmSync(join(this.dir, p.file), { force: true }); // all its entries were replaced
    }
    const dirs = new Set<string>();
    for (const path of [...this.dirs, ...entries.map((e) => e.path)]) for (const d of parentsOf(path)) dirs.add(d);
    for (const d of this.dirs) dirs.add(d);
    for (const e of entries) {
      if (dirs.has(e.path)) throw new PackError(`"${e.path}" is both a file and a directory`);
    }
    return { format: PACK_FORMAT, version: PACK_VERSION, packs, dirs: [...dirs].sort(byCodeUnit), entries };
  }
}

/** `a/b/c` → `a`, `a/b`. */
function parentsOf(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/'); i > 0; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  return out;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}
