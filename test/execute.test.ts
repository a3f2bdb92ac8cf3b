// Execution of kind stages through the engine (no CLI): the StageContext they get (typed inputs,
// output writer, resume dir, abort signal), commits of nested output trees, declared outputs,
// cacheParams and fingerprints in the key, and what a failure leaves behind.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { defineStage, type ProgressReporter, type StageKind } from '../engine/contract.js';
import { parsePipeline } from '../engine/config/parse.js';
import { execute, type StageReport } from '../engine/run/execute.js';
import { gatherFacts, resolvePlan, type FactsEnv } from '../engine/plan/facts.js';
import { StatCache } from '../engine/store/stat-cache.js';
import { Store } from '../engine/store/store.js';
import { describeReasons } from '../engine/plan/reasons.js';
import { StageError } from '../engine/errors.js';

const calls: Record<string, number> = {};
let runtime = 'cpu';

const produce = defineStage({
  name: 'produce',
  version: 1,
  description: 'numbers and a nested tree',
  params: z.object({ n: z.int().positive(), label: z.string().default('') }),
  outputs: [
    { name: 'numbers.npy', type: 'tensor', description: 'int32 [n]' },
    { name: 'nested', type: 'dir', description: 'a tree' },
    { name: 'extra.json', type: 'json', description: 'optional', optional: true },
  ],
  // The label is cosmetic: it does not change the numbers, so it stays out of the key.
  cacheParams: (p) => ({ n: p.n }),
  fingerprint: async () => ({ runtime }),
  async run(ctx) {
    calls.produce = (calls.produce ?? 0) + 1;
    const data = Int32Array.from({ length: ctx.params.n }, (_, i) => i + 1);
    await ctx.out.tensor('numbers.npy', { dtype: 'int32', shape: [ctx.params.n], data }, { label: ctx.params.label });
    await writeFile(ctx.out.path('nested/deep/leaf.txt'), `runtime ${ctx.fingerprint.runtime}`);
  },
});

const sum = defineStage({
  name: 'sum',
  version: 1,
  description: 'sums a produce stage',
  params: z.object({}),
  outputs: [{ name: 'sum.json', type: 'json', description: 'the sum' }],
  async run(ctx) {
    calls.sum = (calls.sum ?? 0) + 1;
    const up = ctx.inputs.oneOfKind('produce');
    const t = await up.readTensor('numbers.npy');
    const leaf = await readFile(join(up.path('nested'), 'deep', 'leaf.txt'), 'utf8');
    await ctx.out.json('sum.json', { sum: (t.data as Int32Array).reduce((a, b) => a + b, 0), meta: t.meta, leaf, upstream: up.list() });
  },
});

const forgetful = defineStage({
  name: 'forgetful',
  version: 1,
  description: 'forgets its declared output',
  params: z.object({}),
  outputs: [{ name: 'result.json', type: 'json', description: 'never written' }],
  async run(ctx) {
    await ctx.out.json('other.json', {});
  },
});

const flaky = defineStage({
  name: 'flaky',
  version: 1,
  description: 'checkpoints, then fails until told not to',
  params: z.object({}),
  outputs: [{ name: 'done.json', type: 'json', description: 'result' }],
  async run(ctx) {
    const seen = await readFile(join(ctx.resumeDir, 'checkpoint'), 'utf8').catch(() => '');
    await writeFile(join(ctx.resumeDir, 'checkpoint'), seen + 'x');
    await ctx.out.json('partial.json', { written: true });
    if (seen.length < 1) throw new StageError('flaky: first attempt fails');
    await ctx.out.json('done.json', { attempts: seen.length + 1 });
  },
});

const waiter = defineStage({
  name: 'waiter',
  version: 1,
  description: 'runs until aborted',
  params: z.object({}),
  outputs: [{ name: 'never.json', type: 'json', description: 'never written' }],
  run: (ctx) =>
    new Promise<void>((_, reject) => {
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted as asked')), { once: true });
      calls.waiterStarted = 1;
    }),
});

/** Writes `n` small files: committing them is long work that must show progress. */
const many = defineStage({
  name: 'many',
  version: 1,
  description: 'many files',
  params: z.object({ n: z.int().positive() }),
  outputs: [{ name: 'files', type: 'dir', description: 'n files' }],
  async run(ctx) {
    for (let i = 0; i < ctx.params.n; i++) await writeFile(ctx.out.path(`files/${i}.txt`), String(i));
  },
});

const kinds = new Map<string, StageKind>([produce, sum, forgetful, flaky, waiter, many].map((k) => [k.name, k as unknown as StageKind]));

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'execute-test-'));
  for (const k of Object.keys(calls)) delete calls[k];
  runtime = 'cpu';
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function run(yaml: string, options: { sets?: string[]; keepGoing?: boolean; jobs?: number; progress?: ProgressReporter } = {}) {
  const pipeline = parsePipeline(yaml, { file: join(root, 'pipeline.yaml'), shownAs: 'pipeline.yaml', kinds, sets: options.sets ?? [] });
  const store = new Store(root);
  await store.init();
  const statCache = await StatCache.load(store.statCacheFile, root);
  const env: FactsEnv = { pipeline, store, statCache, kinds, signal: new AbortController().signal };
  const facts = await gatherFacts(env, pipeline.order);
  const planned = await resolvePlan(env, { ...facts, stored: new Map(facts.stored) }, pipeline.order);
  const reports = await execute({
    env,
    facts,
    stages: pipeline.order,
    force: new Set(),
    jobs: options.jobs ?? 2,
    keepGoing: options.keepGoing ?? false,
    signal: env.signal,
    runId: 'test',
    refs: await store.readRefs(),
    ui: { logger: () => ({ info() {}, warn() {}, debug() {} }), progress: () => options.progress ?? { start() {}, tick() {}, update() {}, done() {} } },
  });
  await statCache.save();
  const by = Object.fromEntries(reports.map((r) => [r.stage, r])) as Record<string, StageReport>;
  const reasons = Object.fromEntries(planned.stages.map((p) => [p.stage, describeReasons(p.reasons)]));
  return { by, store, reasons };
}

