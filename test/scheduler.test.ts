// The Scheduler's overlap rule in process, with handlers the test controls: a tick that fires while
// another runs is reported as skipped (with the running tick), and nothing fires after stop().
import { describe, expect, test } from '@jest/globals';
import type { ScheduleEntry } from '../engine/config/automation.js';
import { Scheduler, type RunningTick, type Tick } from '../engine/schedule/scheduler.js';
import { lastTicks } from '../engine/schedule/catchup.js';
import type { RunRecord } from '../engine/store/runs.js';

const entry = (name: string, extra: Partial<ScheduleEntry> = {}): ScheduleEntry => ({
  name,
  cron: '0 3 * * *',
  timezone: 'UTC',
  stages: [],
  sets: [],
  onSuccess: [],
  onFailure: [],
  catchup: false,
  loc: { file: 'pipeline.yaml', line: 1, col: 1 },
  ...extra,
});

describe('Scheduler', () => {
  test('never overlaps: ticks during a run are skipped; the next tick after it runs; stop() waits and ends ticking', async () => {
    const runs: RunningTick[] = [];
    const skipped: { tick: Tick; running: RunningTick }[] = [];
    let finish: () => void = () => {};
    const scheduler = new Scheduler([entry('a'), entry('b')], {
      run: (tick) => {
        runs.push(tick);
        return new Promise<void>((resolve) => (finish = resolve));
      },
      skipped: async (tick, running) => void skipped.push({ tick, running }),
    });
    const first = scheduler.fire(entry('a'));
    await scheduler.fire(entry('b'));
    await scheduler.fire(entry('a'));
    expect(runs.map((t) => t.entry.name)).toEqual(['a']);
    expect(skipped.map((s) => [s.tick.entry.name, s.running.entry.name])).toEqual([
      ['b', 'a'],
      ['a', 'a'],
    ]);
    expect(scheduler.current?.entry.name).toBe('a');
    finish();
    await first;
    expect(scheduler.current).toBeUndefined();

    const second = scheduler.fire(entry('b'));
    expect(runs.map((t) => t.entry.name)).toEqual(['a', 'b']);
    const stopped = scheduler.stop();
    await scheduler.fire(entry('a'));
    finish();
    await Promise.all([second, stopped]);
    expect(runs).toHaveLength(2);
    expect(skipped).toHaveLength(2);
  });

  test('catch-up after a scheduler stopped over two ticks: the most recent missed tick runs once (injected clock)', async () => {
    const runs: RunningTick[] = [];
    const skipped: Tick[] = [];
    const tick = (name: string, firedAt: string): RunRecord => ({
      id: `x-${name}-${firedAt}`,
      command: [],
      pid: 1,
      startedAt: firedAt,
      outcome: 'ok',
      stages: [],
      trigger: { type: 'schedule', entry: name, firedAt },
    });
    // Last ticks: 'nightly' and 'plain' fired on Dec 3 at 03:00 (a few ms late, as croner fires);
    // 'fresh' fired today after 03:00; 'never' has no tick. The scheduler starts on Dec 5 at 12:00.
    const last = lastTicks([
      tick('nightly', '2026-12-02T03:00:00.004Z'),
      tick('nightly', '2026-12-03T03:00:00.012Z'),
      tick('plain', '2026-12-03T03:00:00.012Z'),
      tick('fresh', '2026-12-05T03:00:00.020Z'),
    ]);
    const entries = [entry('nightly', { catchup: true }), entry('plain'), entry('fresh', { catchup: true }), entry('never', { catchup: true })];
    const announced: string[] = [];
    const scheduler = new Scheduler(
      entries,
      { run: async (t) => void runs.push(t), skipped: async (t) => void skipped.push(t) },
      () => new Date('2026-12-05T12:00:00Z'),
    );
    await scheduler.catchUp(last, (e, m) => announced.push(`${e.name} ${m.missed} ${m.at.toISOString()}`));
    // Dec 4 and Dec 5 at 03:00 were missed: one run, for the latest.
    expect(announced).toEqual(['nightly 2 2026-12-05T03:00:00.000Z']);
    expect(runs.map((t) => [t.entry.name, t.firedAt.toISOString(), t.catchup?.missed])).toEqual([['nightly', '2026-12-05T03:00:00.000Z', 2]]);
    expect(skipped).toEqual([]);
    await scheduler.stop();
  });
});
