// Is anyone taking the coordinator's jobs? While some of its jobs wait and none is being worked on,
// the coordinator is stuck (no worker alive, all of them busy elsewhere, a wrong queue name): it
// says so after 30 s, then at growing intervals, naming the queue and how many workers are
// connected, and with a timeout gives up. A job of ours that a worker is running is progress: a
// long training stage keeps the other jobs waiting legitimately.
import { StageError } from '../errors.js';

export interface TakeWatchOptions {
  /** Give up after this long without a job taken (undefined: never). */
  timeoutMs?: number;
  /** "queue NAME on redis://host:port", for messages. */
  where: string;
  /** Workers connected to the queue, or undefined when Redis will not say. */
  workers(): Promise<number | undefined>;
  /** Asks Redis whether the job is being worked on (events can be missed across a reconnect). */
  isActive(id: string): Promise<boolean>;
  warn(line: string): void;
}

interface Watched {
  stage: string;
  active: boolean;
  /** Callers waiting on this job (a sweep's experiments may share one). */
  refs: number;
  giveUp: (err: Error) => void;
  gaveUp: Promise<never>;
}

const FIRST_WARNING_MS = 30_000;
const MAX_WARNING_INTERVAL_MS = 10 * 60_000;
const TICK_MS = 500;

export class TakeWatch {
  private readonly jobs = new Map<string, Watched>();
  private idleSince: number | undefined;
  private nextWarning: number;
  private readonly firstWarning: number;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(private readonly options: TakeWatchOptions) {
    // With a short timeout, one warning still comes before it.
    this.firstWarning = Math.min(FIRST_WARNING_MS, (options.timeoutMs ?? Infinity) / 2);
    this.nextWarning = this.firstWarning;
  }

  /** Watches job `id`; the promise rejects if the coordinator gives up on it. */
  add(id: string, stage: string): Promise<never> {
    const known = this.jobs.get(id);
    if (known) {
      known.refs++;
      return known.gaveUp;
    }
    let giveUp!: (err: Error) => void;
    const gaveUp = new Promise<never>((_, reject) => (giveUp = reject));
    gaveUp.catch(() => {}); // handled by the caller's race; never unhandled when the job finished first
    this.jobs.set(id, { stage, active: false, refs: 1, giveUp, gaveUp });
    this.timer ??= setInterval(() => void this.tick(), TICK_MS).unref();
    return gaveUp;
  }

  /** A worker took the job. */
  taken(id: string): void {
    const job = this.jobs.get(id);
    if (!job) return;
    job.active = true;
    this.reset();
  }

  /** The job is back in the queue (its worker died). */
  returned(id: string): void {
    const job = this.jobs.get(id);
    if (job) job.active = false;
  }

  remove(id: string): void {
    const job = this.jobs.get(id);
    if (job && --job.refs === 0) this.jobs.delete(id);
    if (this.jobs.size === 0) this.close();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.reset();
  }

  private reset(): void {
    this.idleSince = undefined;
    this.nextWarning = this.firstWarning;
  }

  private async tick(): Promise<void> {
    if (this.checking) return;
    const jobs = [...this.jobs.values()];
    if (jobs.length === 0 || jobs.some((j) => j.active)) return this.reset();
    const now = Date.now();
    this.idleSince ??= now;
    const idle = now - this.idleSince;
    const { timeoutMs } = this.options;
    const timedOut = timeoutMs !== undefined && idle >= timeoutMs;
    if (!timedOut && idle < this.nextWarning) return;
    this.checking = true;
    try {
      for (const [id, job] of this.jobs) if (await this.options.isActive(id).catch(() => false)) job.active = true;
      if ([...this.jobs.values()].some((j) => j.active)) return this.reset();
      const n = await this.options.workers();
      const connected = n === undefined ? 'Redis does not say how many workers are connected' : `${n} worker${n === 1 ? '' : 's'} connected`;
      if (timedOut) {
        for (const job of this.jobs.values()) {
          job.giveUp(
            new StageError(
              `stage ${job.stage}: no worker took its job from ${this.options.where} within ${describeMs(timeoutMs)} (--queue-timeout); ${connected}`,
            ),
          );
        }
        return;
      }
      const hint = n === 0 ? ' (start `pipeline worker` on this queue)' : n ? ' (busy with other jobs, or on another pipeline?)' : '';
      this.options.warn(
        `no worker has taken a job from ${this.options.where} for ${Math.round(idle / 1000)}s; ${connected}${hint}${timeoutMs === undefined ? '' : `; giving up after ${describeMs(timeoutMs)}`}`,
      );
      this.nextWarning += Math.min(this.nextWarning, MAX_WARNING_INTERVAL_MS);
    } finally {
      this.checking = false;
    }
  }
}

/** 3s, 90s, 10m, 2h: as a duration is written on the command line. */
export function describeMs(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
