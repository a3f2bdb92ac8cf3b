// Running a maintenance command (gc, verify) with the store lock held, waiting like `run` does.
import { AbortedError } from '../engine/errors.js';
import { acquireStoreLock, describeBreak, describeHolder } from '../engine/store/lock.js';

export async function withStoreLock<T>(storeDir: string, timeoutSeconds: number, fn: () => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const onSignal = () => stop.abort(new AbortedError());
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    const lock = await acquireStoreLock(storeDir, {
      timeoutMs: timeoutSeconds * 1000,
      command: ['pipeline', ...process.argv.slice(2)].join(' '),
      signal: stop.signal,
      onWait: (h) => process.stderr.write(`waiting for the store lock, held by ${describeHolder(h)}\n`),
      onBreak: (h) => process.stderr.write(`${describeBreak(h)}\n`),
    });
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
