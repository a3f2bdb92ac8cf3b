// Safe unpacking of .tar / .tar.gz / .tgz (the `tar` package's parser) and .zip (`yauzl`), into a
// directory or into packs (entry-sinks.ts): one walk per format, the same checks either way. Every
// entry is checked before anything is written: `..` segments, absolute paths, paths through a
// symlink the archive created, and links whose target would leave the output directory are each
// rejected with a FetchError naming the entry (the whole extraction stops; the stage commits
// nothing). Decompression bombs are refused by one rule for gzip and zip (inflate-limit.ts), on the
// bytes actually inflated, with bounded memory: gzip is inflated here, in pieces, with backpressure
// (the tar package inflates each 1 MiB read at once, which buffered a 1 GiB bomb before its own
// ratio check fired); a zip's declared sizes are checked up front and its actual bytes while
// streaming. Sparse files, which neither unpacker reproduces, are refused as such.
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { basename, posix } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { crc32, createGunzip } from 'node:zlib';
// tar and yauzl load on first use: this module is reachable from every command's kind registry.
import type * as Tar from 'tar';
import type { Entry as ZipEntry, ZipFile } from 'yauzl';
import { FetchError, InterruptedError } from '../errors.js';
import { DirectorySink, PackSink, type EntryData, type EntrySink } from './entry-sinks.js';
import { normalizeEntryPath, unsafePathReason } from './entry-path.js';
import { bombReason, InflateGuard, overInflateLimit } from './inflate-limit.js';
import type { PackIndex } from './pack.js';

export type ArchiveFormat = 'tar' | 'tar.gz' | 'zip';

export interface ExtractOptions {
  /** Name used in error messages (default: the file's base name). */
  label?: string;
  signal?: AbortSignal;
  /** Archive bytes consumed so far, of `total`. */
  onProgress?: (done: number, total: number) => void;
}

export interface ExtractStats {
  /** Regular files, hard links included. */
  files: number;
  dirs: number;
  symlinks: number;
}

export interface PackStats extends ExtractStats {
  index: PackIndex;
  /** Symlinks that led to no file of the archive (skipped), as the archive names them. */
  dangling: string[];
}

/** The archive format a file name announces (`extract: auto`), or null. */
export function archiveFormatFromName(name: string): ArchiveFormat | null {
  const lower = name.toLowerCase();
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tar.gz';
  if (lower.endsWith('.tar')) return 'tar';
  if (lower.endsWith('.zip')) return 'zip';
  return null;
}

/** The archive format from a file's first bytes (for `extract: true` on an unhelpful name), or null. */
export async function sniffArchiveFormat(path: string): Promise<ArchiveFormat | null> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
    if (bytesRead >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
    if (bytesRead >= 4 && head.readUInt32LE(0) === 0x06054b50) return 'zip'; // empty zip
    if (bytesRead === 512 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return null;
  } finally {
    await file.close();
  }
}

/** Unpacks an archive into the directory `dest`. */
export async function extractArchive(file: string, format: ArchiveFormat, dest: string, options: ExtractOptions = {}): Promise<ExtractStats> {
  if (options.signal?.aborted) throw new InterruptedError('fetch interrupted');
  await mkdir(dest, { recursive: true });
  return unpackInto(file, format, new DirectorySink(dest), options);
}

/**
 * Unpacks an archive into packs under `dest` (pack.ts): entries stream straight into packs, no
 * file is written per entry. Hard links and symlinks to files become entries with their target's
 * bytes; a symlink to a directory is refused, one that leads nowhere is skipped (listed in `dangling`).
 */
export async function packArchive(
  file: string,
  format: ArchiveFormat,
  dest: string,
  options: ExtractOptions & { maxPackBytes?: number } = {},
): Promise<PackStats> {
  if (options.signal?.aborted) throw new InterruptedError('fetch interrupted');
  const sink = new PackSink(dest, options.label ?? basename(file), options.maxPackBytes);
  const stats = await unpackInto(file, format, sink, options);
  return { ...stats, index: sink.index!, dangling: sink.dangling };
}

