// Planning is pure: plan = f(pipeline, facts). The facts (manifests, dep digests through the stat
// cache, kinds' fingerprints, which objects and workspace outs are present) are gathered first by
// plan/facts.ts; here we only decide, per stage, cached or run, and why.
import { cacheKey, diffValues, KEY_FORMAT, type KeyMaterial } from '../store/cache-key.js';
import type { Manifest } from '../store/manifest.js';
import type { Pipeline } from '../config/pipeline.js';
import type { InputChange, Reason } from './reasons.js';

/** Facts about one stage that do not depend on upstream results. */
export interface StageFacts {
  kind: string;
  /** Kind implementation version (kind stages). */
  version?: number;
  cmd?: string;
  outs?: string[];
  /** Own deps (not produced by upstream stages) → content digest, null when missing. */
  deps?: Record<string, string | null>;
  /** Params as they enter the key (`cacheParams` applied). */
  keyParams: unknown;
  fingerprint?: Record<string, unknown>;
  /** fingerprint() threw: the stage cannot be keyed; running it reports this. */
  fingerprintError?: string;
}

/** What the store holds for one key. */
export interface StoredResult {
  manifest: Manifest;
  /** Output files whose object is gone from the store. */
  missingObjects: string[];
  /** The missing objects were removed because their content was corrupt (found while running). */
  corrupt?: boolean;
  /** cmd stages: outs absent from, or different in, the workspace (restorable from the store). */
  workspaceMissing: string[];
}

export interface PlanFacts {
  stages: ReadonlyMap<string, StageFacts>;
  /** Stage → latest key it ran or was cached with. */
  refs: ReadonlyMap<string, string>;
  /** Key → what the store holds; null = no manifest. Keys not present here have not been looked up. */
  stored: ReadonlyMap<string, StoredResult | null>;
}

export interface PlanOptions {
  /** Stages to run even if cached. */
  force?: ReadonlySet<string>;
}

export type StagePlan =
  | {
      stage: string;
      action: 'cached';
      key: string;
      material: KeyMaterial;
      stored: StoredResult;
      /** Workspace outs to restore from the store (cmd stages). */
      restore: string[];
      /** Empty, or output-missing for restorable workspace outs. */
      reasons: Reason[];
    }
  | {
      stage: string;
      action: 'run';
      /** Unknown while an upstream stage has yet to run (its outputs are part of the key). */
      key?: string;
      material?: KeyMaterial;
      reasons: Reason[];
    };

export interface Decision {
  plan: StagePlan;
  /** Keys whose store record is needed to decide; load them into facts.stored and decide again. */
  wanted: string[];
}

/**
 * Upstream outputs for a stage: upstream name → outputs digest, or undefined when that upstream
 * will run (its outputs are not known yet).
 */
export type UpstreamOutputs = ReadonlyMap<string, string | undefined>;

export function keyMaterial(facts: StageFacts, inputs: Record<string, string>): KeyMaterial {
  const m: KeyMaterial = { format: KEY_FORMAT, kind: facts.kind, params: facts.keyParams, inputs };
  if (facts.version !== undefined) m.version = facts.version;
  if (facts.cmd !== undefined) m.cmd = facts.cmd;
  if (facts.outs !== undefined) m.outs = facts.outs;
  if (facts.deps !== undefined) m.deps = facts.deps;
  if (facts.fingerprint !== undefined) m.fingerprint = facts.fingerprint;
  return m;
}

/** Decides one stage given its upstreams' outputs. */
export function decideStage(pipeline: Pipeline, name: string, facts: PlanFacts, upstream: UpstreamOutputs, options: PlanOptions = {}): Decision {
  const spec = pipeline.stages.get(name);
  const sf = facts.stages.get(name);
  if (!spec || !sf) throw new Error(`decideStage: no facts for stage ${name}`);
  const forced = options.force?.has(name) ?? false;
  const wanted: string[] = [];

  // The previous result of this stage, to explain what changed.
  const refKey = facts.refs.get(name);
  let previous: StoredResult | null | undefined;
  if (refKey !== undefined) {
    previous = facts.stored.get(refKey);
    if (previous === undefined) wanted.push(refKey);
  }

  if (sf.fingerprintError !== undefined) {
    return { plan: { stage: name, action: 'run', reasons: [{ type: 'fingerprint-failed', message: sf.fingerprintError }] }, wanted };
  }

  const pending = spec.needs.filter((n) => upstream.get(n) === undefined);
  const inputs: Record<string, string> = {};
  for (const n of spec.needs) {
    const d = upstream.get(n);
    if (d !== undefined) inputs[n] = d;
  }
  const material = keyMaterial(sf, inputs);

  if (pending.length > 0) {
    const reasons: Reason[] = forced ? [{ type: 'forced' }] : [];
    if (previous) reasons.push(...explain(previous.manifest.material, material, pending, resolvedParams(previous, spec)));
    else if (refKey === undefined) reasons.push({ type: 'never-run' });
    reasons.push({ type: 'upstream', stages: pending });
    return { plan: { stage: name, action: 'run', reasons }, wanted };
  }

  const key = cacheKey(material);
  const stored = facts.stored.get(key);
  if (stored === undefined) {
    wanted.push(key);
    return { plan: { stage: name, action: 'run', key, material, reasons: [] }, wanted };
  }
  if (forced) return { plan: { stage: name, action: 'run', key, material, reasons: [{ type: 'forced' }] }, wanted };

  if (stored && stored.missingObjects.length === 0) {
    const restore = stored.workspaceMissing;
    const reasons: Reason[] = restore.length ? [{ type: 'output-missing', objects: [], workspace: restore }] : [];
    return { plan: { stage: name, action: 'cached', key, material, stored, restore, reasons }, wanted };
  }

  let reasons: Reason[];
  if (stored) {
    reasons = [{ type: 'output-missing', objects: stored.missingObjects, workspace: [], ...(stored.corrupt ? { corrupt: true } : {}) }];
  } else if (refKey === undefined) {
    reasons = [{ type: 'never-run' }];
  } else if (refKey === key || previous === null) {
    reasons = [{ type: 'output-missing', objects: [], workspace: [], manifest: true }];
  } else if (previous === undefined) {
    reasons = []; // decided once `previous` is loaded
  } else {
    reasons = explain(previous.manifest.material, material, [], resolvedParams(previous, spec));
    if (reasons.length === 0) reasons = [{ type: 'output-missing', objects: [], workspace: [], manifest: true }];
  }
  return { plan: { stage: name, action: 'run', key, material, reasons }, wanted };
}