const twoStages = `
stages:
  numbers:
    uses: produce
    with: { n: 4, label: first }
  total:
    uses: sum
    needs: [numbers]
`;

describe('kind stages through the engine', () => {
  test('outputs (tensor + sidecar, nested dirs) are committed and readable by the downstream stage', async () => {
    const { by, store } = await run(twoStages);
    expect(by.numbers!.outcome).toBe('ran');
    expect(by.total!.outcome).toBe('ran');
    expect(Object.keys(by.numbers!.manifest!.files).sort()).toEqual(['nested/deep/leaf.txt', 'numbers.json', 'numbers.npy']);
    const result = JSON.parse(await readFile(join(store.stageLinkPath('total'), 'sum.json'), 'utf8'));
    expect(result).toEqual({ sum: 10, meta: { label: 'first' }, leaf: 'runtime cpu', upstream: ['nested', 'numbers.json', 'numbers.npy'] });
    // Nothing is left in tmp/ and the resume dirs of committed stages are gone.
    expect(await readdir(store.tmpDir)).toEqual([]);
    expect(await readdir(store.resumeRoot)).toEqual([]);
  });

  test('a second run is all cached; a param outside cacheParams is still a hit; one inside reruns', async () => {
    await run(twoStages);
    const again = await run(twoStages);
    expect([again.by.numbers!.outcome, again.by.total!.outcome]).toEqual(['cached', 'cached']);
    expect(calls).toMatchObject({ produce: 1, sum: 1 });

    const relabelled = await run(twoStages, { sets: ['numbers.label=second'] });
    expect(relabelled.by.numbers!.outcome).toBe('cached');

    const bigger = await run(twoStages, { sets: ['numbers.n=5'] });
    expect(bigger.reasons.numbers).toBe('params changed: n 4 → 5');
    expect([bigger.by.numbers!.outcome, bigger.by.total!.outcome]).toEqual(['ran', 'ran']);
  });

  test('a fingerprint change reruns the stage as a runtime change', async () => {
    await run(twoStages);
    runtime = 'wasm';
    const r = await run(twoStages);
    expect(r.reasons.numbers).toBe('runtime changed: runtime "cpu" → "wasm"');
    expect(r.by.numbers!.outcome).toBe('ran');
  });

  test('a missing declared output fails the stage; nothing is committed', async () => {
    const { by, store } = await run('stages:\n  f:\n    uses: forgetful\n');
    expect(by.f!.outcome).toBe('failed');
    expect((by.f!.error as Error).message).toBe('stage f: declared output not written: result.json');
    expect(await store.manifestKeys()).toEqual([]);
    expect(await readdir(store.tmpDir)).toEqual([]);
  });

  test('a failed stage keeps its resume dir for the next attempt, which then commits', async () => {
    const yaml = 'stages:\n  f:\n    uses: flaky\n';
    const first = await run(yaml);
    expect(first.by.f!.outcome).toBe('failed');
    expect(await first.store.manifestKeys()).toEqual([]);
    const second = await run(yaml);
    expect(second.by.f!.outcome).toBe('ran');
    expect(JSON.parse(await readFile(join(second.store.stageLinkPath('f'), 'done.json'), 'utf8'))).toEqual({ attempts: 2 });
    expect(await readdir(second.store.resumeRoot)).toEqual([]);
  });

  test('without keepGoing a failure aborts running stages; with it, independent stages finish', async () => {
    const yaml = 'stages:\n  w:\n    uses: waiter\n  f:\n    uses: forgetful\n';
    const stopped = await run(yaml, { jobs: 2 });
    expect(stopped.by.f!.outcome).toBe('failed');
    expect(stopped.by.w!.outcome).toBe('aborted');

    const independent =
      'stages:\n  f:\n    uses: forgetful\n  numbers:\n    uses: produce\n    with: { n: 2 }\n  total:\n    uses: sum\n    needs: [numbers]\n';
    const going = await run(independent, { jobs: 1, keepGoing: true });
    expect([going.by.f!.outcome, going.by.numbers!.outcome, going.by.total!.outcome]).toEqual(['failed', 'ran', 'ran']);
  });
});

describe('committing many files', () => {
  test('shows progress when a stage stores hundreds of files, and stays quiet for a few', async () => {
    const events: string[] = [];
    const progress: ProgressReporter = {
      start: (label, total, unit) => events.push(`start ${label} ${total} ${unit}`),
      tick: () => events.push('tick'),
      update: (v) => events.push(`update ${v}`),
      done: () => events.push('done'),
    };
    const { by } = await run('stages:\n  lots:\n    uses: many\n    with: { n: 600 }\n', { progress });
    expect(by.lots!.outcome).toBe('ran');
    expect(Object.keys(by.lots!.manifest!.files)).toHaveLength(600);
    expect(events[0]).toBe('start store outputs 600 file');
    expect(events.filter((e) => e.startsWith('update'))).toHaveLength(600);
    expect(events.at(-1)).toBe('done');

    events.length = 0;
    await run('stages:\n  few:\n    uses: many\n    with: { n: 3 }\n', { progress });
    expect(events).toEqual([]);
  });
});