async function unpackInto(file: string, format: ArchiveFormat, sink: EntrySink, options: ExtractOptions): Promise<ExtractStats> {
  const label = options.label ?? basename(file);
  const guard = new EntryGuard(label);
  try {
    const stats = await (format === 'zip' ? walkZip(file, guard, label, sink, options) : walkTar(file, guard, label, sink, options));
    await sink.finish();
    return stats;
  } catch (err) {
    sink.abort();
    if (isErrnoError(err)) throw new FetchError(`cannot unpack ${label}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * A local I/O failure worth naming the entry for. A full disk is left as it is: the engine says
 * where the store ran out of space and what it removed.
 */
function isErrnoError(err: unknown): err is NodeJS.ErrnoException {
  // No instanceof: a system error may come from another realm (a test's VM context).
  return typeof err === 'object' && err !== null && typeof (err as NodeJS.ErrnoException).syscall === 'string' && !isDiskFull(err);
}

function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * Validates entry paths and link targets against everything the archive created so far. Link
 * targets may only climb with leading `..` from the link's own directory (which holds no
 * symlinks, since no entry may pass through one), so lexical resolution is the real one.
 */
class EntryGuard {
  private readonly symlinks = new Set<string>();

  constructor(readonly archive: string) {}

  /** The entry's normalized relative path ('' for the root), or a FetchError. */
  path(name: string): string {
    const unsafe = unsafePathReason(name);
    if (unsafe !== null) this.reject(name, unsafe);
    const rel = normalizeEntryPath(name);
    const through = this.symlinkPrefix(rel, false);
    if (through !== null) this.reject(name, `path goes through the archive's symlink "${through}"`);
    return rel;
  }

  symlink(name: string, rel: string, target: string): void {
    if (target === '' || target.includes('\0')) this.reject(name, 'empty or invalid symlink target');
    if (/^([A-Za-z]:)?[\\/]/.test(target)) this.reject(name, `symlink to absolute path "${target}"`);
    const parts = target.split(/[\\/]/).filter((p) => p !== '' && p !== '.');
    const ups = parts.findIndex((p) => p !== '..');
    const climb = ups === -1 ? parts.length : ups;
    if (parts.slice(climb).includes('..')) this.reject(name, `symlink target "${target}" has '..' after a name`);
    const depth = rel.split('/').length - 1;
    if (climb > depth) this.reject(name, `symlink target "${target}" points outside the output`);
    this.symlinks.add(rel);
  }

  hardlink(name: string, target: string): string {
    if (/^([A-Za-z]:)?[\\/]/.test(target)) this.reject(name, `hard link to absolute path "${target}"`);
    if (target.split(/[\\/]/).includes('..')) this.reject(name, `hard link target "${target}" points outside the output`);
    const rel = posix.normalize(target).replace(/^\.\//, '');
    // A hard link to a symlink would re-resolve its relative target from a different directory.
    const through = this.symlinkPrefix(rel, true);
    if (through !== null) this.reject(name, `hard link target "${target}" goes through the archive's symlink "${through}"`);
    return rel;
  }

  /** The first symlink among rel's ancestors (and rel itself when `self`), or null. */
  private symlinkPrefix(rel: string, self: boolean): string | null {
    if (this.symlinks.size === 0 || rel === '') return null;
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length - (self ? 0 : 1); i++) {
      const prefix = parts.slice(0, i).join('/');
      if (this.symlinks.has(prefix)) return prefix;
    }
    return null;
  }

  reject(name: string, why: string): never {
    throw new FetchError(`unsafe entry "${name}" in ${this.archive}: ${why}`);
  }

  sparse(name: string): FetchError {
    return new FetchError(`unsupported entry "${name}" in ${this.archive}: sparse files are not supported (re-create the archive without --sparse)`);
  }
}

// ---- tar -------------------------------------------------------------------------------------

/** What a sink is asked to do with one admitted entry. */
type Admitted =
  | { kind: 'dir'; rel: string }
  | { kind: 'file'; rel: string; size: number; executable: boolean }
  | { kind: 'symlink'; rel: string; target: string }
  | { kind: 'hardlink'; rel: string; target: string };

/**
 * Hands one admitted entry to the sink, naming the entry when the sink fails on local I/O. `data`:
 * the entry's bytes (files only; other entries carry none).
 */
async function deliver(sink: EntrySink, name: string, entry: Admitted, data: EntryData | undefined, label: string): Promise<void> {
  try {
    switch (entry.kind) {
      case 'dir':
        return sink.dir(entry.rel);
      case 'file':
        return await sink.file(entry.rel, data!, entry.size, entry.executable);
      case 'symlink':
        return sink.symlink(name, entry.rel, entry.target);
      case 'hardlink':
        return sink.hardlink(name, entry.rel, entry.target);
    }
  } catch (err) {
    if (isErrnoError(err)) throw new FetchError(`cannot extract "${name}" from ${label}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** A file or link must name something below the output directory, not the directory itself. */
function notRoot(guard: EntryGuard, name: string, rel: string): string {
  if (rel === '') guard.reject(name, 'names the output directory itself');
  return rel;
}

async function walkTar(file: string, guard: EntryGuard, label: string, sink: EntrySink, options: ExtractOptions): Promise<ExtractStats> {
  const tar = await import('tar');
  const stats: ExtractStats = { files: 0, dirs: 0, symlinks: 0 };
  return new Promise<ExtractStats>((resolve, reject) => {
    let settled = false;
    // Small reads: progress and the bomb rule see the archive at a fine grain.
    const input = createReadStream(file, { highWaterMark: 1 << 16 });
    const gzip = isGzip(file);
    const gunzip = gzip ? createGunzip() : undefined;
    // Entries are checked as their headers are parsed (archive order), then handed to the sink
    // one after another: the parser waits while the sink takes an entry's bytes.
    const admitted = new WeakMap<Tar.ReadEntry, Admitted>();
    let delivered: Promise<void> = Promise.resolve();
    let reading: Tar.ReadEntry | undefined;
    const parser = new tar.Parser({
      // Every warning (bad checksum, truncated data, an invalid entry) is an error here.
      strict: true,
      // Decompression is ours (gzip, below); a zstd stream is not a supported archive.
      zstd: false,
      filter: (_path, entry) => {
        try {
          admitted.set(entry as Tar.ReadEntry, admitTarEntry(entry as Tar.ReadEntry, guard, stats));
          return true;
        } catch (err) {
          fail(err as Error);
          return false;
        }
      },
    });

    const onAbort = (): void => fail(new InterruptedError('fetch interrupted'));
    const finish = (): void => {
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      finish();
      input.destroy();
      gunzip?.destroy();
      reading?.destroy();
      parser.abort(err);
      reject(err);
    };
    const succeed = (): void => {
      delivered.then(() => {
        if (settled) return;
        finish();
        resolve(stats);
      }, fail);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    // The entry tar is reading (for the bomb message), and whether a PAX header announced a
    // sparse file: tar drops the GNU.sparse.* keys and would give the file's condensed data.
    let current = '';
    let sparse: string | null = null;
    parser.on('meta', (text: string) => {
      if (/(^|\n)\d+ GNU\.sparse\./.test(text)) sparse = /(?:^|\n)\d+ GNU\.sparse\.name=([^\n]*)/.exec(text)?.[1] ?? '';
    });
    parser.on('entry', (entry: Tar.ReadEntry) => {
      current = entry.path;
      if (sparse !== null) return fail(guard.sparse(sparse || entry.path));
      const what = admitted.get(entry)!;
      if (what.kind !== 'file') entry.resume();
      delivered = delivered.then(async () => {
        if (settled) return;
        reading = entry;
        await deliver(sink, entry.path, what, entry as unknown as EntryData, label);
        reading = undefined;
      });
      delivered.catch(fail);
    });
    // tar skips old-GNU sparse entries (type S) without a word: the archive looked empty.
    parser.on('ignoredEntry', (entry: Tar.ReadEntry) => {
      if (entry.type === 'SparseFile') fail(guard.sparse(entry.path));
    });

    let checkingEmpty = false;
    let total = 0;
    let done = 0;
    stat(file).then(
      (s) => (total = s.size),
      () => {},
    );
    input.on('data', (chunk) => {
      done += chunk.length;
      options.onProgress?.(done, total);
    });
    input.on('error', (err) => fail(new FetchError(`reading ${label}: ${err.message}`, { cause: err })));
    parser.on('error', (err: Error & { entry?: { path?: string }; tarCode?: string }) => {
      // tar refuses an archive of nothing but end-of-archive blocks (what `tar -cf x.tar -T
      // /dev/null` writes) as "unrecognized": that is a valid, empty archive, not a corrupt one.
      if (settled || err.tarCode !== 'TAR_BAD_ARCHIVE' || stats.files + stats.dirs + stats.symlinks > 0) return fail(tarError(err, label));
      input.destroy();
      checkingEmpty = true;
      isAllZeros(file, gzip).then(
        (empty) => {
          if (settled) return;
          if (!empty) return fail(tarError(err, label));
          succeed();
        },
        () => fail(tarError(err, label)),
      );
    });
    parser.on('close', () => {
      if (settled || checkingEmpty) return;
      succeed();
    });

    if (gunzip) {
      const bombGuard = new InflateGuard(
        () => gunzip.bytesWritten,
        (inflated, compressed) => new FetchError(`unsafe entry "${current}" in ${label}: ${bombReason(inflated, compressed)}`),
      );
      gunzip.on('error', (err) => fail(new FetchError(`${label} is corrupt or truncated: ${err.message}`, { cause: err })));
      bombGuard.on('error', fail);
      input.pipe(gunzip).pipe(bombGuard).pipe(parser);
    } else {
      input.pipe(parser);
    }
  });
}

