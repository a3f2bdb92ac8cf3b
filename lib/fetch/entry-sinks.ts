// Where an archive's entries go once extract.ts has walked and checked them: files in a directory
// (DirectorySink, `layout: files`) or entries of packs (PackSink, `layout: packed`). A sink sees
// entries one at a time, in archive order, with paths already checked (EntryGuard); what a sink
// cannot hold is refused here with a FetchError naming the entry.
import { closeSync, linkSync, mkdirSync, openSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { FetchError, PackError } from '../errors.js';
import { PackWriter, type PackEntry, type PackIndex } from './pack.js';

/** An entry's bytes as they are unpacked: a tar entry, or a zip entry's checked stream. */
export interface EntryData {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  destroy?(): unknown;
}

export interface EntrySink {
  dir(rel: string): void;
  /** A regular file: `data` is consumed to its end before the promise resolves. */
  file(rel: string, data: EntryData, size: number, executable: boolean): Promise<void>;
  /** `name`: the entry as the archive names it, for messages; `target` as the archive gives it. */
  symlink(name: string, rel: string, target: string): void;
  /** A hard link to the earlier entry at `target` (a checked, normalised relative path). */
  hardlink(name: string, rel: string, target: string): void;
  /** After the last entry. */
  finish(): Promise<void>;
  /** After a failure: leave nothing half-written behind. */
  abort(): void;
}

/**
 * Feeds `data`'s chunks to `onChunk` as they arrive (synchronous writes: the source never runs
 * ahead of the disk); rejects on the stream's error or onChunk's.
 */
export function consume(data: EntryData, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    // 'end' first: a tar entry whose bytes are all buffered ends as soon as 'data' is listened to.
    data.on('end', () => {
      if (!failed) resolve();
    });
    data.on('error', (err) => {
      failed = true;
      reject(err);
    });
    data.on('data', (chunk) => {
      if (failed) return;
      try {
        onChunk(chunk);
      } catch (err) {
        failed = true;
        data.destroy?.();
        reject(err as Error);
      }
    });
  });
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/** Files on disk under `dest`, never written through what is already at a path (a link from an earlier entry). */
export class DirectorySink implements EntrySink {
  private readonly made = new Set<string>();
  private readonly written = new Set<string>();

  constructor(private readonly dest: string) {
    mkdirSync(dest, { recursive: true });
  }

  dir(rel: string): void {
    this.mkdir(rel);
  }

  async file(rel: string, data: EntryData, _size: number, executable: boolean): Promise<void> {
    const fd = openSync(this.prepare(rel), 'wx', executable ? 0o755 : 0o644);
    try {
      await consume(data, (chunk) => writeAll(fd, chunk));
    } finally {
      closeSync(fd);
    }
  }

  symlink(_name: string, rel: string, target: string): void {
    symlinkSync(target, this.prepare(rel));
  }

  hardlink(_name: string, rel: string, target: string): void {
    linkSync(join(this.dest, target), this.prepare(rel));
  }

  async finish(): Promise<void> {}

  abort(): void {}

  /** The absolute path for `rel`, its directory made and anything an earlier entry left there removed. */
  private prepare(rel: string): string {
    const target = join(this.dest, rel);
    this.mkdir(posix.dirname(rel));
    if (this.written.has(rel)) rmSync(target, { force: true });
    this.written.add(rel);
    return target;
  }

  private mkdir(rel: string): void {
    if (rel === '.' || rel === '' || this.made.has(rel)) return;
    mkdirSync(join(this.dest, rel), { recursive: true });
    for (let d = rel; d !== '.' && !this.made.has(d); d = dirname(d)) this.made.add(d);
  }
}

/** The most symlinks followed to reach a file (Linux's own limit). */
const MAX_SYMLINK_HOPS = 40;

/**
 * Entries of packs (pack.ts) under `dest`. A hard link is its target's bytes again (an index
 * entry pointing at the same place, no copy). A symlink is resolved when the archive is done: to
 * a file of the archive, it becomes that file's bytes the same way; to a directory it is refused
 * (a pack holds files); one that leads nowhere is skipped with a warning (as decode would skip it
 * in a folder).
 */
export class PackSink implements EntrySink {
  readonly writer: PackWriter;
  private readonly files = new Map<string, PackEntry>();
  private readonly links = new Map<string, { name: string; target: string }>();
  private readonly dirs = new Set<string>(['']);
  index: PackIndex | undefined;
  /** Symlinks that led nowhere, as the archive names them. */
  readonly dangling: string[] = [];

  constructor(
    dest: string,
    private readonly archive: string,
    maxPackBytes?: number,
  ) {
    this.writer = new PackWriter(dest, maxPackBytes);
  }

  dir(rel: string): void {
    this.writer.addDir(rel);
    this.dirs.add(rel);
  }

  async file(rel: string, data: EntryData, size: number): Promise<void> {
    this.links.delete(rel);
    this.writer.begin(rel, size);
    await consume(data, (chunk) => this.writer.write(chunk));
    this.files.set(rel, this.writer.end());
  }

  symlink(name: string, rel: string, target: string): void {
    if (this.files.delete(rel)) this.writer.forget(rel);
    // Lexical resolution is the real one: no entry lies below an archive symlink (EntryGuard).
    this.links.set(rel, { name, target: posix.normalize(posix.join(posix.dirname(rel), target.replace(/\\/g, '/'))) });
  }

  hardlink(name: string, rel: string, target: string): void {
    const entry = this.files.get(target);
    if (!entry) throw new FetchError(`cannot extract "${name}" from ${this.archive}: hard link target "${target}" is not an earlier file of the archive`);
    this.links.delete(rel);
    this.place(rel, entry);
  }

  async finish(): Promise<void> {
    for (const [rel, link] of this.links) {
      const entry = this.resolve(link.name, rel);
      if (entry) this.place(rel, entry);
      else this.dangling.push(link.name);
    }
    try {
      this.index = await this.writer.finish();
    } catch (err) {
      if (err instanceof PackError) throw new FetchError(`cannot pack ${this.archive}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  abort(): void {
    this.writer.abort();
  }

  private place(rel: string, entry: PackEntry): void {
    const placed = { ...entry, path: rel };
    this.writer.place(placed);
    this.files.set(rel, placed);
  }

  /** The file a symlink leads to, following symlinks to symlinks; undefined when it leads nowhere. */
  private resolve(name: string, rel: string): PackEntry | undefined {
    let at = rel;
    for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
      const link = this.links.get(at);
      if (!link) break;
      at = link.target;
    }
    if (this.links.has(at)) throw new FetchError(`unsupported entry "${name}" in ${this.archive}: symlink loop (more than ${MAX_SYMLINK_HOPS} links)`);
    if (at === '.') at = '';
    const file = this.files.get(at);
    if (file) return file;
    if (this.dirs.has(at) || [...this.files.keys(), ...this.links.keys()].some((p) => p.startsWith(at + '/'))) {
      throw new FetchError(
        `unsupported entry "${name}" in ${this.archive}: a symlink to a directory ("${at}"); packs hold files (use layout: files to keep it as a link)`,
      );
    }
    return undefined;
  }
}
