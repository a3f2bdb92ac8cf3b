// Alerts for ticks that did not run: a tick skipped because the previous run has been going longer
// than the entry's `skip_alert_after` is alarming (a hung command makes every later tick skip), so
// it calls the entry's on_failure hooks with the reason — once per run that holds things up.
import type { ScheduleEntry } from '../config/automation.js';
import type { NotificationPayload } from './notify.js';
import { formatDuration } from '../../lib/format.js';

/** What holds the tick up: a run of this scheduler, or whoever holds the store lock. */
export interface Blocker {
  /** Identifies the run, for one alert per run. */
  key: string;
  /** e.g. `run 20261206T...-42 of 'nightly'` or `pid 42 (pipeline run)`. */
  what: string;
  since: Date;
}

/** Why a skip is alarming, or undefined when the entry sets no threshold or it is not passed yet. */
export function overrunReason(entry: ScheduleEntry, blocker: Blocker, now: Date): string | undefined {
  if (entry.skipAlertAfterMs === undefined) return undefined;
  const runningMs = now.getTime() - blocker.since.getTime();
  if (runningMs < entry.skipAlertAfterMs) return undefined;
  return `tick of '${entry.name}' skipped: ${blocker.what} has been running for ${formatDuration(runningMs)} (skip_alert_after ${formatDuration(entry.skipAlertAfterMs)})`;
}

export function skippedTickPayload(pipelineFile: string, entry: ScheduleEntry, runId: string, firedAt: Date, reason: string): NotificationPayload {
  const at = firedAt.toISOString();
  return {
    event: 'failure',
    pipeline: pipelineFile,
    schedule: entry.name,
    runId,
    result: 'skipped',
    summary: `${entry.name}: skipped; ${reason}`,
    startedAt: at,
    finishedAt: at,
    stages: [],
    error: reason,
    reason,
  };
}
