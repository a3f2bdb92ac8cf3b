// What a coordinator asks of a worker, and what the worker answers. A job names a stage and the
// cache key the coordinator computed for it; the worker, in its own checkout and store, pulls the
// stage's inputs from the remote, checks that it arrives at the same key (same code, pipeline file
// and params), runs the stage and pushes the result. The job id is derived from the key, so a
// restarted coordinator attaches to the job already queued or running instead of adding another.

export interface StageJob {
  stage: string;
  key: string;
  /** Pipeline file, relative to the project root (the worker reads its own checkout's copy). */
  config: string;
  /** `--set` / `--unset` overrides of the coordinator's run (sweep assignments included). */
  sets: string[];
  unset: string[];
  backend?: string;
  /** `run --force` named this stage: compute it even where a result exists. */
  force?: boolean;
  /** The remote cache both sides use (a URL; credentials come from each side's environment). */
  remote: string;
  /** The coordinator's run id and host, for the worker's log. */
  runId: string;
  coordinator: string;
}

export interface StageJobResult {
  /** The worker's name (host:pid unless `--name`). */
  worker: string;
  key: string;
  durationMs: number;
}

/** BullMQ job ids may not contain ':'; stage names and hex keys never do. */
export function stageJobId(stage: string, key: string): string {
  return `${stage}-${key}`;
}

/**
 * Lock timing. A worker renews its job's lock every lockMs/2; a job whose lock expired (the worker
 * was killed, or lost its network) is found by another worker's stalled check, which runs every
 * stalledMs, and goes back to the queue. A killed worker's stage is therefore retried after at
 * most lockMs + stalledMs. The stage itself runs in a child process, so a busy stage never
 * delays the renewal.
 */
export interface LockTiming {
  lockMs: number;
  stalledMs: number;
  /** A job that stalls this many times more fails instead of going back to the queue. */
  maxStalledCount: number;
}

export function lockTiming(lockSeconds: number): LockTiming {
  const lockMs = Math.round(lockSeconds * 1000);
  return { lockMs, stalledMs: Math.max(500, Math.round(lockMs / 2)), maxStalledCount: 2 };
}

export const DEFAULT_LOCK_SECONDS = 10;
