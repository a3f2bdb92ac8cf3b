// What a coordinator asks of a worker, and what the worker answers. A job names a stage and the
// cache key the coordinator computed for it; the worker, in its own checkout and store, pulls the
// stage's inputs from its remote, checks that it arrives at the same key (same code, pipeline file
// and params), runs the stage and pushes the result. The job id is derived from the key, so a
// restarted coordinator attaches to the job already queued or running instead of adding another.
//
// A job is data, never authority: it is signed by the coordinator (HMAC-SHA256 with the shared
// PIPELINE_QUEUE_SECRET) and the worker checks the signature and every field (engine/queue/admit.ts)
// before anything starts. Which remote, which checkout and which code run is the worker's own.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../errors.js';

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
  /** The coordinator's run id and host, for the worker's log. */
  runId: string;
  coordinator: string;
}

/** A job as it travels: the payload and its signature. */
export type SignedStageJob = StageJob & { signature: string };

export interface StageJobResult {
  /** The worker's name (host:pid unless `--name`). */
  worker: string;
  key: string;
  durationMs: number;
  /**
   * false: the worker found the result already made (on the remote, or in its store) and only
   * pushed it; `computedBy` then names who computed it, as its manifest says (when a worker did).
   * Absent (older workers): computed.
   */
  computed?: boolean;
  computedBy?: string;
}

/** BullMQ job ids may not contain ':'; stage names and hex keys never do. */
export function stageJobId(stage: string, key: string): string {
  return `${stage}-${key}`;
}

/** The environment variable that tells a `pipeline run` it was started by a worker (its value: the worker's name). */
export const WORKER_CHILD_ENV = 'PIPELINE_WORKER_CHILD';

/** What a worker's stage process tells its worker over IPC once the result is on the remote. */
export interface WorkerChildReport {
  type: 'worker-job-done';
  computed: boolean;
  computedBy?: string;
}

export function isWorkerChildReport(m: unknown): m is WorkerChildReport {
  const r = m as WorkerChildReport;
  return (
    typeof r === 'object' &&
    r !== null &&
    r.type === 'worker-job-done' &&
    typeof r.computed === 'boolean' &&
    (r.computedBy === undefined || typeof r.computedBy === 'string')
  );
}

// --- Signing -----------------------------------------------------------------------------------

/** The shared secret of coordinators and workers; never in a file, a URL or a job. */
export const QUEUE_SECRET_ENV = 'PIPELINE_QUEUE_SECRET';
const MIN_SECRET_LENGTH = 16;
/** What the MAC covers besides the payload: a version and the queue, so a job cannot be moved to another queue. */
const SIGNING_CONTEXT = 'pipeline stage job v1';

/** The secret from the environment, or a UsageError saying what is missing (`who`: the command that needs it). */
export function queueSecretFrom(env: NodeJS.ProcessEnv, who: string): string {
  const secret = env[QUEUE_SECRET_ENV];
  if (!secret) {
    throw new UsageError(
      `${who} needs ${QUEUE_SECRET_ENV}: a secret shared by the coordinators and workers of the queue, which sign and check every job (e.g. \`openssl rand -hex 32\`; see SECURITY.md)`,
    );
  }
  if (secret.length < MIN_SECRET_LENGTH)
    throw new UsageError(`${QUEUE_SECRET_ENV} is too short: at least ${MIN_SECRET_LENGTH} characters (e.g. \`openssl rand -hex 32\`)`);
  return secret;
}

/** JSON with object keys sorted at every level: the same bytes for the same payload on every machine. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record)
      .filter((k) => record[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function mac(payload: Record<string, unknown>, queueName: string, secret: string): Buffer {
  return createHmac('sha256', secret)
    .update(`${SIGNING_CONTEXT}\n${queueName}\n${canonicalJson(payload)}`)
    .digest();
}

export function signJob(job: StageJob, queueName: string, secret: string): SignedStageJob {
  return { ...job, signature: mac({ ...job }, queueName, secret).toString('hex') };
}

/** Why a job's data does not carry a valid signature for this queue, or undefined when it does. */
export function signatureProblem(data: Record<string, unknown>, queueName: string, secret: string): string | undefined {
  const { signature, ...payload } = data;
  if (signature === undefined) return `unsigned (coordinators sign their jobs with ${QUEUE_SECRET_ENV})`;
  const given = typeof signature === 'string' && /^[0-9a-f]{64}$/.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
  const expected = mac(payload, queueName, secret);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return `its signature does not match (signed with another ${QUEUE_SECRET_ENV}, for another queue, or altered since)`;
  }
  return undefined;
}

// --- Lock timing -------------------------------------------------------------------------------

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
