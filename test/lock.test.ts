// The store lock: holder record, waiting, timeouts, and breaking locks whose holder is gone.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, utimes, writeFile, readFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireStoreLock, lockPaths, readLockHolder, type LockHolder } from '../engine/store/lock.js';
import { AbortedError, LockError } from '../engine/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lock-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** A lock directory with a holder record, as another process would leave it. */
async function foreignLock(holder: Omit<LockHolder, 'lockIno'>, ageMs = 0): Promise<void> {
  const { dir: lockDir, holder: holderFile } = lockPaths(dir);
  await mkdir(lockDir);
  if (ageMs) {
    const t = new Date(Date.now() - ageMs);
    await utimes(lockDir, t, t);
  }
  await writeFile(holderFile, JSON.stringify({ ...holder, lockIno: (await stat(lockDir)).ino }));
}

describe('store lock', () => {
  test('acquire writes who holds it; release removes lock and record', async () => {
    const lock = await acquireStoreLock(dir, { timeoutMs: 0, command: 'pipeline run' });
    const holder = await readLockHolder(dir);
    expect(holder).toMatchObject({ pid: process.pid, command: 'pipeline run', hostname: hostname() });
    expect(Date.parse(holder!.startedAt)).not.toBeNaN();
    await lock.release();
    expect(await exists(lockPaths(dir).dir)).toBe(false);
    expect(await exists(lockPaths(dir).holder)).toBe(false);
  });

  test('a held lock makes a second taker wait, then fail naming the holder', async () => {
    const first = await acquireStoreLock(dir, { timeoutMs: 0, command: 'pipeline run first' });
    const waited: (LockHolder | undefined)[] = [];
    const err = await acquireStoreLock(dir, { timeoutMs: 300, command: 'second', onWait: (h) => waited.push(h), pollMs: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockError);
    expect((err as Error).message).toContain(`pid ${process.pid}`);
    expect((err as Error).message).toContain('pipeline run first');
    expect(waited).toHaveLength(1); // printed once, not on every poll
    expect(waited[0]?.pid).toBe(process.pid);
    await first.release();
  });

  test('a waiter gets the lock as soon as the holder releases it', async () => {
    const first = await acquireStoreLock(dir, { timeoutMs: 0, command: 'first' });
    const second = await acquireStoreLock(dir, {
      timeoutMs: 30_000,
      command: 'second',
      pollMs: 20,
      onWait: () => void first.release(),
    });
    expect((await readLockHolder(dir))?.command).toBe('second');
    await second.release();
  });

  test('a lock whose holder pid is dead on this host is broken at once', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await foreignLock({ pid: dead, command: 'pipeline run (killed)', startedAt: new Date().toISOString(), hostname: hostname() });
    const broken: (LockHolder | undefined)[] = [];
    const lock = await acquireStoreLock(dir, { timeoutMs: 0, command: 'next', onBreak: (h) => broken.push(h) });
    expect(broken.map((h) => h?.pid)).toEqual([dead]);
    expect((await readLockHolder(dir))?.pid).toBe(process.pid);
    await lock.release();
  });

  test('a live holder on another host is waited for; its lock breaks only when stale by mtime', async () => {
    await foreignLock({ pid: 1, command: 'pipeline run', startedAt: new Date().toISOString(), hostname: 'elsewhere' });
    const err = await acquireStoreLock(dir, { timeoutMs: 0, command: 'x' }).catch((e: unknown) => e);
    expect((err as Error).message).toContain('pid 1 on elsewhere');

    await rm(lockPaths(dir).dir, { recursive: true });
    await foreignLock({ pid: 1, command: 'pipeline run', startedAt: new Date().toISOString(), hostname: 'elsewhere' }, 60_000);
    const lock = await acquireStoreLock(dir, { timeoutMs: 0, command: 'x', staleMs: 5_000 });
    expect(JSON.parse(await readFile(lockPaths(dir).holder, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  test('waiting stops when the signal aborts (Ctrl-C)', async () => {
    const first = await acquireStoreLock(dir, { timeoutMs: 0, command: 'first' });
    const stop = new AbortController();
    const err = await acquireStoreLock(dir, { timeoutMs: 60_000, command: 'second', signal: stop.signal, onWait: () => stop.abort() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortedError);
    await first.release();
  });
});
