// The Scheduler's overlap rule in process, with handlers the test controls: a tick that fires while
// another runs is reported as skipped (with the running tick), and nothing fires after stop().
import { describe, expect, test } from '@jest/globals';
import type { ScheduleEntry } from '../engine/config/automation.js';
import { Scheduler, type RunningTick, type Tick } from '../engine/schedule/scheduler.js';

const entry = (name: string): ScheduleEntry => ({
  name,
  cron: '0 3 * * *',
  stages: [],
  sets: [],
  onSuccess: [],
  onFailure: [],
  catchup: false,
  loc: { file: 'pipeline.yaml', line: 1, col: 1 },
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
});
