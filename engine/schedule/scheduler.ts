// Fires `schedule:` entries with croner and never overlaps runs: a tick that fires while another
// tick's run is going is handed to `skipped` instead. `stop()` takes no more ticks and waits for
// the running one (which the caller stops through its own signal handling). `catchUp()` replays
// the most recent missed tick of `catchup:` entries (engine/schedule/catchup.ts). The clock is
// injectable, for tests of what is due when.
import { Cron } from 'croner';
import type { ScheduleEntry } from '../config/automation.js';
import { missedTick, type MissedTick } from './catchup.js';

export interface Tick {
  entry: ScheduleEntry;
  firedAt: Date;
}

export interface RunningTick extends Tick {
  /** A replay of a tick missed during downtime (`catchup: true`). */
  catchup?: MissedTick;
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
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Runs, one after the other, the most recent missed tick of each `catchup:` entry, given each
   * entry's last recorded tick. Resolves when they are done (or skipped behind a running tick).
   */
  async catchUp(last: ReadonlyMap<string, Date>, announce?: (entry: ScheduleEntry, missed: MissedTick) => void): Promise<void> {
    for (const entry of this.entries) {
      const missed = missedTick(entry, last.get(entry.name), this.now());
      if (!missed || this.stopped) continue;
      announce?.(entry, missed);
      await this.fire(entry, missed.at, missed);
    }
  }

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
  fire(entry: ScheduleEntry, firedAt = this.now(), catchup?: MissedTick): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      const skipped = this.handlers.skipped({ entry, firedAt }, this.running.tick).catch(() => {});
      this.pending.add(skipped);
      void skipped.finally(() => this.pending.delete(skipped));
      return skipped;
    }
    const tick: RunningTick = { entry, firedAt, ...(catchup ? { catchup } : {}) };
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
