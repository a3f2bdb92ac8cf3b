// The planner is pure: these tests build pipelines and store facts by hand and check each decision
// and reason, with no files and no stages run.
import { describe, expect, test } from '@jest/globals';
import { cacheKey, type KeyMaterial } from '../engine/store/cache-key.js';
import { outputsDigestOf, type Manifest } from '../engine/store/manifest.js';
import type { Pipeline, StageSpec } from '../engine/config/pipeline.js';
import { decideStage, keyMaterial, plan, type PlanFacts, type StageFacts, type StoredResult } from '../engine/plan/plan.js';
import { describeReason, describeReasons, type Reason } from '../engine/plan/reasons.js';

function pipelineOf(...stages: (Partial<StageSpec> & { name: string })[]): Pipeline {
  const map = new Map<string, StageSpec>();
  for (const s of stages) {
    map.set(s.name, { kind: 'cmd', params: {}, deps: [], outs: [], needs: [], loc: { file: 'pipeline.yaml', line: 1, col: 1 }, ...s });
  }
  return { file: '/w/pipeline.yaml', root: '/w', params: {}, stages: map, order: stages.map((s) => s.name) };
}

const digest = (c: string) => c.repeat(64).slice(0, 64);

function manifestFor(stage: string, material: KeyMaterial, files: Record<string, string>): Manifest {
  const f = Object.fromEntries(Object.entries(files).map(([p, d]) => [p, { digest: d, size: 1 }]));
  return {
    format: 1,
    key: cacheKey(material),
    stage,
    kind: material.kind,
    material,
    params: {},
    entries: Object.keys(files),
    dirs: [],
    files: f,
    outputsDigest: outputsDigestOf(f),
    createdAt: '2026-01-01T00:00:00.000Z',
    durationMs: 5,
    runId: 'r1',
  };
}

interface World {
  stages: Map<string, StageFacts>;
  refs: Map<string, string>;
  stored: Map<string, StoredResult | null>;
}

function world(): World {
  return { stages: new Map(), refs: new Map(), stored: new Map() };
}

/** Records a committed result of `stage` for its current facts and upstream outputs; returns its manifest. */
function commit(w: World, stage: string, inputs: Record<string, string>, files: Record<string, string>, extra: Partial<StoredResult> = {}): Manifest {
  const m = manifestFor(stage, keyMaterial(w.stages.get(stage)!, inputs), files);
  w.stored.set(m.key, { manifest: m, missingObjects: [], workspaceMissing: [], ...extra });
  w.refs.set(stage, m.key);
  return m;
}

const kindFacts = (over: Partial<StageFacts> = {}): StageFacts => ({ kind: 'learn', version: 1, keyParams: { lr: 0.01, epochs: 2 }, ...over });
const cmdFacts = (over: Partial<StageFacts> = {}): StageFacts => ({
  kind: 'cmd',
  cmd: 'make out',
  outs: ['out'],
  deps: { 'src.txt': digest('a') },
  keyParams: {},
  ...over,
});

const types = (reasons: Reason[]) => reasons.map((r) => r.type);

