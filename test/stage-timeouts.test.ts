// `timeout:` and `retries:` on stages (engine/run/sources/attempts.ts): a hung command killed with
// its process group at its timeout, a flaky command retried until it succeeds, a train stage
// stopped by its timeout and retried resuming from its checkpoint, bad values as config errors,
// and neither key in the cache key.
import { afterAll, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parsePipeline } from '../engine/config/parse.js';
import { defineStage, type StageKind } from '../engine/contract.js';
import { gatherFacts, type FactsEnv } from '../engine/plan/facts.js';
import { execute, type StageTimer } from '../engine/run/execute.js';
import { StatCache } from '../engine/store/stat-cache.js';
import type { RunRecord } from '../engine/store/runs.js';
import { Store } from '../engine/store/store.js';
import { onEpochEnd } from '../lib/model/fit.js';
import { trainStage } from '../stages/train/train.js';
import { runCli, workspace } from './helpers/cli.js';
import { toyImages, writeNormalizeOutputs } from './helpers/fake-normalize.js';
import { TINY_MODEL } from './helpers/toy-training.js';
import { groupAlive } from './helpers/process-groups.js';

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

async function ws(text: string): Promise<string> {
  const dir = await workspace(text, 'timeouts-');
  made.push(dir);
  return dir;
}

async function lastRecord(dir: string): Promise<RunRecord> {
  const runs = join(dir, 'artifacts', 'runs');
  const files = (await readdir(runs)).filter((f) => f.endsWith('.json')).sort();
  return JSON.parse(await readFile(join(runs, files.at(-1)!), 'utf8')) as RunRecord;
}

describe('timeout: on a command stage', () => {
  test('a hung command is killed with its process group at its timeout; the stage fails "timed out after" and the record says so', async () => {
    const dir = await ws(`stages:
  hang:
    # The group id (field 5 of /proc/self/stat), then a child that would outlive a killed shell.
    cmd: cut -d' ' -f5 /proc/$$/stat > pgid; sleep 300 & echo $! > child; wait
    timeout: 1s
`);
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage hang timed out after 1s');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const pgid = Number(await readFile(join(dir, 'pgid'), 'utf8'));
    expect(pgid).toBeGreaterThan(1);
    expect(await groupAlive(pgid)).toBe(false);
    const record = await lastRecord(dir);
    expect(record.outcome).toBe('failed');
    const stage = record.stages.find((s) => s.stage === 'hang')!;
    expect(stage).toMatchObject({ outcome: 'failed', error: 'stage hang timed out after 1s' });
    expect(stage.attempts).toEqual([{ attempt: 1, outcome: 'timed-out', durationMs: expect.any(Number), error: 'stage hang timed out after 1s' }]);
    // Nothing committed for it.
    expect(existsSync(join(dir, 'artifacts', 'stages', 'hang'))).toBe(false);
  });
});

describe('retries: on a command stage', () => {
  const flaky = (retries: string) => `stages:
  flaky:
    # Fails on its first two runs (a counter file outside its outs), then succeeds.
    cmd: n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count; echo "attempt $n"; test $n -ge 3; echo done > out.txt
    outs: [out.txt]
    ${retries}
`;

  test('a command that fails twice then succeeds runs three attempts with retries: 2, each recorded; neither key is in the cache key', async () => {
    const dir = await ws(flaky('retries: 2'));
    const r = await runCli(['run'], { cwd: dir });
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stdout + r.stderr).toContain('attempt 1 of 3 failed: stage flaky: command exited with code 1; retrying');
    expect(await readFile(join(dir, 'count'), 'utf8')).toBe('3\n');
    expect(await readFile(join(dir, 'out.txt'), 'utf8')).toBe('done\n');
    const stage = (await lastRecord(dir)).stages.find((s) => s.stage === 'flaky')!;
    expect(stage.outcome).toBe('ran');
    expect(stage.attempts!.map(({ attempt, outcome, error }) => ({ attempt, outcome, error }))).toEqual([
      { attempt: 1, outcome: 'failed', error: 'stage flaky: command exited with code 1' },
      { attempt: 2, outcome: 'failed', error: 'stage flaky: command exited with code 1' },
      { attempt: 3, outcome: 'ok', error: undefined },
    ]);

    // Other retries and a timeout: the same result, still cached.
    await writeFile(join(dir, 'pipeline.yaml'), flaky('retries: { count: 5, backoff: 1s }\n    timeout: 1h'));
    const again = await runCli(['run'], { cwd: dir });
    expect(again.code).toBe(0);
    expect((await lastRecord(dir)).stages.find((s) => s.stage === 'flaky')!.outcome).toBe('cached');
    expect(await readFile(join(dir, 'count'), 'utf8')).toBe('3\n');
  });

  test('retries exhausted: the stage fails with the last error, all attempts recorded', async () => {
    const dir = await ws(flaky('retries: 1'));
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage flaky: command exited with code 1');
    const stage = (await lastRecord(dir)).stages.find((s) => s.stage === 'flaky')!;
    expect(stage.outcome).toBe('failed');
    expect(stage.attempts!.map((a) => a.outcome)).toEqual(['failed', 'failed']);
    const runs = await runCli(['runs'], { cwd: dir });
    expect(runs.stdout).toMatch(/\n {6}attempts: 1 failed \(\S+\), 2 failed \(\S+\)\n/);
  });
});

