// A run's live events file (engine/store/live-events.ts), what `pipeline ui` streams: stage states
// and log lines as they happen, progress with rate and ETA at most twice a second per stage (the
// first and the last update always), nothing written for a run id that is not one path component.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveEventsFile, RunLiveEvents, type LiveEvent } from '../engine/store/live-events.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'live-events-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const read = (id: string): LiveEvent[] =>
  readFileSync(liveEventsFile(dir, id), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LiveEvent);

describe('live events', () => {
  test('states and lines as they come; progress throttled per stage, with rate and ETA', () => {
    let now = 1_000_000;
    const live = new RunLiveEvents(dir, 'run-1', () => now);
    live.plan([{ name: 'train', kind: 'train', needs: [] }]);
    live.stage('train', 'running');
    live.progressStart('train', 'Epoch 1/2', 100, 'img');
    for (let i = 0; i < 10; i++) {
      now += 100; // ten ticks a second
      live.progressAt('train', (v) => v + 5, `loss: ${i}`);
    }
    live.progressAt('train', 100, undefined, true);
    live.line('train', 'Epoch 1/2 - 1s - loss: 0.5 - acc: 0.8');
    live.stage('train', 'ran', { durationMs: 1000, reason: 'never run' });
    live.close();
    const events = read('run-1');
    expect(events.map((e) => e.type)).toEqual(['plan', 'stage', 'progress', 'progress', 'progress', 'progress', 'log', 'stage']);
    const progress = events.filter((e): e is Extract<LiveEvent, { type: 'progress' }> => e.type === 'progress');
    // Start, then at 500 ms and 1000 ms (not every 100 ms), then the forced last one.
    expect(progress.map((p) => p.value)).toEqual([0, 25, 50, 100]);
    expect(progress[1]).toMatchObject({ label: 'Epoch 1/2', total: 100, unit: 'img', status: 'loss: 4', rate: 50, etaSeconds: 1.5 });
    expect(events.at(-1)).toMatchObject({ type: 'stage', stage: 'train', state: 'ran', durationMs: 1000, reason: 'never run' });
  });

  test('a run id that is not one path component writes nothing', () => {
    for (const id of ['..', '../x', 'a/b', '']) {
      const live = new RunLiveEvents(dir, id);
      live.stage('s', 'running');
      live.close();
    }
    expect(existsSync(join(dir, 'events.jsonl'))).toBe(false);
    expect(existsSync(join(dir, '..', 'events.jsonl'))).toBe(false);
  });
});
