// Content-addressed object storage: objects/<first 2 hex>/<rest of sha256>, read-only files (0444),
// written under a temporary name and renamed into place, so an object either exists whole or not at all.
import { chmod, copyFile, constants, link, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { copyAndHash, hashFile } from './hash.js';
import { isErrno, randomSuffix } from './fs-tree.js';
import { CorruptObjectError } from '../errors.js';

export interface StoredObject {
  digest: string;
  size: number;
}

const DIGEST = /^[0-9a-f]{64}$/;

export class ObjectStore {
  constructor(
    /** artifacts/objects */
    readonly dir: string,
    /** Same file system as `dir`, for objects being written. */
    private readonly tmpDir: string,
  ) {}

  /** Called with each object this process places in the store (to vouch for it in the stat cache). */
  onPlaced?: (path: string, digest: string) => Promise<void>;
  /** Whether an existing object still holds its bytes (stat cache, else a hash), before a new output is deduplicated into it. */
  isSound?: (path: string, digest: string) => Promise<boolean>;

  path(digest: string): string {
    return join(this.dir, digest.slice(0, 2), digest.slice(2));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await stat(this.path(digest));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /**
   * Moves a file the store owns (a stage's temporary output, on the same file system) into the
   * store: hash, make read-only, rename. No copy.
   */
  async adopt(file: string, signal?: AbortSignal): Promise<StoredObject> {
    const { digest, size } = await hashFile(file, signal);
    await this.place(file, digest);
    return { digest, size };
  }

  /** Copies a workspace file into the store, hashing it in the same pass. */
  async ingestCopy(file: string, signal?: AbortSignal): Promise<StoredObject> {
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = join(this.tmpDir, `object-${process.pid}-${randomSuffix()}`);
    try {
      const { digest, size } = await copyAndHash(file, tmp, signal);
      await this.place(tmp, digest);
      return { digest, size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async place(file: string, digest: string): Promise<void> {
    const dest = this.path(digest);
    if (await this.has(digest)) {
      if (!this.isSound || (await this.isSound(dest, digest))) {
        await unlink(file);
        return;
      }
      // The stored copy is corrupt: the good bytes we hold replace it (rename is atomic).
    }
    await chmod(file, 0o444);
    await mkdir(join(this.dir, digest.slice(0, 2)), { recursive: true });
    await rename(file, dest);
    await this.onPlaced?.(dest, digest);
  }

  /**
   * A writable copy of an object at `dest` (reflink where the file system supports it), checked
   * against its digest: a corrupt object is never copied out (CorruptObjectError, nothing left at `dest`).
   */
  async copyOut(digest: string, dest: string, signal?: AbortSignal): Promise<void> {
    await copyFile(this.path(digest), dest, constants.COPYFILE_FICLONE);
    const { digest: actual } = await hashFile(dest, signal);
    if (actual !== digest) {
      await rm(dest, { force: true });
      throw new CorruptObjectError(digest, actual);
    }
    await chmod(dest, 0o644);
  }

  /** A read-only view of an object at `dest`: a hard link, or a copy across file systems. */
  async linkOut(digest: string, dest: string): Promise<void> {
    try {
      await link(this.path(digest), dest);
    } catch (err) {
      if (!isErrno(err, 'EXDEV', 'EPERM', 'EMLINK')) throw err;
      await copyFile(this.path(digest), dest, constants.COPYFILE_FICLONE);
      await chmod(dest, 0o444);
    }
  }

  /** Every object in the store (size from stat; names that are not digests are skipped). */
  async list(): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let fans: string[];
    try {
      fans = await readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return out;
      throw err;
    }
    for (const fan of fans.sort()) {
      if (!/^[0-9a-f]{2}$/.test(fan)) continue;
      for (const rest of (await readdir(join(this.dir, fan))).sort()) {
        const digest = fan + rest;
        if (!DIGEST.test(digest)) continue;
        out.push({ digest, size: (await stat(join(this.dir, fan, rest))).size });
      }
    }
    return out;
  }

  async remove(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }
}
