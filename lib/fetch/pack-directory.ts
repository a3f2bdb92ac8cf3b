// A local directory into packs (pack.ts), incrementally: against the previous index, files whose
// path and digest are unchanged keep their place in the previous packs, which are carried over as
// they are (not copied, not hashed again); new and changed files go to new packs; a previous pack
// left less than half live is compacted (its live entries copied into new packs, crc-checked) and
// one with nothing live is left out (lib/incremental.ts). Digests come from the caller (the
// engine's stat cache), so an unchanged file costs a stat, not a read.
import { closeSync, fstatSync, openSync, readSync, type BigIntStats } from 'node:fs';
import { InterruptedError, PackIntegrityError } from '../errors.js';
import { planReuse, type PreviousLayout } from '../incremental.js';
import { listLocalTree, type LocalTree } from './local.js';
import { PackWriter, type PackEntry, type PackIndex, type PackReader } from './pack.js';

export interface DirectoryPackOptions {
  src: string;
  /** The pack directory to write. */
  dest: string;
  /** sha256 (hex) and size of a local file, unchanged files without reading them (`stat`: the walk's). */
  digest(path: string, stat: BigIntStats): Promise<{ digest: string; size: number }>;
  /** The previous index, and how to put one of its pack files into `dest` under the same name without copying. */
  previous?: { reader: PackReader; carry(file: string): Promise<void> };
  maxPackBytes?: number;
  signal: AbortSignal;
  /** Files digested, then files placed, of `total`. */
  onProgress?(phase: 'digest' | 'pack', done: number, total: number): void;
  warn?(message: string): void;
}

export interface DirectoryChanges {
  added: number;
  changed: number;
  removed: number;
  /** Files kept where they were (in a kept pack) or copied out of a compacted one. */
  reused: number;
  kept_packs: number;
  compacted_packs: number;
  /** Bytes read from the source directory (new and changed files). */
  bytes_read: number;
}

export interface DirectoryPackResult {
  index: PackIndex;
  files: number;
  bytes: number;
  changes: DirectoryChanges;
}

/** Digests in flight at once (unchanged files are stat-cache hits, new ones are read and hashed). */
const DIGEST_CONCURRENCY = 32;
const READ_CHUNK = 1 << 20;

export async function packDirectory(o: DirectoryPackOptions): Promise<DirectoryPackResult> {
  const tree = await listLocalTree(o.src, o.signal);
  const digests = await digestAll(tree.files, o);
  const current = tree.files.map((f, i) => ({ source: f.rel, digest: digests[i]!.digest }));
  const prev = o.previous?.reader;
  const plan = planReuse(prev && layoutOf(prev.index), true, current);

  const writer = new PackWriter(o.dest, o.maxPackBytes);
  const buffer = Buffer.allocUnsafe(READ_CHUNK);
  let bytesRead = 0;
  try {
    const carried = new Map<number, number>();
    for (const p of [...plan.keep].sort((a, b) => a - b)) {
      const info = prev!.index.packs[p]!;
      await o.previous!.carry(info.file);
      carried.set(p, writer.addExisting(info));
    }
    for (const d of tree.dirs) writer.addDir(d);
    for (const [i, file] of tree.files.entries()) {
      if (o.signal.aborted) throw new InterruptedError('fetch interrupted');
      const old = plan.from[i]!;
      const before = old >= 0 ? prev!.index.entries[old]! : undefined;
      if (before && carried.has(before.pack)) {
        writer.place({ ...before, path: file.rel, pack: carried.get(before.pack)! });
      } else if (before) {
        const entry = writer.add(file.rel, prev!.read(before));
        if (entry.sha256 !== before.sha256) throw new PackIntegrityError(`${prev!.packPath(before.pack)}: entry "${before.path}" does not match its sha256`);
      } else {
        const entry = addLocalFile(writer, file.rel, file.abs, buffer);
        bytesRead += entry.size;
        if (entry.sha256 !== digests[i]!.digest) o.warn?.(`${file.rel} changed while it was fetched; the next run will fetch it again`);
      }
      if (i % 256 === 255) o.onProgress?.('pack', i + 1, tree.files.length);
    }
    o.onProgress?.('pack', tree.files.length, tree.files.length);
    const index = await writer.finish();
    const bytes = index.entries.reduce((n, e) => n + e.size, 0);
    const { added, changed, removed, reused } = plan;
    return {
      index,
      files: index.entries.length,
      bytes,
      changes: { added, changed, removed, reused, kept_packs: plan.keep.size, compacted_packs: plan.compact.size, bytes_read: bytesRead },
    };
  } catch (err) {
    writer.abort();
    throw err;
  }
}

function layoutOf(index: PackIndex): PreviousLayout {
  return {
    source: index.entries.map((e) => e.path),
    digest: index.entries.map((e) => e.sha256),
    container: index.entries.map((e) => e.pack),
    weight: index.entries.map((e) => e.size),
    capacity: index.packs.map((p) => p.bytes),
  };
}

async function digestAll(files: LocalTree['files'], o: DirectoryPackOptions): Promise<Array<{ digest: string; size: number }>> {
  const paths = files.map((f) => f.abs);
  const out = new Array<{ digest: string; size: number }>(paths.length);
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < paths.length) {
      if (o.signal.aborted) throw new InterruptedError('fetch interrupted');
      const i = next++;
      try {
        out[i] = await o.digest(paths[i]!, files[i]!.stat);
      } catch (err) {
        next = paths.length; // the other lanes stop too
        throw err;
      }
      if (++done % 256 === 0) o.onProgress?.('digest', done, paths.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(DIGEST_CONCURRENCY, paths.length) }, lane));
  o.onProgress?.('digest', paths.length, paths.length);
  return out;
}

/** Streams one local file into the writer as entry `rel` (bounded memory whatever its size). */
export function addLocalFile(writer: PackWriter, rel: string, abs: string, buffer = Buffer.allocUnsafe(READ_CHUNK)): PackEntry {
  const fd = openSync(abs, 'r');
  try {
    writer.begin(rel, fstatSync(fd).size);
    let n: number;
    while ((n = readSync(fd, buffer, 0, buffer.length, null)) > 0) writer.write(buffer.subarray(0, n));
    return writer.end();
  } finally {
    closeSync(fd);
  }
}
