// What a stage sees of provenance and run history through the engine (ctx.inputs[].provenance,
// digest(), ctx.runs): real store, real manifests, real run records.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { defineStage, type StageKind } from '../engine/contract.js';
import { parsePipeline } from '../engine/config/parse.js';
import { execute } from '../engine/run/execute.js';
import { gatherFacts, type FactsEnv } from '../engine/plan/facts.js';
import { StatCache } from '../engine/store/stat-cache.js';
import { Store } from '../engine/store/store.js';
import type { RunRecord } from '../engine/store/runs.js';

const numbers = defineStage({
  name: 'numbers',
  version: 3,
  description: 'writes n',
  params: z.object({ n: z.int() }),
  outputs: [{ name: 'n.json', type: 'json', description: 'n' }],
  fingerprint: async () => ({ backend: 'test-backend' }),
  run: async (ctx) => ctx.out.json('n.json', { n: ctx.params.n }),
});

/** Writes down what it saw of its input and of the run history. */
const witness = defineStage({
  name: 'witness',
  version: 1,
  description: 'records ctx.runs and provenance',
  params: z.object({ tag: z.string().default('') }),
  outputs: [{ name: 'seen.json', type: 'json', description: 'what it saw' }],
  async run(ctx) {
    const up = ctx.inputs.oneOfKind('numbers');
    const earlier = await ctx.runs.earlier();
    const firstKey = earlier[0]?.stages.find((s) => s.stage === 'source')?.key;
    const old = firstKey ? await ctx.runs.result(firstKey) : undefined;
    await ctx.out.json('seen.json', {
      provenance: up.provenance,
      digest: up.digest('n.json'),
      missingDigest: up.digest('nope.json') ?? null,
      current: ctx.runs.current(),
      earlier: earlier.map((r) => ({
        id: r.id,
        stages: r.stages.map((s) => [s.stage, s.outcome]),
        scheduled: r.scheduled ?? null,
        promotion: r.promotion ?? null,
      })),
      oldValue: old ? await old.readJson('n.json') : null,
      oldProvenance: old?.provenance ?? null,
      changes: firstKey ? await ctx.runs.changes(firstKey, up.provenance.key) : [],
      gone: (await ctx.runs.result('0'.repeat(64))) ?? null,
    });
  },
});

const kinds = new Map<string, StageKind>([numbers, witness].map((k) => [k.name, k as unknown as StageKind]));
const yaml = (n: number) =>
  `stages:\n  source:\n    uses: numbers\n    with: { n: ${n} }\n  look:\n    uses: witness\n    needs: [source]\n    with: { tag: "${n}" }\n`;

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'run-history-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** One `pipeline run`, with its run record written before and after as the CLI does. */
async function runOnce(n: number, id: string, scheduled?: string) {
  const pipeline = parsePipeline(yaml(n), { file: join(root, 'pipeline.yaml'), shownAs: 'pipeline.yaml', kinds, sets: [] });
  const store = new Store(root);
  await store.init();
  const statCache = await StatCache.load(store.statCacheFile, root);
  const env: FactsEnv = { pipeline, store, statCache, kinds, signal: new AbortController().signal };
  const record: RunRecord = { id, command: ['run', `n=${n}`], pid: 1, startedAt: new Date().toISOString(), outcome: 'running', stages: [] };
  await store.runs.write(record);
  const reports = await execute({
    env,
    facts: await gatherFacts(env, pipeline.order),
    stages: pipeline.order,
    force: new Set(),
    jobs: 1,
    keepGoing: false,
    signal: env.signal,
    runId: id,
    run: { startedAt: record.startedAt, command: record.command, ...(scheduled ? { scheduled } : {}) },
    refs: await store.readRefs(),
    ui: { logger: () => ({ info() {}, warn() {}, debug() {} }), progress: () => ({ start() {}, tick() {}, update() {}, done() {} }) },
  });
  await store.runs.write({
    ...record,
    outcome: 'ok',
    stages: reports.map((r) => ({ stage: r.stage, outcome: r.outcome, key: r.key, durationMs: r.durationMs })),
  });
  return { store, reports };
}

describe('provenance and run history seen by a stage', () => {
  test('an input names its key, outputs digest, version, runtime and the run that computed it; files by digest', async () => {
    const { store, reports } = await runOnce(1, 'run-1');
    const seen = JSON.parse(await readFile(join(store.stageLinkPath('look'), 'seen.json'), 'utf8'));
    const source = reports.find((r) => r.stage === 'source')!.manifest!;
    expect(seen.provenance).toEqual({
      key: source.key,
      outputsDigest: source.outputsDigest,
      version: 3,
      fingerprint: { backend: 'test-backend' },
      createdAt: source.createdAt,
      durationMs: source.durationMs,
      runId: 'run-1',
    });
    expect(seen.digest).toBe(source.files['n.json']!.digest);
    expect(seen.missingDigest).toBeNull();
    // The current run as far as it got: its upstream finished, itself not yet.
    expect(seen.current).toMatchObject({
      id: 'run-1',
      command: ['run', 'n=1'],
      outcome: 'running',
      stages: [{ stage: 'source', outcome: 'ran', key: source.key }],
    });
    expect(seen.earlier).toEqual([]);
    expect(seen.gone).toBeNull();
  });

  test('earlier runs come from the records (not the current one); their results read by key; changes explained', async () => {
    await runOnce(1, 'run-1');
    const second = await runOnce(1, 'run-2'); // all cached: look does not rerun
    // As `pipeline schedule` records it: the entry that fired, and the promotion decision after.
    const record = (await second.store.runs.list()).find((r) => r.id === 'run-2')!;
    await second.store.runs.write({
      ...record,
      trigger: { type: 'schedule', entry: 'nightly', firedAt: record.startedAt, result: 'nothing-changed' },
      promotion: { decision: 'kept', reason: 'not better', metric: 'test_accuracy' },
    });
    const { store } = await runOnce(2, 'run-3', 'hourly');
    const seen = JSON.parse(await readFile(join(store.stageLinkPath('look'), 'seen.json'), 'utf8'));
    expect(seen.earlier).toEqual([
      {
        id: 'run-1',
        stages: [
          ['source', 'ran'],
          ['look', 'ran'],
        ],
        scheduled: null,
        promotion: null,
      },
      {
        id: 'run-2',
        stages: [
          ['source', 'cached'],
          ['look', 'cached'],
        ],
        scheduled: 'nightly',
        promotion: { decision: 'kept', reason: 'not better' },
      },
    ]);
    expect(seen.current).toMatchObject({ id: 'run-3', scheduled: 'hourly' });
    expect(seen.oldValue).toEqual({ n: 1 });
    expect(seen.oldProvenance.runId).toBe('run-1');
    expect(seen.changes).toEqual([{ what: 'params', text: 'params changed: n 1 → 2' }]);
  });
});
