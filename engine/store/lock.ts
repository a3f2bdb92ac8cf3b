// The store lock: one writer at a time. proper-lockfile's lock directory (kept fresh by mtime
// updates, so a frozen or vanished holder goes stale) plus a JSON holder file saying who holds it,
// so a waiter can print it, and can break at once a lock whose holder died on this host.
import { readFileSync, rmSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AbortedError, LockError } from '../errors.js';
import { isErrno, isSyntaxError, writeFileAtomic } from './fs-tree.js';
import { processAlive, processStartTime } from './processes.js';

export interface LockHolder {
  pid: number;
  command: string;
  startedAt: string;
  hostname: string;
  /** Inode of the lock directory this holder created: a holder file describes only that directory. */
  lockIno: number;
  /** Start time of the holder process (store/processes.ts): a pid reused by another process is not the holder. */
  pidStart?: string;
}

export interface StoreLock {
  readonly holder: LockHolder;
  /** Aborted if the lock was lost (its directory removed or taken over as stale). */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Give up after this long (0: fail at once if held). */
  timeoutMs: number;
  /** Shown to waiters, e.g. `pipeline run train`. */
  command: string;
  signal?: AbortSignal;
  /** Called once when we start waiting, with whoever holds the lock. */
  onWait?(holder: LockHolder | undefined): void;
  /** Called when a lock left by a dead process is broken (undefined: it had no holder record). */
  onBreak?(holder: LockHolder | undefined): void;
  pollMs?: number;
  /** A lock directory not refreshed for this long is stale (proper-lockfile). */
  staleMs?: number;
  /**
   * A lock directory without a holder record this old was left by a process that died while taking
   * the lock (a live one writes the record right after creating the directory; 5 s leaves room
   * for a busy machine).
   */
  unrecordedMs?: number;
}

export function lockPaths(storeDir: string): { dir: string; holder: string } {
  return { dir: join(storeDir, 'lock'), holder: join(storeDir, 'lock.json') };
}

/**
 * Removes this process's lock synchronously, for a process that exits at once (a second Ctrl-C) and
 * cannot await release(). Best effort: the next taker breaks a lock whose holder is gone anyway.
 */
export function removeOwnLockSync(storeDir: string): void {
  const paths = lockPaths(storeDir);
  try {
    const holder = JSON.parse(readFileSync(paths.holder, 'utf8')) as Partial<LockHolder>;
    if (holder.pid === process.pid) {
      rmSync(paths.holder, { force: true });
      rmSync(paths.dir, { recursive: true, force: true });
    }
  } catch {
    // No holder file, or not ours: nothing of ours to remove.
  }
}

export async function readLockHolder(storeDir: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse(await readFile(lockPaths(storeDir).holder, 'utf8')) as LockHolder;
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isSyntaxError(err)) return undefined;
    throw err;
  }
}

/** The line printed when a dead process's lock is broken. */
export function describeBreak(h: LockHolder | undefined): string {
  if (!h) return 'broke a store lock without a holder record (its process died while taking it)';
  return `broke the store lock left by pid ${h.pid} (${h.command}), which is no longer running`;
}

export function describeHolder(h: LockHolder | undefined): string {
  if (!h) return 'another process (no holder record yet)';
  const host = h.hostname === hostname() ? '' : ` on ${h.hostname}`;
  return `pid ${h.pid}${host} (${h.command}) since ${h.startedAt}`;
}

/** Whether the holder process is still running (not merely some process with its pid). */
function holderAlive(h: LockHolder): boolean {
  return processAlive(h.pid, h.pidStart);
}

/** How long ago the lock directory was created or last refreshed (0 if it is gone). */
async function lockDirAgeMs(dir: string): Promise<number> {
  try {
    return Date.now() - (await stat(dir)).mtimeMs;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
}

async function lockDirIno(dir: string): Promise<number | undefined> {
  try {
    return (await stat(dir)).ino;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function acquireStoreLock(storeDir: string, options: AcquireOptions): Promise<StoreLock> {
  const { lock } = await import('proper-lockfile');
  const paths = lockPaths(storeDir);
  const staleMs = options.staleMs ?? 20_000;
  const deadline = Date.now() + options.timeoutMs;
  const lost = new AbortController();
  let announced = false;

  for (;;) {
    if (options.signal?.aborted) throw new AbortedError();
    const holder = await readLockHolder(storeDir);
    const ino = await lockDirIno(paths.dir);
    const holderOwnsDir = holder !== undefined && ino !== undefined && holder.lockIno === ino;
    const sameHost = holder?.hostname === hostname();

    // A holder on this host whose pid is gone: break its lock now instead of waiting for staleness.
    if (holderOwnsDir && sameHost && holder.pid !== process.pid && !holderAlive(holder)) {
      await rm(paths.dir, { recursive: true, force: true });
      await rm(paths.holder, { force: true });
      options.onBreak?.(holder);
      continue;
    }
    if (!holderOwnsDir && ino !== undefined && (await lockDirAgeMs(paths.dir)) > (options.unrecordedMs ?? 5000)) {
      await rm(paths.dir, { recursive: true, force: true });
      options.onBreak?.(undefined);
      continue;
    }
    // A live holder on this host is never treated as stale, even if its event loop was busy for long.
    const liveHere = holderOwnsDir && sameHost && holderAlive(holder);
    if (!liveHere) {
      try {
        const releaseDir = await lock(storeDir, {
          lockfilePath: paths.dir,
          realpath: false,
          stale: staleMs,
          retries: 0,
          onCompromised: (err) => lost.abort(new LockError(`lost the store lock: ${err.message}`)),
        });
        const me: LockHolder = {
          pid: process.pid,
          command: options.command,
          startedAt: new Date().toISOString(),
          hostname: hostname(),
          lockIno: (await stat(paths.dir)).ino,
          pidStart: processStartTime(process.pid),
        };
        try {
          await writeFileAtomic(paths.holder, JSON.stringify(me, null, 2) + '\n');
        } catch (err) {
          // A full disk, say: leave no lock without a holder behind (others would wait on it for a while).
          await releaseDir().catch(() => {});
          throw err;
        }
        return {
          holder: me,
          lost: lost.signal,
          async release() {
            const current = await readLockHolder(storeDir);
            if (current?.pid === me.pid && current.lockIno === me.lockIno) await rm(paths.holder, { force: true });
            try {
              await releaseDir();
            } catch (err) {
              if (!isErrno(err, 'ERELEASED', 'ENOENT')) throw err;
            }
          },
        };
      } catch (err) {
        if (!isErrno(err, 'ELOCKED')) throw err;
      }
    }
    const now = Date.now();
    if (now >= deadline) {
      throw new LockError(
        `the store ${storeDir} is locked by ${describeHolder(holder)}; gave up after ${Math.round(options.timeoutMs / 1000)}s (--lock-timeout)`,
      );
    }
    if (!announced) {
      announced = true;
      options.onWait?.(holder);
    }
    await delay(Math.min(options.pollMs ?? 100, deadline - now), options.signal);
  }
}
