// Retention as `pipeline gc --keep-runs/--keep-days` and `pipeline schedule` (its `retention:`) apply
// it: the run records the policy prunes (engine/store/retention.ts), keeping the runs of every
// promoted model (models/current and its history). Call with the store lock held.
import { promotedRunIds } from '../promote/promote.js';
import { pruneRuns, type PruneReport, type RetentionPolicy } from '../store/retention.js';
import type { Store } from '../store/store.js';
import { acquireStoreLock } from '../store/lock.js';
import { LockError } from '../errors.js';

export type { PruneReport, RetentionPolicy };

export async function applyRetention(
  store: Store,
  root: string,
  policy: RetentionPolicy,
  options: { dryRun?: boolean; now?: Date } = {},
): Promise<PruneReport> {
  return pruneRuns(store.runs, { policy, keepIds: await promotedRunIds(root), ...options });
}

/** `pruned 12 run records (3 logs dirs)`, or undefined when nothing was pruned. */
export function describePrune(report: PruneReport, dryRun = false): string | undefined {
  if (report.removed.length === 0 && report.removedLogDirs === 0) return undefined;
  const n = report.removed.length;
  const logs = report.removedLogDirs ? ` (${report.removedLogDirs} logs dir${report.removedLogDirs === 1 ? '' : 's'})` : '';
  return `${dryRun ? 'would prune' : 'pruned'} ${n} run record${n === 1 ? '' : 's'}${logs}; kept ${report.kept}`;
}

/**
 * After a tick: applies `retention:` if the store is free now (a run going elsewhere holds it: the
 * next tick prunes instead). Undefined when it did not run.
 */
export async function retainAfterTick(store: Store, root: string, policy: RetentionPolicy, command: string): Promise<PruneReport | undefined> {
  let lock;
  try {
    lock = await acquireStoreLock(store.dir, { timeoutMs: 0, command });
  } catch (err) {
    if (err instanceof LockError) return undefined;
    throw err;
  }
  try {
    return await applyRetention(store, root, policy);
  } finally {
    await lock.release();
  }
}
