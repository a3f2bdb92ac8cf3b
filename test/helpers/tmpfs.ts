// Small tmpfs mounts for the full-disk tests. Mounting needs root on Linux (CI runs as root); where it
// is not permitted, the tests are skipped with the reason (found by a real attempt, not by guessing).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let mountable: boolean | undefined;
const warned = new Set<string>();

/** Whether this process may mount a tmpfs: tries one (1 MB) and unmounts it. */
export function canMountTmpfs(): boolean {
  if (mountable !== undefined) return mountable;
  mountable = false;
  if (process.platform !== 'linux') return false;
  const probe = mkdtempSync(join(tmpdir(), 'tmpfs-probe-'));
  try {
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]).status !== 0) return false;
    spawnSync('umount', [probe]);
    mountable = true;
    return true;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Why the full-disk tests of `suite` are skipped (printed once), or undefined when they run. */
export function tmpfsSkipReason(suite: string): string | undefined {
  if (canMountTmpfs()) return undefined;
  const reason = `${suite}: cannot mount a tmpfs (needs root on Linux; a real mount was tried): the full-disk tests are skipped`;
  if (!warned.has(suite)) console.warn(reason);
  warned.add(suite);
  return reason;
}

/** Mounts a tmpfs of `size` (e.g. `20m`) on the existing directory `dir`. */
export function mountTmpfs(dir: string, size: string): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
}

/** Gives the tmpfs on `dir` a new size: "freeing space" without touching its files. */
export function resizeTmpfs(dir: string, size: string): void {
  const r = spawnSync('mount', ['-o', `remount,size=${size}`, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`remount tmpfs on ${dir}: ${r.stderr}`);
}

export function unmountTmpfs(dir: string): void {
  spawnSync('umount', [dir]);
}
