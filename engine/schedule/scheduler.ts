// Fires `schedule:` entries with croner and never overlaps runs: a tick that fires while another
// tick's run is going is handed to `skipped` instead. `stop()` takes no more ticks and waits for
// the running one (which the caller stops through its own signal handling).
import { Cron } from 'croner';
import type { ScheduleEntry } from '../config/automation.js';

export interface Tick {
  entry: ScheduleEntry;
  firedAt: Date;
}

export interface RunningTick extends Tick {
  /** Set once the run has a record. */
  runId?: string;
}

export interface TickHandlers {
  run(tick: RunningTick): Promise<void>;
  skipped(tick: Tick, running: RunningTick): Promise<void>;
}

export function nextFireTimes(entry: ScheduleEntry, n: number, from?: Date): Date[] {
  const cron = new Cron(entry.cron, { paused: true, ...(entry.timezone ? { timezone: entry.timezone } : {}) });
  try {
    return cron.nextRuns(n, from);
  } finally {
    cron.stop();
  }
}

/** The entry that fires first from `from` (ties: the first declared). */
export function nextDue(entries: readonly ScheduleEntry[], from = new Date()): { entry: ScheduleEntry; at: Date } | undefined {
  let best: { entry: ScheduleEntry; at: Date } | undefined;
  for (const entry of entries) {
    const [at] = nextFireTimes(entry, 1, from);
    if (at && (!best || at < best.at)) best = { entry, at };
  }
  return best;
}

export class Scheduler {
  private readonly jobs: Cron[] = [];
  private running: { tick: RunningTick; done: Promise<void> } | undefined;
  private stopped = false;
  /** Skipped-tick handlers still writing, so stop() can wait for them too. */
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly entries: readonly ScheduleEntry[],
    private readonly handlers: TickHandlers,
  ) {}

  start(): void {
    for (const entry of this.entries) {
      const job = new Cron(entry.cron, { catch: true, ...(entry.timezone ? { timezone: entry.timezone } : {}) }, () => {
        // Not awaited (croner does not wait): fire() never rejects, and stop() waits for the tick it starts.
        void this.fire(entry);
      });
      this.jobs.push(job);
    }
  }

  get current(): RunningTick | undefined {
    return this.running?.tick;
  }

  /** Starts a tick of `entry` now, unless one is running (then it is reported as skipped). */
  fire(entry: ScheduleEntry, firedAt = new Date()): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      const skipped = this.handlers.skipped({ entry, firedAt }, this.running.tick).catch(() => {});
      this.pending.add(skipped);
      void skipped.finally(() => this.pending.delete(skipped));
      return skipped;
    }
    const tick: RunningTick = { entry, firedAt };
    const done = this.handlers
      .run(tick)
      .catch(() => {})
      .finally(() => {
        if (this.running?.tick === tick) this.running = undefined;
      });
    this.running = { tick, done };
    return done;
  }

  /** No more ticks; resolves when the running tick and any skip records are done. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const job of this.jobs) job.stop();
    await this.running?.done;
    await Promise.all([...this.pending]);
  }
}