/** A stage's resolved params (as written, after overrides and defaults) then and now. */
export interface ResolvedParams {
  old: unknown;
  new: unknown;
}

/**
 * What differs between a previous key material and the current one, as reasons. Inputs from
 * `pendingUpstreams` are unknown now and are not compared (an `upstream` reason covers them).
 */
export function explain(old: KeyMaterial, cur: KeyMaterial, pendingUpstreams: readonly string[] = [], resolved?: ResolvedParams): Reason[] {
  const reasons: Reason[] = [];
  if (old.format !== cur.format) reasons.push({ type: 'code', what: 'version', old: `key format ${old.format}`, new: `key format ${cur.format}` });
  if (old.kind !== cur.kind) reasons.push({ type: 'code', what: 'kind', old: old.kind, new: cur.kind });
  else if (old.version !== cur.version) reasons.push({ type: 'code', what: 'version', old: old.version, new: cur.version });
  if (old.cmd !== cur.cmd) reasons.push({ type: 'code', what: 'cmd', old: old.cmd, new: cur.cmd });
  if (diffValues(old.outs ?? [], cur.outs ?? []).length) reasons.push({ type: 'code', what: 'outs', old: old.outs, new: cur.outs });

  // The key holds what a kind keys on (its cacheParams: fetch's `unpack`), which the user never
  // wrote: name the change in the params as written, when both sides are known.
  const keyParams = diffValues(old.params, cur.params);
  const userParams = keyParams.length && resolved ? diffValues(resolved.old, resolved.new) : [];
  const params = userParams.length ? userParams : keyParams;
  if (params.length) reasons.push({ type: 'params', changes: params });

  const inputs: InputChange[] = [];
  const stageNames = new Set([...Object.keys(old.inputs), ...Object.keys(cur.inputs), ...pendingUpstreams]);
  for (const n of [...stageNames].sort()) {
    if (pendingUpstreams.includes(n)) continue;
    const a = old.inputs[n];
    const b = cur.inputs[n];
    if (a !== b) inputs.push({ name: n, via: 'stage', old: a, new: b });
  }
  const oldDeps = old.deps ?? {};
  const curDeps = cur.deps ?? {};
  for (const p of [...new Set([...Object.keys(oldDeps), ...Object.keys(curDeps)])].sort()) {
    const a = p in oldDeps ? oldDeps[p] : undefined;
    const b = p in curDeps ? curDeps[p] : undefined;
    if (a !== b) inputs.push({ name: p, via: 'dep', old: a, new: b });
  }
  if (inputs.length) reasons.push({ type: 'input', changes: inputs });

  // A fact a kind records only for some params (fetch: a local source's digest, a URL's ETag)
  // comes and goes with them: part of the params change, not a runtime change of its own.
  const runtime = diffValues(old.fingerprint ?? {}, cur.fingerprint ?? {}).filter(
    (c) => !(params.length && (c.old === undefined || c.new === undefined) && !c.path.includes('.')),
  );
  if (runtime.length) reasons.push({ type: 'runtime', changes: runtime });
  return reasons;
}

function resolvedParams(previous: StoredResult, spec: { params: Record<string, unknown> }): ResolvedParams | undefined {
  // Manifests written before they recorded params have none to compare.
  return previous.manifest.params ? { old: previous.manifest.params, new: spec.params } : undefined;
}

export interface Plan {
  /** In `stages` order (topological). */
  stages: StagePlan[];
  /** Keys to load before the plan is final (see resolvePlan in plan/facts.ts). */
  wanted: string[];
}

/**
 * Plans `stages` (a topological order closed under `needs`). A stage whose upstream runs is planned
 * as `run` with an `upstream` reason: execution rechecks it against the upstream's new outputs.
 */
export function plan(pipeline: Pipeline, stages: readonly string[], facts: PlanFacts, options: PlanOptions = {}): Plan {
  const outputs = new Map<string, string | undefined>();
  const plans: StagePlan[] = [];
  const wanted = new Set<string>();
  for (const name of stages) {
    const d = decideStage(pipeline, name, facts, outputs, options);
    for (const k of d.wanted) wanted.add(k);
    plans.push(d.plan);
    outputs.set(name, d.plan.action === 'cached' ? d.plan.stored.manifest.outputsDigest : undefined);
  }
  return { stages: plans, wanted: [...wanted] };
}