describe('bad values', () => {
  const cmdStage = (line: string) => `# timeouts\nstages:\n  a:\n    cmd: echo hi > out.txt\n    ${line}\n    outs: [out.txt]\n`;
  const kindStage = (line: string) => `# timeouts\nstages:\n  a:\n    uses: fetch\n    ${line}\n    with: { url: "https://example.invalid/x.tar.gz" }\n`;
  test.each([
    ['timeout: 5 parsecs', cmdStage, /^pipeline\.yaml:5:14: stage 'a': timeout: .*expected a duration such as 90s, 30m, 2h or 7d/],
    ['retries: -1', cmdStage, /^pipeline\.yaml:5:14: stage 'a': retries: /],
    ['retries: { count: 2, backoff: soon }', cmdStage, /^pipeline\.yaml:5:\d+: stage 'a': retries\.backoff: .*expected a duration/],
    ['timeout: 5 parsecs', kindStage, /pipeline\.yaml:5:14: stage 'a': timeout: .*expected a duration/],
  ])('%s is a config error at its place (exit 2, nothing written)', async (line, stage, expected) => {
    const dir = await ws(stage(line));
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr.replace(/^error: /, '')).toMatch(expected);
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
    expect(existsSync(join(dir, 'out.txt'))).toBe(false);
  });
});

describe('timeout: and retries: on a train stage', () => {
  const normalizeKind = defineStage({
    name: 'normalize',
    version: 1,
    description: 'toy 8x8 images, as the normalize kind writes them',
    params: z.object({}),
    outputs: [],
    async run(ctx) {
      await writeNormalizeOutputs(ctx.out.dir, toyImages(300, 3, 8, 3, 1), toyImages(90, 3, 8, 3, 2), ['a', 'b', 'c']);
    },
  });
  const kinds = new Map<string, StageKind>([
    ['normalize', normalizeKind as unknown as StageKind],
    ['train', trainStage as unknown as StageKind],
  ]);

  test('stopped by its timeout after a checkpoint, the retry resumes from it and the record has both attempts', async () => {
    const root = await mkdtemp(join(tmpdir(), 'timeouts-train-'));
    made.push(root);
    const yaml = `stages:
  prep:
    uses: normalize
  fit:
    uses: train
    needs: [prep]
    with: { backend: cpu, model: ${JSON.stringify(TINY_MODEL)}, batch_size: 32, epochs: 3, seed: 7 }
    timeout: 1h
    retries: 1
`;
    const pipeline = parsePipeline(yaml, { file: join(root, 'pipeline.yaml'), shownAs: 'pipeline.yaml', kinds });
    const store = new Store(root);
    await store.init();
    const statCache = await StatCache.load(store.statCacheFile, root);
    const env: FactsEnv = { pipeline, store, statCache, kinds, signal: new AbortController().signal };
    const facts = await gatherFacts(env, pipeline.order);

    // The timeout fires when the first attempt has checkpointed epoch 1 (not by the clock).
    const timers: { stage: string; ms: number; fire: () => void }[] = [];
    const timer: StageTimer = (stage, ms, fire) => {
      timers.push({ stage, ms, fire });
      return () => {};
    };
    const epochs: number[] = [];
    const off = onEpochEnd((e) => {
      epochs.push(e.logs.epoch);
      if (timers.length === 1 && e.logs.epoch === 1) timers[0]!.fire();
    });
    const lines: string[] = [];
    try {
      const reports = await execute({
        env,
        facts,
        stages: pipeline.order,
        force: new Set(),
        jobs: 1,
        keepGoing: false,
        signal: env.signal,
        runId: 'test',
        refs: await store.readRefs(),
        timer,
        ui: {
          logger: (stage) => ({ info: (l: string) => lines.push(`${stage}: ${l}`), warn: (l: string) => lines.push(`${stage}: ${l}`), debug() {} }),
          progress: () => ({ start() {}, tick() {}, update() {}, done() {} }),
        },
      });
      const fit = reports.find((r) => r.stage === 'fit')!;
      expect(fit.outcome).toBe('ran');
      expect(timers.map((t) => [t.stage, t.ms])).toEqual([
        ['fit', 3_600_000],
        ['fit', 3_600_000],
      ]);
      expect(fit.attempts!.map((a) => [a.attempt, a.outcome, a.error])).toEqual([
        [1, 'timed-out', 'stage fit timed out after 1h'],
        [2, 'ok', undefined],
      ]);
      expect(lines).toContain('fit: attempt 1 of 2 timed out: stage fit timed out after 1h; retrying');
      expect(lines.filter((l) => l.startsWith('fit: resuming after epoch'))).toEqual([
        expect.stringMatching(/^fit: resuming after epoch 1\/3 from checkpoint /),
      ]);
      // Epoch 1 was trained once: the retry went on with epochs 2 and 3.
      expect(epochs).toEqual([1, 2, 3]);
      const info = JSON.parse(await readFile(join(store.stageLinkPath('fit'), 'train.json'), 'utf8')) as { resumed_after_epoch: number };
      expect(info.resumed_after_epoch).toBe(1);
      expect(await readdir(store.resumeRoot)).toEqual([]);
    } finally {
      off();
      await statCache.save();
    }
  });
});
