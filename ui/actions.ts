// The app's actions: on models/current, as `pipeline promote RUN` and `pipeline rollback` do them
// (engine/promote), with the store lock held, waiting a short while for a running pipeline; and
// cancelling a running run, as `pipeline cancel RUN` does (engine/runner/cancel: a request file the
// run polls for; the run itself holds the lock, stops and records itself cancelled).
import { UsageError } from '../engine/errors.js';
import { promoteRun, rollbackChampion } from '../engine/promote/promote.js';
import { cancelRun, type CancelOutcome } from '../engine/runner/cancel.js';
import type { Session } from '../engine/session.js';
import { acquireStoreLock } from '../engine/store/lock.js';
import type { RunRecord } from '../engine/store/runs.js';
import type { ModelInfo } from '../lib/champion.js';

const LOCK_TIMEOUT_MS = 10_000;
/** How long a cancel waits for the run to record its end before answering that it was asked. */
const CANCEL_WAIT_MS = 30_000;

async function withLock<T>(session: Session, what: string, fn: () => Promise<T>): Promise<T> {
  await session.store.init();
  const lock = await acquireStoreLock(session.store.dir, {
    timeoutMs: LOCK_TIMEOUT_MS,
    command: `pipeline ui (${what})`,
    signal: AbortSignal.timeout(LOCK_TIMEOUT_MS * 2),
  });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

export async function promoteFromUi(session: Session, record: RunRecord): Promise<{ promoted: ModelInfo }> {
  if (record.outcome === 'running') throw new UsageError(`run ${record.id} is still running`);
  return { promoted: await withLock(session, 'promote', () => promoteRun(session.pipeline, session.store, record)) };
}

export async function rollbackFromUi(session: Session): Promise<{ from: ModelInfo; to: ModelInfo }> {
  return withLock(session, 'rollback', () => rollbackChampion(session.pipeline.root));
}

/** Asks run `record` to stop and waits (a while, or until the request is dropped) for it to record its end. */
export async function cancelFromUi(session: Session, record: RunRecord, signal: AbortSignal): Promise<CancelOutcome> {
  return cancelRun(session.store, { id: record.id, waitMs: CANCEL_WAIT_MS, signal });
}
