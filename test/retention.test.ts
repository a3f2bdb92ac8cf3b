// Retention of run records: `pipeline gc --keep-runs N --keep-days D` on the built CLI prunes records
// (and their logs directories) by count and by age, keeps the run of a promoted model, deletes
// nothing outside the run area; `retention:` in pipeline.yaml is applied by `pipeline schedule`
// after its tick. A prune interrupted between a record and its logs is finished by the next one.
import { afterAll, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace } from './helpers/cli.js';
import { recordsToPrune } from '../engine/store/retention.js';
import type { RunRecord } from '../engine/store/runs.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const PIPELINE = `stages:\n  train:\n    cmd: mkdir -p model && date +%s%N > model/model.json\n    outs: [model]\n`;
const DAY = 86_400_000;

async function ws(yaml = PIPELINE): Promise<string> {
  const d = await workspace(yaml, 'retention-');
  dirs.push(d);
  return d;
}

const runsDir = (cwd: string) => join(cwd, 'artifacts', 'runs');
const ids = async (cwd: string) =>
  (await readdir(runsDir(cwd)))
    .filter((n) => n.endsWith('.json'))
    .map((n) => n.slice(0, -5))
    .sort();

/** A record as `pipeline run` writes it, started `daysAgo` days ago (its id sorts by that time). */
async function oldRecord(cwd: string, daysAgo: number, pid: number, extra: Partial<RunRecord> = {}): Promise<string> {
  const started = new Date(Date.now() - daysAgo * DAY);
  const id = `${started.toISOString().replace(/[-:.]/g, '')}-${pid}`;
  const record: RunRecord = {
    id,
    command: ['run'],
    pid,
    startedAt: started.toISOString(),
    finishedAt: started.toISOString(),
    durationMs: 1,
    outcome: 'ok',
    stages: [],
    ...extra,
  };
  await writeFile(join(runsDir(cwd), `${id}.json`), JSON.stringify(record, null, 2) + '\n');
  return id;
}

describe('pipeline gc prunes run records', () => {
  test('by count and by age; the promoted run, its model and files outside the run area are kept', async () => {
    const cwd = await ws();
    expect((await runCli(['run'], { cwd })).code).toBe(0);
    const [latest] = await ids(cwd);
    // The oldest run of all is the one whose model was promoted: count and age alone would prune it.
    const real = JSON.parse(await readFile(join(runsDir(cwd), `${latest}.json`), 'utf8')) as RunRecord;
    const promoted = await oldRecord(cwd, 20, real.pid, { stages: real.stages });
    const promote = await runCli(['promote', promoted, '--stage', 'train'], { cwd });
    expect(promote.code).toBe(0);
    const old: string[] = [];
    for (let d = 9; d >= 1; d--) old.push(await oldRecord(cwd, d, 1000 + d));
    // A logs directory of an old run, and a file that is not a run's.
    await mkdir(join(runsDir(cwd), old[0]!));
    await writeFile(join(runsDir(cwd), old[0]!, 'train.log'), 'output\n');
    await writeFile(join(runsDir(cwd), 'notes.txt'), 'mine\n');
    expect(await ids(cwd)).toHaveLength(11);

    // Dry run: reports, deletes nothing.
    const dry = await runCli(['gc', '--dry-run', '--keep-runs', '3'], { cwd });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^would prune 7 run records; kept 4$/m);
    expect(await ids(cwd)).toHaveLength(11);

    // By count: the newest 3, and the promoted run.
    const byCount = await runCli(['gc', '--keep-runs', '3'], { cwd });
    expect(byCount.code).toBe(0);
    expect(byCount.stdout).toMatch(/^pruned 7 run records \(1 logs dir\); kept 4$/m);
    expect(await ids(cwd)).toEqual([promoted, old[7], old[8], latest].sort());
    expect(existsSync(join(runsDir(cwd), old[0]!))).toBe(false);
    expect(await readFile(join(runsDir(cwd), 'notes.txt'), 'utf8')).toBe('mine\n');

    // By age: what started more than 1.5 days ago goes, except the promoted run.
    const byAge = await runCli(['gc', '--keep-days', '1.5'], { cwd });
    expect(byAge.code).toBe(0);
    expect(byAge.stdout).toMatch(/^pruned 1 run record; kept 3$/m);
    expect(await ids(cwd)).toEqual([promoted, old[8], latest].sort());
    // The promoted model and the store are untouched.
    expect(existsSync(join(cwd, 'models', 'current', 'model.json'))).toBe(true);
    expect((await runCli(['verify'], { cwd })).code).toBe(0);
  });

  test('plain gc prunes no records; bad values are one clear error, exit 2', async () => {
    const cwd = await ws();
    for (let i = 0; i < 7; i++) expect((await runCli(['run', '--force'], { cwd })).code).toBe(0);
    expect((await runCli(['gc'], { cwd })).code).toBe(0);
    expect(await ids(cwd)).toHaveLength(7);
    const bad = await runCli(['gc', '--keep-days', 'soon'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--keep-days/);
    expect(await ids(cwd)).toHaveLength(7);
  });

  test('a logs directory whose record is gone (a prune interrupted halfway) is removed by the next prune', async () => {
    const cwd = await ws();
    expect((await runCli(['run'], { cwd })).code).toBe(0);
    const orphan = `${new Date(Date.now() - 3 * DAY).toISOString().replace(/[-:.]/g, '')}-4242`;
    await mkdir(join(runsDir(cwd), orphan, 'sub'), { recursive: true });
    await writeFile(join(runsDir(cwd), orphan, 'sub', 'x.log'), 'x');
    const r = await runCli(['gc', '--keep-runs', '5'], { cwd });
    expect(r.stdout).toMatch(/^pruned 0 run records \(1 logs dir\); kept 1$/m);
    expect(existsSync(join(runsDir(cwd), orphan))).toBe(false);
  });
});

