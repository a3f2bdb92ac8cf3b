// A skipped tick's alert (engine/schedule/alerts.ts) with what the scheduler knows: the run of its
// own that is going, or else the holder of the store lock (another process's run).
import type { Session } from '../session.js';
import type { NotificationRecord } from '../store/runs.js';
import { readLockHolder } from '../store/lock.js';
import { overrunReason, skippedTickPayload, type Blocker } from './alerts.js';
import { notify } from './notify.js';
import type { RunningTick, Tick } from './scheduler.js';

/**
 * Notifies the entry's on_failure hooks when the tick was skipped behind a run going longer than
 * `skip_alert_after`, once per such run (`alerted` remembers them). Undefined: no alert.
 */
export async function overrunAlert(
  session: Session,
  tick: Tick,
  running: RunningTick | undefined,
  runId: string,
  alerted: Set<string>,
  now: Date,
): Promise<NotificationRecord[] | undefined> {
  if (tick.entry.skipAlertAfterMs === undefined || tick.entry.onFailure.length === 0) return undefined;
  const blocker = running ? ownRun(running) : await lockHolder(session.store.dir);
  if (!blocker || alerted.has(blocker.key)) return undefined;
  const reason = overrunReason(tick.entry, blocker, now);
  if (!reason) return undefined;
  alerted.add(blocker.key);
  return notify(tick.entry.onFailure, skippedTickPayload(session.pipeline.file, tick.entry, runId, tick.firedAt, reason), session.pipeline.root);
}

function ownRun(running: RunningTick): Blocker {
  const fired = running.firedAt.toISOString();
  return {
    key: `${running.entry.name}@${fired}`,
    what: `run ${running.runId ?? `(starting, fired ${fired})`} of '${running.entry.name}'`,
    since: running.firedAt,
  };
}

async function lockHolder(storeDir: string): Promise<Blocker | undefined> {
  const holder = await readLockHolder(storeDir);
  const since = holder ? new Date(holder.startedAt) : undefined;
  if (!holder || !since || Number.isNaN(since.getTime())) return undefined;
  return { key: `pid ${holder.pid}@${holder.startedAt}`, what: `pid ${holder.pid} (${holder.command})`, since };
}
