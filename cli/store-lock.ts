// Taking the store lock for a command, as every command that writes the store does: waiting with a
// line saying who holds it, a line when a dead holder's lock is broken. `withStoreLock` also stops
// the wait on Ctrl-C (gc, verify, promote); `run` has its own signal handling and takes the lock itself.
import { AbortedError } from '../engine/errors.js';
import { acquireStoreLock, describeBreak, describeHolder, type StoreLock } from '../engine/store/lock.js';

export interface CommandLockOptions {
  timeoutSeconds: number;
  signal: AbortSignal;
  /** Appended to the "waiting for the store lock" line (e.g. how long it waits). */
  waitNote?: string;
}

export function acquireCommandLock(storeDir: string, options: CommandLockOptions): Promise<StoreLock> {
  return acquireStoreLock(storeDir, {
    timeoutMs: options.timeoutSeconds * 1000,
    command: ['pipeline', ...process.argv.slice(2)].join(' '),
    signal: options.signal,
    onWait: (h) => process.stderr.write(`waiting for the store lock, held by ${describeHolder(h)}${options.waitNote ?? ''}\n`),
    onBreak: (h) => process.stderr.write(`${describeBreak(h)}\n`),
  });
}

/** Runs a maintenance command (gc, verify, promote) with the store lock held, waiting like `run` does. */
export async function withStoreLock<T>(storeDir: string, timeoutSeconds: number, fn: () => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const onSignal = () => stop.abort(new AbortedError());
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    const lock = await acquireCommandLock(storeDir, { timeoutSeconds, signal: stop.signal });
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}