/** Checks one tar entry and says what it is. Throws a FetchError for an unsafe or unsupported one. */
function admitTarEntry(entry: Tar.ReadEntry, guard: EntryGuard, stats: ExtractStats): Admitted {
  const rel = guard.path(entry.path);
  switch (entry.type) {
    case 'Directory':
    case 'GNUDumpDir':
      stats.dirs++;
      return { kind: 'dir', rel };
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      stats.files++;
      return { kind: 'file', rel: notRoot(guard, entry.path, rel), size: entry.size ?? 0, executable: ((entry.mode ?? 0) & 0o111) !== 0 };
    case 'SymbolicLink':
      guard.symlink(entry.path, notRoot(guard, entry.path, rel), entry.linkpath ?? '');
      stats.symlinks++;
      return { kind: 'symlink', rel, target: entry.linkpath ?? '' };
    case 'Link': {
      const target = guard.hardlink(entry.path, entry.linkpath ?? '');
      stats.files++;
      return { kind: 'hardlink', rel: notRoot(guard, entry.path, rel), target };
    }
    default:
      throw new FetchError(`unsupported entry "${entry.path}" in ${guard.archive}: type ${entry.type}`);
  }
}

const DAMAGED_ARCHIVE = new Set(['TAR_BAD_ARCHIVE', 'TAR_ABORT', 'TAR_ENTRY_INVALID']);