describe('plan', () => {
  const p = pipelineOf({ name: 'src' }, { name: 'learn', kind: 'learn', needs: ['src'] });

  function baseline(): World {
    const w = world();
    w.stages.set('src', cmdFacts());
    w.stages.set('learn', kindFacts());
    const src = commit(w, 'src', {}, { out: digest('1') });
    commit(w, 'learn', { src: src.outputsDigest }, { 'model.json': digest('2') });
    return w;
  }

  test('everything committed with the same key is cached, with no reasons', () => {
    const result = plan(p, ['src', 'learn'], baseline());
    expect(result.wanted).toEqual([]);
    expect(result.stages.map((s) => [s.stage, s.action, s.reasons.length])).toEqual([
      ['src', 'cached', 0],
      ['learn', 'cached', 0],
    ]);
  });

  test('a stage with no record has never run; its downstream waits on it', () => {
    const w = world();
    w.stages.set('src', cmdFacts());
    w.stages.set('learn', kindFacts());
    const result = plan(p, ['src', 'learn'], { ...w, stored: new Map(w.stored) });
    // The planner asks for the key's record before deciding.
    expect(result.wanted).toHaveLength(1);
    const facts: PlanFacts = { ...w, stored: new Map([[result.wanted[0]!, null]]) };
    const final = plan(p, ['src', 'learn'], facts);
    expect(final.wanted).toEqual([]);
    expect(final.stages[0]).toMatchObject({ action: 'run', reasons: [{ type: 'never-run' }] });
    expect(final.stages[1]!.action).toBe('run');
    expect('key' in final.stages[1]! && final.stages[1]!.key).toBeFalsy();
    expect(types(final.stages[1]!.reasons)).toEqual(['never-run', 'upstream']);
    expect(describeReasons(final.stages[1]!.reasons)).toBe('never run; upstream stale: src');
  });

  test('params changed: names the param with old and new values', () => {
    const w = baseline();
    w.stages.set('learn', kindFacts({ keyParams: { lr: 0.1, epochs: 2 } }));
    const d = decideStage(p, 'learn', w, new Map([['src', (w.stored.get(w.refs.get('src')!) as StoredResult).manifest.outputsDigest]]));
    expect(d.wanted).toHaveLength(1); // the new key's record
    w.stored.set(d.wanted[0]!, null);
    const final = decideStage(p, 'learn', w, new Map([['src', (w.stored.get(w.refs.get('src')!) as StoredResult).manifest.outputsDigest]]));
    expect(final.plan.action).toBe('run');
    expect(final.plan.reasons).toEqual([{ type: 'params', changes: [{ path: 'lr', old: 0.01, new: 0.1 }] }]);
    expect(describeReason(final.plan.reasons[0]!)).toBe('params changed: lr 0.01 → 0.1');
  });

  test('a long changed string is shown where it differs, not as two identical truncations', () => {
    const old = 'libjpeg-turbo wasm (@cornerstonejs/codec-libjpeg-turbo-8bit 1.2.8, libjpeg-turbo 3.0.1)';
    const cur = old.replace('3.0.1', '3.0.2');
    expect(describeReason({ type: 'runtime', changes: [{ path: 'jpeg', old, new: cur }] })).toBe('runtime changed: jpeg `…g-turbo 3.0.1)` → `…g-turbo 3.0.2)`');
  });

  test('nested params changes are reported by path', () => {
    const w = baseline();
    w.stages.set('learn', kindFacts({ keyParams: { lr: 0.01, epochs: 2, optimizer: { name: 'adam' } } }));
    const reasons = settle(p, w, ['src', 'learn']).stages[1]!.reasons;
    expect(reasons).toEqual([{ type: 'params', changes: [{ path: 'optimizer', old: undefined, new: { name: 'adam' } }] }]);
    const w2 = baseline();
    const learnRef = w2.refs.get('learn')!;
    const prev = (w2.stored.get(learnRef) as StoredResult).manifest;
    prev.material.params = { lr: 0.01, epochs: 2, layers: [{ units: 8 }] };
    w2.stages.set('learn', kindFacts({ keyParams: { lr: 0.01, epochs: 2, layers: [{ units: 16 }] } }));
    expect(settle(p, w2, ['src', 'learn']).stages[1]!.reasons).toEqual([{ type: 'params', changes: [{ path: 'layers.0.units', old: 8, new: 16 }] }]);
  });

  test('code changed: kind version, or cmd text', () => {
    const w = baseline();
    w.stages.set('learn', kindFacts({ version: 2 }));
    expect(settle(p, w, ['src', 'learn']).stages[1]!.reasons).toEqual([{ type: 'code', what: 'version', old: 1, new: 2 }]);

    const w2 = baseline();
    w2.stages.set('src', cmdFacts({ cmd: 'make out FAST=1' }));
    const r = settle(p, w2, ['src', 'learn']);
    expect(r.stages[0]!.reasons).toEqual([{ type: 'code', what: 'cmd', old: 'make out', new: 'make out FAST=1' }]);
    expect(describeReason(r.stages[0]!.reasons[0]!)).toBe('code changed: cmd `make out` → `make out FAST=1`');
    expect(types(r.stages[1]!.reasons)).toEqual(['upstream']);
  });

  test('input changed: a dep file of a cmd stage, and an upstream whose outputs changed', () => {
    const w = baseline();
    w.stages.set('src', cmdFacts({ deps: { 'src.txt': digest('b') } }));
    const r = settle(p, w, ['src']);
    expect(r.stages[0]!.reasons).toEqual([{ type: 'input', changes: [{ name: 'src.txt', via: 'dep', old: digest('a'), new: digest('b') }] }]);
    expect(describeReason(r.stages[0]!.reasons[0]!)).toBe('input changed: src.txt (aaaaaaaa → bbbbbbbb)');

    // The upstream reran and produced other bytes.
    const decided = decideStage(p, 'learn', w, new Map([['src', digest('9')]]));
    w.stored.set(
      decided.wanted.find((k) => !w.stored.has(k))!,
      null,
    );
    const final = decideStage(p, 'learn', w, new Map([['src', digest('9')]]));
    expect(final.plan.action).toBe('run');
    expect(final.plan.reasons).toMatchObject([{ type: 'input', changes: [{ name: 'src', via: 'stage', new: digest('9') }] }]);
  });

  test('a missing dep is an input change to null', () => {
    const w = baseline();
    w.stages.set('src', cmdFacts({ deps: { 'src.txt': null } }));
    expect(describeReasons(settle(p, w, ['src']).stages[0]!.reasons)).toBe('input changed: src.txt (missing)');
  });

  test('an upstream that reran with identical outputs leaves its downstream cached', () => {
    const w = baseline();
    const srcOut = (w.stored.get(w.refs.get('src')!) as StoredResult).manifest.outputsDigest;
    const d = decideStage(p, 'learn', w, new Map([['src', srcOut]]));
    expect(d.plan.action).toBe('cached');
  });

  test('runtime changed: fingerprint differences by name', () => {
    const w = world();
    w.stages.set('src', cmdFacts());
    w.stages.set('learn', kindFacts({ fingerprint: { backend: 'wasm', tfjs: '4.22.0' } }));
    const src = commit(w, 'src', {}, { out: digest('1') });
    commit(w, 'learn', { src: src.outputsDigest }, { 'model.json': digest('2') });
    w.stages.set('learn', kindFacts({ fingerprint: { backend: 'cpu', tfjs: '4.22.0' } }));
    const reasons = settle(p, w, ['src', 'learn']).stages[1]!.reasons;
    expect(reasons).toEqual([{ type: 'runtime', changes: [{ path: 'backend', old: 'wasm', new: 'cpu' }] }]);
    expect(describeReason(reasons[0]!)).toBe('runtime changed: backend "wasm" → "cpu"');
  });

  test('a fingerprint that failed makes the stage run with that reason', () => {
    const w = baseline();
    w.stages.set('learn', kindFacts({ fingerprintError: 'HEAD failed: ECONNREFUSED' }));
    const r = settle(p, w, ['src', 'learn']).stages[1]!;
    expect(r).toMatchObject({ action: 'run', reasons: [{ type: 'fingerprint-failed', message: 'HEAD failed: ECONNREFUSED' }] });
  });

  test('output missing: objects gone from the store → run; workspace outs gone → cached with a restore', () => {
    const w = baseline();
    const srcKey = w.refs.get('src')!;
    const s = w.stored.get(srcKey)!;
    w.stored.set(srcKey, { ...s, workspaceMissing: ['out'] });
    const r1 = settle(p, w, ['src', 'learn']);
    expect(r1.stages[0]).toMatchObject({ action: 'cached', restore: ['out'] });
    expect(describeReason(r1.stages[0]!.reasons[0]!)).toBe('output missing: workspace out missing or modified (run restores it)');
    expect(r1.stages[1]!.action).toBe('cached');

    w.stored.set(srcKey, { ...s, missingObjects: ['out'] });
    const r2 = settle(p, w, ['src', 'learn']);
    expect(r2.stages[0]).toMatchObject({ action: 'run', key: srcKey, reasons: [{ type: 'output-missing', objects: ['out'] }] });
    expect(types(r2.stages[1]!.reasons)).toEqual(['upstream']);
  });

  test('a ref whose manifest is gone reports the record missing', () => {
    const w = baseline();
    w.stored.set(w.refs.get('src')!, null);
    expect(settle(p, w, ['src']).stages[0]).toMatchObject({ action: 'run', reasons: [{ type: 'output-missing', manifest: true }] });
  });

  test('a parameter changed back to an earlier value finds the earlier result cached', () => {
    const w = baseline();
    const first = w.refs.get('learn')!;
    w.stages.set('learn', kindFacts({ keyParams: { lr: 0.5, epochs: 2 } }));
    const srcOut = (w.stored.get(w.refs.get('src')!) as StoredResult).manifest.outputsDigest;
    commit(w, 'learn', { src: srcOut }, { 'model.json': digest('3') });
    expect(w.refs.get('learn')).not.toBe(first);
    w.stages.set('learn', kindFacts());
    expect(settle(p, w, ['src', 'learn']).stages[1]).toMatchObject({ action: 'cached', key: first });
  });

  test('--force runs a cached stage; its downstream is rechecked after it', () => {
    const w = baseline();
    const r = plan(p, ['src', 'learn'], w, { force: new Set(['src']) });
    expect(r.stages[0]).toMatchObject({ action: 'run', reasons: [{ type: 'forced' }] });
    expect(r.stages[1]).toMatchObject({ action: 'run', reasons: [{ type: 'upstream', stages: ['src'] }] });
  });

  test('the key covers kind, version, params, inputs and fingerprint, and nothing else', () => {
    const base = keyMaterial(kindFacts(), { src: digest('1') });
    const k = cacheKey(base);
    expect(cacheKey(keyMaterial(kindFacts({ keyParams: { epochs: 2, lr: 0.01 } }), { src: digest('1') }))).toBe(k); // member order
    for (const changed of [
      keyMaterial(kindFacts({ version: 2 }), { src: digest('1') }),
      keyMaterial(kindFacts({ keyParams: { lr: 0.01, epochs: 3 } }), { src: digest('1') }),
      keyMaterial(kindFacts(), { src: digest('2') }),
      keyMaterial(kindFacts({ fingerprint: { backend: 'cpu' } }), { src: digest('1') }),
    ]) {
      expect(cacheKey(changed)).not.toBe(k);
    }
  });
});

/** Plans, answering every wanted key with "no record", until the plan is final. */
function settle(p: Pipeline, w: World, stages: string[]) {
  for (;;) {
    const r = plan(p, stages, w);
    if (r.wanted.length === 0) return r;
    for (const k of r.wanted) w.stored.set(k, null);
  }
}
