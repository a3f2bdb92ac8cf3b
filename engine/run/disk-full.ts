// A full disk while a stage writes (its command, a kind's outputs, the store's copy): say so, naming
// what was being written, and remove what the stage left half-written — only paths the tool owns (a
// cmd stage's declared outs, a kind's temporary output directory) — so the space comes back and the
// run record can be written.
import { lstat, readdir, rm, statfs } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { DiskFullError } from '../errors.js';
import { errorMessage, isDiskFull, isErrno } from '../store/fs-tree.js';
import { formatBytes } from '../../lib/format.js';
import { ownedOutPath } from './owned-paths.js';

/** What a command prints when a write fails for lack of space (glibc's strerror, Python's errno names...). */
const DISK_FULL_TEXT = /no space left on device|disk quota exceeded|\bENOSPC\b|\bEDQUOT\b/i;

/** Below this many free bytes, a failed command is taken to have failed for lack of space. */
const NEARLY_FULL_BYTES = 1 << 20;

/** Remembers the first line of a command's output that says the disk is full. */
export class DiskFullWatch {
  line: string | undefined;
  see(line: string): void {
    if (this.line === undefined && DISK_FULL_TEXT.test(line)) this.line = line.trim();
  }
}

/**
 * Why a command that failed did so for lack of space, or undefined: it said so (`said`, the line),
 * and/or it exited (was not killed) with the file system of the pipeline directory or of one of its
 * outs (almost) full (`fullDir`).
 */
export async function commandOutOfSpace(
  root: string,
  outs: readonly string[],
  said: string | undefined,
  killed: boolean,
): Promise<{ said?: string; fullDir?: string } | undefined> {
  let fullDir: string | undefined;
  for (const dir of new Set([root, ...outs.map((o) => dirname(join(root, o)))])) {
    try {
      const fs = await statfs(dir);
      if (fs.bavail * fs.bsize < NEARLY_FULL_BYTES) {
        fullDir = dir;
        break;
      }
    } catch {
      // Not there (an out's parent the command never made): nothing to learn from it.
    }
  }
  if (said === undefined && (killed || fullDir === undefined)) return undefined; // a signal is not a failed write
  return { ...(said !== undefined ? { said } : {}), ...(fullDir !== undefined ? { fullDir } : {}) };
}

/** The error a cmd stage's command fails with when it ran out of space (`exit`: how it ended). */
export function commandDiskFull(stage: string, exit: string, why: { said?: string; fullDir?: string }): DiskFullError {
  // The disk it names is one it filled; a command may also have filled another (its own /tmp...).
  const where = why.fullDir !== undefined ? `: the disk holding ${why.fullDir} is full` : '';
  const detail = why.said !== undefined ? `its command said: ${why.said}` : `its command ${exit}`;
  return new DiskFullError(`stage ${stage}: no space left on device${where} (${detail})`);
}

/**
 * A cmd stage hit a full disk (its command, or the store copying its outs): removes its outs, which
 * no run can use (the next one deletes them before running the command anyway), and says which.
 */
export async function diskFullInCommandStage(err: unknown, stage: string, root: string, outs: readonly string[], committing: boolean): Promise<DiskFullError> {
  const removed: string[] = [];
  const kept: string[] = [];
  for (const out of outs) {
    let abs: string;
    try {
      abs = await ownedOutPath(root, out, stage);
    } catch {
      continue; // not ours to delete
    }
    // The disk-full error is what the user must see: a failure while cleaning up does not replace it.
    const bytes = await sizeOf(abs).catch(() => 0);
    if (bytes === undefined) continue;
    try {
      await rm(abs, { recursive: true, force: true });
      removed.push(`${out} (${formatBytes(bytes)})`);
    } catch (e) {
      kept.push(`${out} (${errorMessage(e)})`);
    }
  }
  const what = withStage(stage, diskFullText(err));
  const partial = committing ? 'uncommitted' : 'partial';
  const plural = (list: string[]) => `out${list.length > 1 ? 's' : ''} ${list.join(', ')}`;
  const cleaned = [
    removed.length ? `removed its ${partial} ${plural(removed)} to free the space` : kept.length ? '' : 'it left no partial outs',
    kept.length ? `could not remove its ${partial} ${plural(kept)}` : '',
  ]
    .filter(Boolean)
    .join('; ');
  return new DiskFullError(`${what}; ${cleaned}`, { cause: err });
}

/**
 * A kind stage hit a full disk while writing its outputs in `outDir` (under artifacts/tmp/, removed
 * by the caller): names the file being written (from the error, else the newest file there).
 */
export async function diskFullInKindStage(err: unknown, stage: string, outDir: string): Promise<DiskFullError> {
  // A kind may have wrapped the system's error: its path is on that one.
  const sys = isDiskFull(err) ? err : err instanceof Error ? err.cause : err;
  let what: string;
  if (sys instanceof DiskFullError) what = sys.what;
  else {
    const named = [(sys as { dest?: unknown }).dest, (sys as { path?: unknown }).path].find(
      (p): p is string => typeof p === 'string' && p.startsWith(outDir + '/'),
    );
    const file = named ?? (await newestFile(outDir));
    const output = file === undefined ? 'its outputs' : `its output ${relative(outDir, file)}`;
    what = `no space left on device while writing ${output} in artifacts/tmp/ (the disk holding the store is full)`;
  }
  return new DiskFullError(`${withStage(stage, what)}; its partial outputs were removed`, { cause: err });
}

/** Whether a stage failed for lack of space (its own error, or what it wrapped). */
export function failedForSpace(err: unknown): boolean {
  return isDiskFull(err) || (err instanceof Error && isDiskFull(err.cause));
}

function diskFullText(err: unknown): string {
  if (err instanceof DiskFullError) return err.what;
  const path = (err as { dest?: unknown; path?: unknown }).dest ?? (err as { path?: unknown }).path;
  return typeof path === 'string' ? `no space left on device writing ${path}` : `no space left on device (${errorMessage(err)})`;
}

function withStage(stage: string, text: string): string {
  return text.startsWith(`stage ${stage}:`) ? text : `stage ${stage}: ${text}`;
}

/** Bytes of the files at or below `path` (links and special files count nothing); undefined if it does not exist. */
async function sizeOf(path: string): Promise<number | undefined> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
    throw err;
  }
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  let total = 0;
  for (const name of await readdir(path)) total += (await sizeOf(join(path, name))) ?? 0;
  return total;
}

/** The most recently modified file below `dir` (what a writer was busy with when the disk filled). */
async function newestFile(dir: string): Promise<string | undefined> {
  let best: { path: string; mtimeMs: number } | undefined;
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      const st = await lstat(p).catch(() => undefined);
      if (st?.isDirectory()) await walk(p);
      else if (st?.isFile() && (!best || st.mtimeMs >= best.mtimeMs)) best = { path: p, mtimeMs: st.mtimeMs };
    }
  };
  await walk(dir);
  return best?.path;
}