function tarError(err: Error & { entry?: { path?: string }; tarCode?: string }, label: string): Error {
  if (err instanceof FetchError || err instanceof InterruptedError) return err;
  const entry = err.entry?.path;
  const message = err.message.replace(/^TAR_[A-Z_]+: /, '');
  if (!entry || DAMAGED_ARCHIVE.has(err.tarCode ?? '')) {
    return new FetchError(`${label} is corrupt or truncated${entry ? ` (at "${entry}")` : ''}: ${message}`, { cause: err });
  }
  return new FetchError(`cannot extract "${entry}" from ${label}: ${message}`, { cause: err });
}

/** Whether the file starts with gzip's magic (an unreadable file is not: reading it reports why). */
function isGzip(file: string): boolean {
  const head = Buffer.alloc(2);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** Whether the (gunzipped) tar stream holds only zero bytes, i.e. end-of-archive blocks or nothing. */
async function isAllZeros(file: string, gzip: boolean): Promise<boolean> {
  const input = createReadStream(file);
  const stream: Readable = gzip ? input.pipe(createGunzip()) : input;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (chunk.some((b) => b !== 0)) return false;
    }
    return true;
  } finally {
    input.destroy();
    stream.destroy();
  }
}

// ---- zip -------------------------------------------------------------------------------------

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
const MADE_BY_UNIX = 3;

async function walkZip(file: string, guard: EntryGuard, label: string, sink: EntrySink, options: ExtractOptions): Promise<ExtractStats> {
  const stats: ExtractStats = { files: 0, dirs: 0, symlinks: 0 };
  const { default: yauzl } = await import('yauzl');
  let zip: ZipFile;
  try {
    // decodeStrings off: names are decoded and checked here, so the error names the entry.
    // Sizes and CRCs are checked here too (ZipEntryCheck), with messages that say which.
    zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false });
  } catch (err) {
    throw new FetchError(`${label} is corrupt or truncated: ${(err as Error).message}`, { cause: err });
  }
  try {
    const entries = await declaredEntries(zip, guard);
    let done = 0;
    for (const entry of entries) {
      if (options.signal?.aborted) throw new InterruptedError('fetch interrupted');
      await unpackZipEntry(zip, entry, guard, sink, stats, label).catch((err: unknown) => {
        throw zipEntryError(err, entry, label);
      });
      done += entry.compressedSize;
      options.onProgress?.(done, zip.fileSize);
    }
  } catch (err) {
    if (options.signal?.aborted) throw new InterruptedError('fetch interrupted');
    if (err instanceof FetchError || err instanceof InterruptedError || isDiskFull(err)) throw err;
    throw new FetchError(`${label} is corrupt or truncated: ${(err as Error).message}`, { cause: err });
  } finally {
    zip.close();
  }
  return stats;
}