describe('retention: in pipeline.yaml', () => {
  test('pipeline schedule applies it after its tick', async () => {
    const cwd = await ws(`${PIPELINE}schedule:\n  nightly:\n    cron: "0 3 * * *"\nretention:\n  keep_runs: 2\n  keep_days: 30\n`);
    await mkdir(runsDir(cwd), { recursive: true });
    for (const d of [40, 39, 38, 3, 2, 1]) await oldRecord(cwd, d, 2000 + d);
    const tick = await runCli(['schedule', '--once'], { cwd });
    expect(tick.code).toBe(0);
    expect(tick.stdout).toMatch(/^retention: pruned 5 run records; kept 2$/m);
    const left = await ids(cwd);
    expect(left).toHaveLength(2);
    expect(left[0]).toMatch(/-2001$/);
  });

  test('is validated: unknown keys and empty policies are config errors', async () => {
    const cwd = await ws(`${PIPELINE}retention:\n  keep_run: 2\n`);
    const r = await runCli(['status'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/retention: unknown key 'keep_run'/);
  });

  test('the policy itself: count and age both apply; running records, promoted runs and the newest tick of each entry stay', () => {
    const now = new Date('2026-12-06T12:00:00Z');
    const rec = (daysAgo: number, extra: Partial<RunRecord> = {}): RunRecord => {
      const started = new Date(now.getTime() - daysAgo * DAY);
      return {
        id: `${started.toISOString().replace(/[-:.]/g, '')}-1`,
        command: [],
        pid: 1,
        startedAt: started.toISOString(),
        outcome: 'ok',
        stages: [],
        ...extra,
      };
    };
    const tick = rec(10, { trigger: { type: 'schedule', entry: 'weekly', firedAt: '' } });
    const running = rec(9, { outcome: 'running' });
    const promoted = rec(8);
    const others = [7, 6, 5, 4, 3, 2, 1].map((d) => rec(d));
    const all = [tick, running, promoted, ...others];
    const ids = (rs: RunRecord[]) => rs.map((r) => r.id);
    expect(ids(recordsToPrune(all, { policy: { keepRuns: 3 }, keepIds: new Set([promoted.id]), now }))).toEqual(ids(others.slice(0, 4)));
    expect(ids(recordsToPrune(all, { policy: { keepDays: 4.5 }, keepIds: new Set([promoted.id]), now }))).toEqual(ids(others.slice(0, 3)));
    expect(ids(recordsToPrune(all, { policy: { keepRuns: 5, keepDays: 1.5 }, keepIds: new Set(), now }))).toEqual(ids([promoted, ...others.slice(0, 6)]));
    expect(recordsToPrune(all, { policy: {}, keepIds: new Set(), now })).toEqual([]);
  });
});
