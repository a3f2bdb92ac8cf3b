// Where decode reads its sources: a directory on disk, or a pack (lib/fetch/pack.ts) — both seen as
// a tree of directories and files. Paths are written as paths under `root` (for a pack, its
// directory), so the dataset scanners and their messages are the same for both.
import { readdirSync, readFileSync, statSync, type Dirent } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { DatasetError } from '../errors.js';
import type { PackEntry, PackReader } from '../fetch/pack.js';

export type SourceKind = 'file' | 'dir';

export interface SourceDirent {
  name: string;
  /** Symlinks are followed; `other` for special files and broken links. */
  kind: SourceKind | 'other';
}

/** Where a worker thread reads a source: a whole file, or `size` bytes at `offset` of a pack (crc32-checked). */
export interface SourceLocation {
  file: string;
  packed?: { offset: number; size: number; crc32: number; entry: string };
}

export interface SourceTree {
  /** The tree's root, as paths in it are written. */
  readonly root: string;
  /** Entries directly in directory `path`; undefined when it is not a directory. */
  list(path: string): SourceDirent[] | undefined;
  kind(path: string): SourceKind | undefined;
  size(path: string): number;
  /** A file's bytes (a pack entry checked against its crc32). */
  read(path: string): Uint8Array;
  /** A file's sha256 (hex): from the pack index, or the store's manifest, else hashed. */
  digest(path: string): string;
  locate(path: string): SourceLocation;
  close(): void;
}

/** A directory on disk; `known(path)` gives a file's digest when someone already has it (the store's manifest). */
export class DirectoryTree implements SourceTree {
  constructor(
    readonly root: string,
    private readonly known: (path: string) => string | undefined = () => undefined,
  ) {}

  list(path: string): SourceDirent[] | undefined {
    let entries: Dirent[];
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw new DatasetError(`cannot read directory ${path}: ${(err as Error).message}`, { cause: err });
    }
    return entries.map((e) => ({ name: e.name, kind: direntKind(path, e) }));
  }

  kind(path: string): SourceKind | undefined {
    const s = statSync(path, { throwIfNoEntry: false });
    return s?.isFile() ? 'file' : s?.isDirectory() ? 'dir' : undefined;
  }

  size(path: string): number {
    return statSync(path).size;
  }

  read(path: string): Uint8Array {
    return readFileSync(path);
  }

  digest(path: string): string {
    const known = this.known(path);
    if (known && /^[0-9a-f]{64}$/.test(known)) return known;
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  }

  locate(path: string): SourceLocation {
    return { file: path };
  }

  close(): void {}
}

function direntKind(dir: string, e: Dirent): SourceDirent['kind'] {
  if (e.isFile()) return 'file';
  if (e.isDirectory()) return 'dir';
  if (!e.isSymbolicLink()) return 'other';
  const s = statSync(join(dir, e.name), { throwIfNoEntry: false });
  return s?.isFile() ? 'file' : s?.isDirectory() ? 'dir' : 'other';
}

/** A pack, its directories rebuilt from the index (no file is read until asked for). */
export class PackTree implements SourceTree {
  readonly root: string;
  private readonly children = new Map<string, SourceDirent[]>();

  constructor(private readonly reader: PackReader) {
    this.root = reader.dir;
    this.children.set('', []);
    for (const d of reader.index.dirs) this.children.set(d, []);
    const add = (path: string, kind: SourceKind) => {
      const slash = path.lastIndexOf('/');
      this.children.get(slash < 0 ? '' : path.slice(0, slash))!.push({ name: path.slice(slash + 1), kind });
    };
    for (const d of reader.index.dirs) add(d, 'dir');
    for (const e of reader.index.entries) add(e.path, 'file');
  }

  list(path: string): SourceDirent[] | undefined {
    const rel = this.relative(path);
    return rel === undefined ? undefined : this.children.get(rel)?.slice();
  }

  kind(path: string): SourceKind | undefined {
    const rel = this.relative(path);
    if (rel === undefined) return undefined;
    if (this.children.has(rel)) return 'dir';
    return this.reader.entry(rel) ? 'file' : undefined;
  }

  size(path: string): number {
    return this.entry(path).size;
  }

  read(path: string): Uint8Array {
    return this.reader.read(this.entry(path));
  }

  digest(path: string): string {
    return this.entry(path).sha256;
  }

  locate(path: string): SourceLocation {
    const e = this.entry(path);
    return { file: this.reader.packPath(e.pack), packed: { offset: e.offset, size: e.size, crc32: e.crc32, entry: e.path } };
  }

  close(): void {
    this.reader.close();
  }

  private relative(path: string): string | undefined {
    if (path === this.root) return '';
    return path.startsWith(this.root + '/') ? path.slice(this.root.length + 1) : undefined;
  }

  private entry(path: string): PackEntry {
    const rel = this.relative(path);
    const e = rel === undefined ? undefined : this.reader.entry(rel);
    if (!e) throw new DatasetError(`${path}: no such file`);
    return e;
  }
}