/** The raw name of a zip entry, for messages (before it is checked). */
function zipEntryName(entry: ZipEntry): string {
  return entry.fileNameRaw.toString('utf8');
}

/**
 * Reads the whole central directory first and refuses, before anything is written, an archive
 * whose declared sizes already break the bomb rule, naming the entry where they do.
 */
async function declaredEntries(zip: ZipFile, guard: EntryGuard): Promise<ZipEntry[]> {
  const entries: ZipEntry[] = [];
  let inflated = 0;
  let compressed = 0;
  for await (const entry of zip.eachEntry()) {
    inflated += entry.uncompressedSize;
    compressed += entry.compressedSize;
    if (overInflateLimit(inflated, compressed)) guard.reject(zipEntryName(entry), bombReason(inflated, compressed, true));
    entries.push(entry);
  }
  return entries;
}

/**
 * Counts an entry's inflated bytes and their CRC-32 against what its header declares: more bytes
 * are refused at once (a header that understates a bomb), fewer bytes or another CRC at the end
 * mean a damaged archive.
 */
class ZipEntryCheck extends Transform {
  private bytes = 0;
  private crc = 0;

  constructor(
    private readonly entry: ZipEntry,
    private readonly guard: EntryGuard,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    const declared = this.entry.uncompressedSize;
    if (this.bytes > declared) {
      try {
        this.guard.reject(zipEntryName(this.entry), `inflates past the ${declared.toLocaleString('en-US')} bytes its header declares`);
      } catch (err) {
        return done(err as Error);
      }
    }
    this.crc = crc32(chunk, this.crc);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const { uncompressedSize, crc32: declaredCrc } = this.entry;
    if (this.bytes < uncompressedSize)
      return done(new Error(`${this.bytes.toLocaleString('en-US')} bytes inflated, ${uncompressedSize.toLocaleString('en-US')} declared`));
    if (this.crc !== declaredCrc) return done(new Error('CRC-32 mismatch: the data is damaged'));
    done();
  }
}

async function unpackZipEntry(zip: ZipFile, entry: ZipEntry, guard: EntryGuard, sink: EntrySink, stats: ExtractStats, label: string): Promise<void> {
  const { default: yauzl } = await import('yauzl'); // already loaded by walkZip
  const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
  const rel = guard.path(name);
  const unixMode = entry.versionMadeBy >> 8 === MADE_BY_UNIX ? entry.externalFileAttributes >>> 16 : 0;

  if (name.endsWith('/') || (unixMode & S_IFMT) === S_IFDIR) {
    stats.dirs++;
    return deliver(sink, name, { kind: 'dir', rel }, undefined, label);
  }
  notRoot(guard, name, rel);
  const raw = await zip.openReadStreamPromise(entry);
  const stream = raw.pipe(new ZipEntryCheck(entry, guard));
  raw.on('error', (err) => stream.destroy(err));
  stream.on('close', () => raw.destroy());

  if ((unixMode & S_IFMT) === S_IFLNK) {
    const target = (await readSmall(stream, 4096)).toString('utf8');
    guard.symlink(name, rel, target);
    stats.symlinks++;
    return deliver(sink, name, { kind: 'symlink', rel, target }, undefined, label);
  }
  stats.files++;
  await deliver(sink, name, { kind: 'file', rel, size: entry.uncompressedSize, executable: (unixMode & 0o111) !== 0 }, stream, label);
}

/** Local I/O failures name the entry; anything else means the archive itself is damaged. */
function zipEntryError(err: unknown, entry: ZipEntry, label: string): Error {
  if (err instanceof FetchError || err instanceof InterruptedError || isDiskFull(err)) return err as Error;
  const name = entry.fileNameRaw.toString('utf8');
  const message = err instanceof Error ? err.message : String(err);
  if ((err as NodeJS.ErrnoException).syscall) return new FetchError(`cannot extract "${name}" from ${label}: ${message}`, { cause: err });
  return new FetchError(`${label} is corrupt or truncated (entry "${name}"): ${message}`, { cause: err });
}

async function readSmall(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      stream.destroy();
      throw new FetchError(`symlink target longer than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
