// A pipeline run's records: one per experiment, written `running` when the run starts and final
// when it ends (artifacts/runs/, engine/store/runs.ts). What each says of its stages, params and
// overrides is decided here.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pipeline } from '../config/pipeline.js';
import type { StageReport } from '../run/execute.js';
import type { EffectiveParams, ExperimentRecord, PushRecord, RunRecord, RunTrigger } from '../store/runs.js';
import type { Store } from '../store/store.js';

export interface RecordBase {
  command: readonly string[];
  startedAt: number;
  trigger?: RunTrigger;
  overrides?: RunRecord['overrides'];
  /** `--executor queue`: the queue, as shown to users. */
  queue?: string;
}

/** The `running` record of one run, or of one experiment of a sweep. */
export function startRecord(
  base: RecordBase,
  id: string,
  experiment: ExperimentRecord | undefined,
  pipeline: Pipeline,
  selection: readonly string[],
): RunRecord {
  return {
    id,
    command: [...base.command],
    pid: process.pid,
    startedAt: new Date(base.startedAt).toISOString(),
    outcome: 'running',
    stages: [],
    ...(base.trigger ? { trigger: base.trigger } : {}),
    ...(experiment ? { experiment } : {}),
    ...(base.queue ? { queue: base.queue } : {}),
    ...(base.overrides ? { overrides: base.overrides } : {}),
    effective: effectiveParams(pipeline, selection),
  };
}

/** What the selected stages run with (after overrides): what `exp show` and `metrics --diff` compare. */
export function effectiveParams(pipeline: Pipeline, selection: readonly string[]): EffectiveParams {
  const stages: EffectiveParams['stages'] = {};
  for (const name of selection) {
    const params = pipeline.stages.get(name)?.params;
    if (params && Object.keys(params).length) stages[name] = params;
  }
  return { params: pipeline.params, stages };
}

export type OutcomeCounts = Record<StageReport['outcome'], number>;

export function countOutcomes(reports: readonly StageReport[]): OutcomeCounts {
  const counts = { cached: 0, ran: 0, failed: 0, skipped: 0, aborted: 0 };
  for (const r of reports) counts[r.outcome]++;
  return counts;
}

/** Fills in a record's end: outcome, stages, push. `stopped`: how the run was stopped, if it was. */
export function finishRecord(
  record: RunRecord,
  reports: readonly StageReport[],
  startedAt: number,
  stopped: 'interrupted' | 'cancelled' | undefined,
  push?: PushRecord,
): void {
  const counts = countOutcomes(reports);
  record.finishedAt = new Date().toISOString();
  record.durationMs = Date.now() - startedAt;
  record.outcome = stopped ?? (counts.failed > 0 || counts.aborted > 0 ? 'failed' : 'ok');
  record.stages = reports.map((r) => ({
    stage: r.stage,
    outcome: r.outcome,
    key: r.key,
    durationMs: r.durationMs,
    reason: r.reason,
    error: r.error === undefined ? undefined : r.error instanceof Error ? r.error.message : String(r.error),
    restored: r.restored,
    worker: r.worker,
    hint: r.hint,
    attempts: r.attempts,
  }));
  if (push) record.push = push;
}

/** The run's final record; on a full disk, once more after emptying tmp/, then a warning (the stage errors still follow). */
export async function writeFinalRecord(store: Store, record: RunRecord, warn: (line: string) => void): Promise<void> {
  try {
    await store.runs.write(record);
  } catch (first) {
    try {
      await store.cleanTmp();
      await store.runs.write(record);
    } catch {
      warn(`could not write the run record ${join(store.runs.dir, `${record.id}.json`)}: ${first instanceof Error ? first.message : String(first)}`);
    }
  }
}

/** On the way out at once (a second Ctrl-C): the records say `interrupted`, not `running`. Synchronous, best effort. */
export function recordInterruptedSync(store: Store, records: readonly RunRecord[], startedAt: number): void {
  for (const record of records) {
    try {
      const file = join(store.runs.dir, `${record.id}.json`);
      const done: RunRecord = { ...record, outcome: 'interrupted', finishedAt: new Date().toISOString(), durationMs: Date.now() - startedAt };
      writeFileSync(`${file}.tmp-${process.pid}`, JSON.stringify(done, null, 2) + '\n');
      renameSync(`${file}.tmp-${process.pid}`, file);
    } catch {
      // Best effort: `runs` shows a record whose process is gone as killed.
    }
  }
}
