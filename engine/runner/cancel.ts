// `pipeline cancel`: asking a running run to stop, from another process. A run is running when its
// record says `running` and its process holds the store lock (the lock's holder record names the
// pid, host and start time, so a dead run or a reused pid is never mistaken for it). The request is
// a file in the run's folder (artifacts/runs/<id>/cancel) that the run polls for (runPipeline): the
// run stops its stages as an interrupt does, tells its queue workers (engine/queue/cancel.ts),
// records itself as `cancelled` and releases the lock. A file, not a signal: a scheduler's run is
// cancelled without stopping the scheduler, and the requester needs no rights over the process.
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../errors.js';
import { readLockHolder, type LockHolder } from '../store/lock.js';
import { processAlive } from '../store/processes.js';
import { RUN_ID, type RunRecord } from '../store/runs.js';
import type { Store } from '../store/store.js';

/** How often a run looks for a cancel request (a stat of one file). */
export const CANCEL_POLL_MS = 200;

export function cancelRequestFile(runsDir: string, runId: string): string {
  return join(runsDir, runId, 'cancel');
}

/** Whether `record` is the run that holds the store lock right now, on this host. */
function isRunning(record: RunRecord, holder: LockHolder | undefined): boolean {
  return (
    record.outcome === 'running' &&
    holder !== undefined &&
    holder.pid === record.pid &&
    holder.hostname === hostname() &&
    processAlive(holder.pid, holder.pidStart)
  );
}

/** Why `record` cannot be cancelled (it is not running), or undefined when it can. */
function notRunning(record: RunRecord, holder: LockHolder | undefined): string | undefined {
  if (isRunning(record, holder)) return undefined;
  if (record.outcome !== 'running') return `run ${record.id} is not running (it ended ${record.outcome}${record.finishedAt ? ` at ${record.finishedAt}` : ''})`;
  if (holder && holder.pid === record.pid && holder.hostname !== hostname())
    return `run ${record.id} is running on ${holder.hostname}: cancel it there (pipeline cancel runs on the host of the run)`;
  return `run ${record.id} is not running: its process (pid ${record.pid}) is gone without recording an end (it was killed)`;
}

/**
 * The run to cancel: `id` (a full run id), or the newest running one. Throws a UsageError saying
 * why when there is no such run or it is not running.
 */
export async function findRunningRun(store: Store, records: readonly RunRecord[], id?: string): Promise<RunRecord> {
  const holder = await readLockHolder(store.dir);
  if (id !== undefined) {
    const record = records.find((r) => r.id === id);
    if (!record) throw new UsageError(`no run '${id}' (pipeline runs lists them)`);
    const why = notRunning(record, holder);
    if (why) throw new UsageError(why);
    return record;
  }
  const running = [...records].reverse().find((r) => isRunning(r, holder));
  if (!running) throw new UsageError(`no run is running in the store ${store.dir} (pipeline runs lists the runs)`);
  return running;
}

/** Asks run `runId` to stop (idempotent). */
export async function requestCancel(store: Store, runId: string): Promise<void> {
  if (!RUN_ID.test(runId)) throw new UsageError(`not a run id: ${runId}`);
  const file = cancelRequestFile(store.runs.dir, runId);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, JSON.stringify({ by: process.pid, hostname: hostname(), at: new Date().toISOString() }) + '\n');
}

export interface CancelOutcome {
  /** The run's record once it stopped (or as last read, if it did not stop in time). */
  record: RunRecord;
  /** false: it was still running when the wait ended. */
  stopped: boolean;
}

/**
 * Cancels run `id` (or the newest running run) and waits up to `waitMs` for it to record its end.
 * Returns the record it ended with.
 */
export async function cancelRun(store: Store, options: { id?: string; waitMs: number; signal?: AbortSignal }): Promise<CancelOutcome> {
  const record = await findRunningRun(store, await store.runs.list(), options.id);
  // A sweep's experiments share one process: asking one stops them all.
  await requestCancel(store, record.id);
  const deadline = Date.now() + options.waitMs;
  let last = record;
  for (;;) {
    last = (await store.runs.list()).find((r) => r.id === record.id) ?? last;
    if (last.outcome !== 'running') return { record: last, stopped: true };
    // Gone without a final record (killed meanwhile): stopped, though not by us.
    if (!processAlive(record.pid)) return { record: last, stopped: true };
    if (Date.now() >= deadline || options.signal?.aborted) return { record: last, stopped: false };
    await sleep(CANCEL_POLL_MS);
  }
}

/**
 * Watches for a cancel request for any of `runIds` (run by the process that runs them); calls
 * `onRequest` once. Returns what stops watching and removes the requests.
 */
export function watchCancelRequests(runsDir: string, runIds: readonly string[], onRequest: (runId: string) => void): () => Promise<void> {
  let done = false;
  let checking = false;
  const timer = setInterval(() => {
    if (done || checking) return;
    checking = true;
    void (async () => {
      for (const id of runIds) {
        const asked = await stat(cancelRequestFile(runsDir, id)).then(
          () => true,
          () => false,
        );
        if (asked && !done) {
          done = true;
          clearInterval(timer);
          onRequest(id);
          return;
        }
      }
    })().finally(() => (checking = false));
  }, CANCEL_POLL_MS);
  timer.unref();
  return async () => {
    done = true;
    clearInterval(timer);
    for (const id of runIds) await rm(cancelRequestFile(runsDir, id), { force: true }).catch(() => undefined);
  };
}
