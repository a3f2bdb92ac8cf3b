// Run records: one JSON file per `pipeline run` under artifacts/runs/, named so they sort by start time.
import { open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isDiskFull, isErrno, writeFileAtomic } from './fs-tree.js';

export type StageOutcomeKind = 'cached' | 'ran' | 'failed' | 'skipped' | 'aborted';

export interface StageRunRecord {
  stage: string;
  outcome: StageOutcomeKind;
  key?: string;
  durationMs: number;
  /** Why it ran (text), or why it was skipped. */
  reason?: string;
  error?: string;
  /** Workspace outs restored from the store (cmd stages on a cache hit). */
  restored?: string[];
  /** The queue worker that computed it (`run --executor queue`). */
  worker?: string;
  /** A failed stage: which reused upstream results it read, and how to make them run again. */
  hint?: string;
  /** A stage with `timeout:` or `retries:` computed here: each attempt, in order. */
  attempts?: StageAttemptRecord[];
}

/** One attempt at computing a stage (engine/run/sources/attempts.ts). */
export interface StageAttemptRecord {
  /** 1-based. */
  attempt: number;
  outcome: 'ok' | 'failed' | 'timed-out' | 'interrupted';
  durationMs: number;
  error?: string;
}

/** One experiment of a sweep (`run --matrix`): its assignments, e.g. {"train.batch_size": "64"}. */
export interface ExperimentRecord {
  sweep: string;
  /** 1-based position in the sweep, and how many experiments it has. */
  index: number;
  of: number;
  assignments: Record<string, string>;
}

/** What started a run, when it was not a person typing `pipeline run`. */
export interface RunTrigger {
  type: 'schedule';
  /** The `schedule:` entry. */
  entry: string;
  /** When the tick fired (ISO time). */
  firedAt: string;
  /** How the tick ended: stages ran, all were cached, a stage failed, it was stopped or cancelled, or it did not start. */
  result?: 'ran' | 'nothing-changed' | 'failed' | 'interrupted' | 'cancelled' | 'skipped';
  /** Why a tick was skipped or failed before running. */
  note?: string;
  /** A tick missed during downtime, replayed at start (`catchup: true`): how many were missed. */
  catchup?: { missed: number };
}

/** The champion/challenger decision after a run (engine/promote/). */
export interface PromotionRecord {
  decision: 'promoted' | 'kept' | 'skipped' | 'error';
  reason: string;
  metric: string;
  /** Cache key of the train result that was judged. */
  candidateKey?: string;
  /** The new model's metric (the challenger). */
  candidate?: number | null;
  /** The current model's metric before the decision (the champion). */
  champion?: number | null;
  /** models/history/ entry of the model that is current after the decision. */
  current?: string;
}

/** A notification sent after a scheduled run (or for a skipped tick past `skip_alert_after`). */
export interface NotificationRecord {
  event: 'success' | 'failure';
  target: string;
  ok: boolean;
  error?: string;
  /** A webhook's delivery attempts (retried with backoff), in order. */
  attempts?: NotificationAttempt[];
}

export interface NotificationAttempt {
  at: string;
  ok: boolean;
  error?: string;
}

/** What `run --push` uploaded: `pushed` of the `of` results the run computed (the others, with why). */
export interface PushRecord {
  pushed: number;
  of: number;
  remote: string;
  notPushed?: { stage: string; reason: string }[];
}

/** What the command line changed from pipeline.yaml (`--set`, `--unset`, `--backend`), as given. */
export interface RunOverrides {
  set: string[];
  unset: string[];
  backend?: string;
}

/** What the run's stages ran with, after every override: the top-level `params:` and each stage's resolved params. */
export interface EffectiveParams {
  params: Record<string, unknown>;
  /** Stage → its resolved params (stages with none, such as `cmd:` stages, are left out). */
  stages: Record<string, Record<string, unknown>>;
}

export interface RunRecord {
  id: string;
  command: string[];
  pid: number;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  /** `running` while in progress: a record left `running` belongs to a run that was killed. */
  /** `skipped`: a scheduled tick that did not start (another run held the store). */
  /** `cancelled`: stopped by `pipeline cancel` (engine/runner/cancel.ts). */
  outcome: 'running' | 'ok' | 'failed' | 'interrupted' | 'cancelled' | 'skipped';
  stages: StageRunRecord[];
  /** Set for runs started by `pipeline schedule`. */
  trigger?: RunTrigger;
  /** Set when pipeline.yaml has `promote:` and the run succeeded. */
  promotion?: PromotionRecord;
  notifications?: NotificationRecord[];
  /** A failure that is not a stage's (e.g. pipeline.yaml became invalid before a scheduled run). */
  error?: string;
  /** Set for each experiment of a sweep (`run --matrix`). */
  experiment?: ExperimentRecord;
  /** The run's --set/--unset/--backend (absent: it ran pipeline.yaml as written, or an older version wrote the record). A sweep's own values are in `experiment`. */
  overrides?: RunOverrides;
  /** The params the run's stages ran with (absent in records of older versions). */
  effective?: EffectiveParams;
  /** `run --executor queue`: the queue its stages were computed through. */
  queue?: string;
  /** `run --push`: what reached the remote (a run that computed fine but pushed less exits 3). */
  push?: PushRecord;
}

/** What newRunId makes (a sweep adds -<experiment>): the only names retention deletes in the run area. */
export const RUN_ID = /^\d{8}T\d{9}Z-\d+(-\d+)?$/;

export function newRunId(now = new Date()): string {
  // 20261126T054001123Z-<pid>: sorts by start time, unique per process.
  return `${now.toISOString().replace(/[-:.]/g, '')}-${process.pid}`;
}

/**
 * A record still `running` is padded to this size (JSON allows trailing blanks), so the disk space
 * its final version needs is already the file's: when the disk fills during the run, the final
 * record is written over it in place.
 */
const RESERVED_RECORD_BYTES = 16 * 1024;

export class RunLog {
  constructor(readonly dir: string) {}

  async write(record: RunRecord): Promise<void> {
    const file = join(this.dir, `${record.id}.json`);
    const text = JSON.stringify(record, null, 2) + '\n';
    try {
      await writeFileAtomic(file, record.outcome === 'running' ? text.padEnd(RESERVED_RECORD_BYTES) : text);
    } catch (err) {
      if (!isDiskFull(err) || !(await overwriteInPlace(file, text))) throw err;
    }
  }

  /** Removes the record of run `id` (a run id, never a path). */
  async remove(id: string): Promise<void> {
    if (!RUN_ID.test(id)) throw new Error(`not a run id: ${id}`);
    await rm(join(this.dir, `${id}.json`), { force: true });
  }

  /** All records, oldest first (unreadable files are skipped). */
  async list(): Promise<RunRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const records: RunRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      try {
        records.push(JSON.parse(await readFile(join(this.dir, name), 'utf8')) as RunRecord);
      } catch {
        // A torn or foreign file is not history.
      }
    }
    return records;
  }
}

/**
 * Writes `text` over the file's own bytes when it is no longer than they are (no new disk space is
 * needed). Not atomic: only for when the disk is full; a torn record is skipped by `list`.
 */
async function overwriteInPlace(file: string, text: string): Promise<boolean> {
  const data = Buffer.from(text);
  let handle;
  try {
    handle = await open(file, 'r+');
  } catch {
    return false;
  }
  try {
    if ((await handle.stat()).size < data.length) return false;
    await handle.write(data, 0, data.length, 0);
    await handle.truncate(data.length);
    return true;
  } catch {
    return false;
  } finally {
    await handle.close();
  }
}
