// The coordinator's side of the queue: enqueue a stage whose inputs are ready, wait for a worker to
// finish it, report the worker's error when it fails. Jobs are deduplicated by (stage, key), so a
// restarted coordinator, or two experiments of a sweep needing the same stage, wait on one job.
// Every job is signed with the queue secret (engine/queue/jobs.ts). While jobs wait and no worker
// takes any, the coordinator says so, and gives up after the queue timeout when one is set.
import { Queue, QueueEvents, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { AbortedError, StageError, UsageError } from '../errors.js';
import { publishCancel } from './cancel.js';
import { signJob, stageJobId, type SignedStageJob, type StageJob, type StageJobResult } from './jobs.js';
import type { QueueTarget } from './target.js';
import { TakeWatch } from './watch.js';

/** What a job needs besides its stage and key (the same for every stage of one run). */
export type JobContext = Omit<StageJob, 'stage' | 'key'>;

export interface DispatchOptions {
  /** PIPELINE_QUEUE_SECRET: signs every job. */
  secret: string;
  /** Give up when no worker has taken any of our waiting jobs for this long (undefined: wait). */
  timeoutMs?: number;
  warn(line: string): void;
}

/** What a caller of QueueDispatcher.run may add. */
export interface DispatchExtras {
  onQueued?: (job: Job<SignedStageJob>) => void;
  /** Compute it even where a result exists (`run --force` named it). */
  force?: boolean;
  /** The stage's output on the worker (its job log), once the job ended. */
  onLog?: (text: string) => void;
}

/** How long a cancelled run waits for its workers to stop their running jobs. */
const CANCEL_WAIT_MS = 10_000;

export class QueueDispatcher {
  private readonly watch: TakeWatch;
  /** Every job this dispatcher added or joined (what a cancel looks at). */
  private readonly dispatched = new Set<string>();

  private constructor(
    private readonly target: QueueTarget,
    private readonly queue: Queue<SignedStageJob, StageJobResult>,
    private readonly events: QueueEvents,
    private readonly options: DispatchOptions,
  ) {
    const where = `queue ${target.name} on ${target.display.replace(/\?.*$/, '')}`;
    this.watch = new TakeWatch({
      timeoutMs: options.timeoutMs,
      where,
      workers: () => queue.getWorkersCount().catch(() => undefined),
      isActive: async (id) => (await queue.getJob(id).then((j) => j?.getState())) === 'active',
      warn: options.warn,
    });
    events.on('active', ({ jobId }) => this.watch.taken(jobId));
    events.on('waiting', ({ jobId }) => this.watch.returned(jobId));
  }

  /** Connects (failing fast with a clear error when Redis cannot be reached). */
  static async open(target: QueueTarget, options: DispatchOptions): Promise<QueueDispatcher> {
    await checkQueueReachable(target);
    const queue = new Queue<SignedStageJob, StageJobResult>(target.name, { connection: target.connection });
    const events = new QueueEvents(target.name, { connection: target.connection });
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    return new QueueDispatcher(target, queue, events, options);
  }

  get url(): string {
    return this.target.display;
  }

  /**
   * Runs `stage` (cache key `key`) on some worker and resolves with who ran it. A job already
   * queued or running for the same key is joined, not duplicated; a failed or finished one left
   * from an earlier run is replaced (this run asks again). Stopping (`signal`) stops waiting but
   * leaves the job to its worker: the result lands on the remote, where the next run finds it.
   */
  async run(stage: string, key: string, context: JobContext, signal: AbortSignal, extras: DispatchExtras = {}): Promise<StageJobResult> {
    const { onQueued, force = false, onLog } = extras;
    signal.throwIfAborted();
    const id = stageJobId(stage, key);
    // Watched before it is added: the event of a worker taking it may come at once.
    const gaveUp = this.watch.add(id, stage);
    try {
      const earlier = await this.queue.getJob(id);
      if (earlier) {
        const state = await earlier.getState();
        if (state === 'failed' || state === 'completed') await earlier.remove();
        else if (state === 'active') this.watch.taken(id);
      }
      const payload: StageJob = { ...context, stage, key, ...(force ? { force } : {}) };
      const job = await this.queue.add(stage, signJob(payload, this.target.name, this.options.secret), {
        jobId: id,
        attempts: 1,
        removeOnComplete: { age: 24 * 3600, count: 10_000 },
        removeOnFail: { age: 24 * 3600, count: 10_000 },
      });
      this.dispatched.add(id);
      onQueued?.(job);
      const aborted = new Promise<never>((_, reject) => {
        const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new AbortedError());
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
      const result = (await Promise.race([job.waitUntilFinished(this.events), aborted, gaveUp])) as StageJobResult | undefined;
      await this.passLog(id, onLog);
      if (!result || result.key !== key) throw new StageError(`stage ${stage}: the queue reported a result for another key (${result?.key ?? 'none'})`);
      return result;
    } catch (err) {
      if (signal.aborted || err instanceof AbortedError) throw err;
      if (err instanceof StageError) throw err;
      // The job failed on its worker: what its stage printed there, for this run's logs.
      await this.passLog(id, onLog);
      // A worker's report, as Redis holds it (anyone who can write there can write it): no terminal control codes.
      const why = (err instanceof Error ? err.message : String(err)).replace(/[^\P{Cc}\n]/gu, '?');
      throw new StageError(`stage ${stage} failed ${why}`);
    } finally {
      this.watch.remove(id);
    }
  }

  /** Hands the job's log (what its worker kept of the stage's output) to `onLog`; best effort. */
  private async passLog(id: string, onLog: ((text: string) => void) | undefined): Promise<void> {
    if (!onLog) return;
    try {
      const { logs } = await this.queue.getJobLogs(id);
      for (const text of logs) onLog(text);
    } catch {
      // Redis went away: the run's outcome does not depend on the log.
    }
  }

  /**
   * Cancels the jobs of runs `runIds` (the cancelled run's) that this dispatcher added: waiting ones
   * are removed, running ones are stopped by their workers (engine/queue/cancel.ts). Waits a while
   * for the workers to stop them. Jobs another run added and this one joined are left alone.
   */
  async cancelRun(runIds: readonly string[]): Promise<{ removed: string[]; stopping: string[]; stillRunning: string[] }> {
    const removed: string[] = [];
    const stopping: string[] = [];
    const marks: { jobId: string; runId: string }[] = [];
    for (const id of this.dispatched) {
      const job = await this.queue.getJob(id);
      if (!job || !runIds.includes(job.data.runId)) continue;
      const state = await job.getState();
      const stop = () => {
        stopping.push(id);
        marks.push({ jobId: id, runId: job.data.runId });
      };
      if (state === 'active') stop();
      else if (state !== 'completed' && state !== 'failed') {
        try {
          await job.remove();
          removed.push(id);
        } catch {
          stop(); // taken by a worker meanwhile (locked)
        }
      }
    }
    if (marks.length) await publishCancel(this.target, marks, this.options.secret);
    const deadline = Date.now() + CANCEL_WAIT_MS;
    let stillRunning = stopping;
    while (stillRunning.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const states = await Promise.all(stillRunning.map((id) => this.queue.getJob(id).then((j) => j?.getState())));
      stillRunning = stillRunning.filter((_, i) => states[i] === 'active');
    }
    return { removed, stopping, stillRunning };
  }

  async close(): Promise<void> {
    this.watch.close();
    await Promise.allSettled([this.events.close(), this.queue.close()]);
  }
}

/** A ping with no retries: an unreachable Redis is a usage error now, not a hang. */
export async function checkQueueReachable(target: QueueTarget): Promise<void> {
  const probe = new Redis({ ...(target.connection as object), lazyConnect: true, connectTimeout: 5000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => {}); // reported below
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    throw new UsageError(`--queue: cannot reach Redis at ${target.display}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    probe.disconnect();
  }
}
