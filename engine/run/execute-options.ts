// What execute() is given and what it reports per stage (engine/run/execute.ts); apart from it so
// that the result sources (engine/run/sources/) can name them without importing execute itself.
import type { LimitFunction } from 'p-limit';
import type { Logger, ProgressReporter } from '../contract.js';
import type { FactsEnv, MutablePlanFacts } from '../plan/facts.js';
import type { Manifest } from '../store/manifest.js';
import type { StageAttemptRecord, StageOutcomeKind } from '../store/runs.js';
import type { Ref } from '../store/store.js';

export interface StageReport {
  stage: string;
  outcome: StageOutcomeKind;
  durationMs: number;
  key?: string;
  /** Why it ran, or why it was skipped / aborted. */
  reason?: string;
  error?: unknown;
  /** Workspace outs restored from the store. */
  restored?: string[];
  manifest?: Manifest;
  /** The result was downloaded from the remote cache instead of computed. */
  pulled?: boolean;
  /** The queue worker that computed it (`run --executor queue`). */
  worker?: string;
  /** A failed stage: which reused upstream results it read (engine/run/failure-hint.ts). */
  hint?: string;
  /** A stage with `timeout:` or `retries:` computed here: each attempt (engine/run/sources/attempts.ts). */
  attempts?: StageAttemptRecord[];
}

/** Calls `fire` once `ms` have passed (unless the returned function is called first). */
export type StageTimer = (stage: string, ms: number, fire: () => void) => () => void;

/**
 * Computes a stage somewhere else (a queue worker), which pushes the result to the remote.
 * `computed` false: the worker found the result already made (its manifest says by whom).
 */
export type StageDispatch = (
  stage: string,
  key: string,
  upstreams: readonly Manifest[],
  signal: AbortSignal,
  /** Called with the stage's output on the worker, once its job ended (for the run's stage log). */
  log?: (text: string) => void,
) => Promise<{ worker: string; computed?: boolean }>;

/** The remote artifact cache as execution sees it (engine/remote/cache.ts). */
export interface RemoteLookup {
  /** Downloads and commits the result for `key` if the remote has it; null on a miss or a remote failure. */
  fetch(stage: string, key: string, signal: AbortSignal): Promise<Manifest | null>;
}

export interface StageUi {
  logger(stage: string): Logger;
  progress(stage: string): ProgressReporter;
}

export interface ExecuteOptions {
  env: FactsEnv;
  facts: MutablePlanFacts;
  /** Stages to run, topologically ordered and closed under `needs`. */
  stages: readonly string[];
  force: ReadonlySet<string>;
  jobs: number;
  keepGoing: boolean;
  /** External stop (Ctrl-C, lost lock). */
  signal: AbortSignal;
  runId: string;
  /** When the run started and its command line (what stages see of the current run). */
  run?: { startedAt: string; command: readonly string[]; scheduled?: string; experiment?: string };
  /** The store's refs; updated (and written) as stages finish. */
  refs: Map<string, Ref>;
  ui: StageUi;
  /** Asked on a local miss before a stage is computed (not for --force). */
  remote?: RemoteLookup;
  onStageStart?(stage: string): void;
  onStageDone?(report: StageReport): void;
  /** `run --executor queue`: stages are computed by workers, then pulled from the remote (which must be set). */
  dispatch?: StageDispatch;
  /** A worker's run: only `stage` may be computed here, under the coordinator's `key`; the others come from the store or the remote. */
  workerJob?: { stage: string; key: string; producer?: string };
  /** How a stage's `timeout:` is timed (default: a wall-clock timer); tests fire it on progress instead. */
  timer?: StageTimer;
  /** A sweep's experiment: shares these with the sweep's other experiments, and leaves stage links, refs and workspace outs alone. */
  sweep?: SweepShare;
}

export interface SweepShare {
  /** Results being produced by the experiments, by key (each is produced once). */
  inflight: Map<string, Promise<StageReport>>;
  /** One limit on running stages for all experiments (else `jobs`). */
  limit: LimitFunction;
  /** Cmd stages of one name run one at a time (they write the same workspace outs). */
  exclusive(stage: string): LimitFunction;
}
