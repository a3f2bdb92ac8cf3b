// Moving finished outputs into the store. Objects first (harmless if we die: unreferenced objects
// are collected by gc), then the view, then the manifest — the manifest rename is the commit.
import type { StatCache } from '../store/stat-cache.js';
import type { ObjectStore } from '../store/objects.js';
import type { OutputFile } from '../store/manifest.js';
import { stat, unlink } from 'node:fs/promises';
import { isDiskFull, isErrno, listTree } from '../store/fs-tree.js';
import { DiskFullError } from '../errors.js';

export interface CommittedTree {
  files: Record<string, OutputFile>;
  dirs: string[];
}

/**
 * Adopts a kind stage's temporary output directory: every file (nested directories included) is
 * hashed and renamed into objects/ (same file system, no copy). Paths are relative to `dir`.
 * `onFile(done, total)` follows the work: a fetched image folder is tens of thousands of files.
 * A file listed in `reused` (path → digest) that is still a hard link to that very object is
 * recorded without reading it.
 */
export async function adoptTree(
  objects: ObjectStore,
  dir: string,
  signal?: AbortSignal,
  onFile?: (done: number, total: number) => void,
  reused?: ReadonlyMap<string, string>,
): Promise<CommittedTree> {
  const tree = (await listTree(dir, '')) ?? { files: [], dirs: [] };
  const files: Record<string, OutputFile> = {};
  let done = 0;
  for (const f of tree.files) {
    signal?.throwIfAborted();
    const digest = reused?.get(f.rel);
    if (digest && (await isLinkTo(objects, digest, f.stat))) {
      await unlink(f.abs);
      files[f.rel] = { digest, size: Number(f.stat.size) };
    } else {
      files[f.rel] = await storing(f.rel, () => objects.adopt(f.abs, signal));
    }
    onFile?.(++done, tree.files.length);
  }
  return { files, dirs: tree.dirs };
}

/** Whether a file is the stored object `digest` itself (same inode), so its bytes are the object's. */
async function isLinkTo(objects: ObjectStore, digest: string, file: { ino: bigint; dev: bigint }): Promise<boolean> {
  try {
    const object = await stat(objects.path(digest), { bigint: true });
    return object.ino === file.ino && object.dev === file.dev;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/**
 * Copies a cmd stage's workspace outs into objects/ (hashing in the same pass) and records each
 * file's stat in the stat cache, so the next run sees them unchanged without rehashing. Paths are
 * relative to the pipeline root. Outs that do not exist are returned in `missing`.
 */
export async function ingestWorkspaceOuts(
  objects: ObjectStore,
  statCache: StatCache,
  root: string,
  outs: readonly string[],
  signal?: AbortSignal,
): Promise<CommittedTree & { missing: string[] }> {
  const files: Record<string, OutputFile> = {};
  const dirs: string[] = [];
  const missing: string[] = [];
  for (const out of outs) {
    const tree = await listTree(root, out);
    if (!tree) {
      missing.push(out);
      continue;
    }
    dirs.push(...tree.dirs);
    for (const f of tree.files) {
      signal?.throwIfAborted();
      const before = await statCache.statOf(f.abs);
      const stored = await storing(f.rel, () => objects.ingestCopy(f.abs, signal));
      files[f.rel] = stored;
      // The command has exited: nothing else writes these files now, so recent mtimes are not racy.
      await statCache.remember(f.abs, stored.digest, before);
    }
  }
  return { files, dirs, missing };
}

/** Runs one store write, naming the file when the disk is full (not a bare `ENOSPC ... write`). */
async function storing<T>(rel: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (isDiskFull(err))
      throw new DiskFullError(`no space left on device while storing ${rel} in artifacts/ (the disk holding the store is full)`, { cause: err });
    throw err;
  }
}
