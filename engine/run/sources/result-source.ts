// Where a stage's result can come from, asked in order: the store, a sibling experiment of the
// sweep, the remote cache, the queue's workers, and last computing it here. Each source is one
// small module; what applies to every way of producing a result (a timeout, retries, a per-stage
// log, cancel) wraps this one interface.
import { StageError } from '../../errors.js';
import type { KeyMaterial } from '../../store/cache-key.js';
import type { StageAttemptRecord } from '../../store/runs.js';
import type { StagePlan } from '../../plan/plan.js';
import type { StageReport } from '../execute-options.js';
import type { Execution } from '../execution.js';

/** One stage being produced: what it read and what the plan decided for it. */
export interface StageRequest {
  readonly name: string;
  /** Its upstreams' reports, all `cached` or `ran`. */
  readonly ups: readonly StageReport[];
  /** When the stage started (reports time from here). */
  readonly t0: number;
  /** The plan's decision; the store source revises it when a stored result turns out corrupt. */
  decision: StagePlan;
  /** Set by the store source when it has no sound result: the key the stage is produced under, and why it runs. */
  produce?: { key: string; material: KeyMaterial; reason: string };
  /** Settles with the stage's report once produced: what a sibling experiment waits on. */
  readonly result: Promise<StageReport>;
  /** Filled by the attempts around computing it here (sources/attempts.ts), when it has `timeout:` or `retries:`. */
  attempts?: StageAttemptRecord[];
}

export interface ResultSource {
  readonly name: string;
  /** A failure here is the stage's own doing (not a reused result's): its report may hint at the inputs it read. */
  readonly produces: boolean;
  /** The stage's report from this source, or undefined to ask the next one; throws when the stage fails here. */
  tryProvide(stage: StageRequest, ctx: Execution): Promise<StageReport | undefined>;
}

/** The key a stage is produced under (set by the store source, which comes first). */
export function producing(stage: StageRequest): NonNullable<StageRequest['produce']> {
  if (!stage.produce) throw new Error(`execute: stage ${stage.name} reached a result source before its key was decided`);
  return stage.produce;
}

/** A worker's run computes only its job's stage: any other must have come from the store or the remote. */
export function checkMayProduce(stage: StageRequest, ctx: Execution): void {
  const job = ctx.opts.workerJob;
  if (!job || job.stage === stage.name) return;
  throw new StageError(
    `stage ${stage.name}: its result ${producing(stage).key.slice(0, 12)} is neither in this store nor on the remote (a coordinator pushes a stage's inputs before queueing it)`,
  );
}
