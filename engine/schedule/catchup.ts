// `catchup: true`: after downtime (the scheduler was stopped, the machine was off) the most recent
// tick that was due meanwhile runs once at start — like Airflow's catchup with max_active_runs 1,
// but only the latest: one run brings the model up to date. "Meanwhile" is measured from the
// entry's last recorded tick (run records keep `trigger.firedAt`; retention keeps each entry's
// newest); an entry that never ticked has nothing to catch up.
import { Cron } from 'croner';
import type { ScheduleEntry } from '../config/automation.js';
import type { RunRecord } from '../store/runs.js';

/** The last recorded tick of each entry (ran, failed, skipped: any tick that fired). */
export function lastTicks(records: readonly RunRecord[]): Map<string, Date> {
  const last = new Map<string, Date>();
  for (const r of records) {
    if (r.trigger?.type !== 'schedule') continue;
    const at = new Date(r.trigger.firedAt);
    if (Number.isNaN(at.getTime())) continue;
    const before = last.get(r.trigger.entry);
    if (!before || at > before) last.set(r.trigger.entry, at);
  }
  return last;
}

export interface MissedTick {
  /** The most recent due time that did not fire: the tick that is replayed. */
  at: Date;
  /** How many were due since the last tick (counted up to a limit). */
  missed: number;
}

const COUNT_LIMIT = 1000;

/** The tick to replay for `entry`, or undefined (catch-up off, never ticked, or nothing missed). */
export function missedTick(entry: ScheduleEntry, last: Date | undefined, now: Date): MissedTick | undefined {
  if (!entry.catchup || !last) return undefined;
  const cron = new Cron(entry.cron, { paused: true, ...(entry.timezone ? { timezone: entry.timezone } : {}) });
  try {
    const due = cron.previousRuns(COUNT_LIMIT, now).filter((d) => d > last && d <= now);
    return due.length ? { at: due[0]!, missed: due.length } : undefined;
  } finally {
    cron.stop();
  }
}
