// What a pipeline run tells its caller as it goes (the CLI prints it; a scheduler or a test may
// record it). The engine writes nothing to the terminal itself: every line a user sees of a run
// passes through here, so a caller can route, colour or drop it.
import type { LockHolder } from '../store/lock.js';
import type { PromotionRecord, PushRecord, RunRecord } from '../store/runs.js';
import type { StageReport, StageUi } from '../run/execute.js';
import type { RunExperiment } from './experiment.js';

export interface RunEvents {
  /** A stage's log lines and progress (the remote's transfers report through it too). */
  readonly stage: StageUi;
  /** Waiting for another process's store lock, or breaking a dead holder's. */
  lockWaiting?(holder: LockHolder | undefined): void;
  lockBroken?(holder: LockHolder | undefined): void;
  /** A dead run's command, still running, was stopped before this run started. */
  leftoverStopped?(group: { stage: string; pgid: number; ownerPid: number }): void;
  /** A run record was written: first `running`, then final. */
  record?(record: RunRecord): void;
  /** A sweep's experiments, once their records exist and before any stage starts. */
  sweepStarting?(experiments: readonly RunExperiment[]): void;
  /** A stage of the verbose-only queue trail: it was put on the queue. */
  stageQueued?(stage: string, queueUrl: string): void;
  stageDone?(report: StageReport, experiment: RunExperiment | undefined): void;
  /** Every stage has finished: how many files the stat cache hashed in this run. */
  hashed?(files: number): void;
  pushed?(push: PushRecord): void;
  promotion?(decision: PromotionRecord): void;
  /** Something went wrong that does not change the run's outcome (full disk on a cache, a slow queue). */
  warning?(line: string): void;
  /** A line for the user about how the run ended (before its failure is reported). */
  notice?(line: string): void;
}
