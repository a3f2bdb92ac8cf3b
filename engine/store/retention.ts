// Retention of run records: `pipeline gc --keep-runs N --keep-days D` and `retention:` (applied by
// `pipeline schedule` after each tick) prune the records in artifacts/runs/ beyond the newest N and
// older than D days, with each record's logs directory (runs/<id>/) if it has one. Kept whatever
// their age: runs whose model was promoted (the caller passes their ids), runs still going, and the
// newest tick of each schedule entry (catch-up reads it). Only names that look like run ids, inside
// the run area, are ever deleted. Crash-safe: a record goes first (one unlink), then its logs; a
// logs directory whose record is gone is removed by the next prune. Call with the store lock held.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno } from './fs-tree.js';
import { forceRemove } from './store.js';
import { RUN_ID, type RunLog, type RunRecord } from './runs.js';

export interface RetentionPolicy {
  /** Keep the newest N records. */
  keepRuns?: number;
  /** Keep records that started less than this many days ago. */
  keepDays?: number;
}

export interface PruneOptions {
  policy: RetentionPolicy;
  /** Run ids kept whatever the policy says (promoted models' runs). */
  keepIds: ReadonlySet<string>;
  now?: Date;
  dryRun?: boolean;
}

export interface PruneReport {
  /** Ids of the records removed (or that would be). */
  removed: string[];
  /** Logs directories removed (with their record, or left over by an interrupted prune). */
  removedLogDirs: number;
  kept: number;
}

const DAY_MS = 86_400_000;

/** Which records the policy removes (oldest first); pure, for `gc --dry-run` and tests. */
export function recordsToPrune(records: readonly RunRecord[], options: PruneOptions): RunRecord[] {
  const { keepRuns, keepDays } = options.policy;
  if (keepRuns === undefined && keepDays === undefined) return [];
  const now = (options.now ?? new Date()).getTime();
  const sorted = [...records].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const newestTick = new Map<string, string>();
  for (const r of sorted) if (r.trigger?.type === 'schedule') newestTick.set(r.trigger.entry, r.id);
  const protectedIds = new Set([...options.keepIds, ...newestTick.values()]);
  return sorted.filter((r, i) => {
    if (protectedIds.has(r.id) || r.outcome === 'running') return false;
    if (r.promotion?.decision === 'promoted') return false;
    const beyondCount = keepRuns !== undefined && i < sorted.length - keepRuns;
    const started = Date.parse(r.startedAt);
    const tooOld = keepDays !== undefined && Number.isFinite(started) && now - started > keepDays * DAY_MS;
    return beyondCount || tooOld;
  });
}

export async function pruneRuns(runs: RunLog, options: PruneOptions): Promise<PruneReport> {
  const records = (await runs.list()).filter((r) => RUN_ID.test(r.id));
  const doomed = recordsToPrune(records, options);
  const report: PruneReport = { removed: doomed.map((r) => r.id), removedLogDirs: 0, kept: records.length - doomed.length };
  if (options.dryRun) return report;
  for (const r of doomed) {
    await runs.remove(r.id);
    if (await removeLogs(runs.dir, r.id)) report.removedLogDirs++;
  }
  // Logs directories whose record is gone (a prune interrupted between the two steps).
  const live = new Set((await runs.list()).map((r) => r.id));
  for (const name of await entries(runs.dir)) {
    if (RUN_ID.test(name) && !live.has(name) && (await removeLogs(runs.dir, name))) report.removedLogDirs++;
  }
  return report;
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
}

/** Removes runs/<id>/ if it is a directory; whether it was there. */
async function removeLogs(dir: string, id: string): Promise<boolean> {
  const path = join(dir, id);
  const found = (await entries(dir)).includes(id);
  if (found) await forceRemove(path);
  return found;
}
