// Gathering the facts a plan is made of (the only I/O of planning): each stage's own key inputs
// (deps through the stat cache, kind version, cacheParams, fingerprint), the refs, and for the keys
// the plan asks about, the manifest plus which objects and workspace outs are present.
import { resolve } from 'node:path';
import type { FingerprintEnv, StageKind } from '../contract.js';
import type { Manifest } from '../store/manifest.js';
import type { Pipeline, StageSpec } from '../config/pipeline.js';
import {
  decideStage,
  plan,
  type Plan,
  type PlanFacts,
  type PlanOptions,
  type StageFacts,
  type StagePlan,
  type StoredResult,
  type UpstreamOutputs,
} from './plan.js';
import type { StatCache } from '../store/stat-cache.js';
import type { Ref, Store } from '../store/store.js';
import { errorMessage, isErrno, listFiles, trimSlash } from '../store/fs-tree.js';
import { UnsupportedEntryError } from '../errors.js';

export interface FactsEnv {
  pipeline: Pipeline;
  store: Store;
  statCache: StatCache;
  kinds: ReadonlyMap<string, StageKind>;
  signal: AbortSignal;
}

/** PlanFacts whose `stored` map fills up as keys are looked up. */
export interface MutablePlanFacts extends PlanFacts {
  stages: Map<string, StageFacts>;
  refs: Map<string, string>;
  stored: Map<string, StoredResult | null>;
}

export function kindOf(env: Pick<FactsEnv, 'kinds'>, spec: StageSpec): StageKind {
  const kind = env.kinds.get(spec.kind);
  if (!kind) throw new Error(`stage ${spec.name}: unknown kind ${spec.kind}`);
  return kind;
}

/** Normalized outs of a cmd stage. */
export function outsOf(spec: StageSpec): string[] {
  return spec.outs.map(trimSlash);
}

/**
 * A cmd stage's own deps: those not inside another stage's outs. Deps produced upstream are
 * covered by that stage's outputs digest in the key, and may not be in the workspace yet.
 */
export function ownDeps(pipeline: Pipeline, spec: StageSpec): string[] {
  const producers = producersOf(pipeline);
  return spec.deps.map(trimSlash).filter((d) => !ancestorsOf(d).some((p) => producers.get(p)?.some((s) => s !== spec.name)));
}

/** Normalized out → stages declaring it, per pipeline (built once: planning stays linear in stages). */
const producerIndex = new WeakMap<Pipeline, Map<string, string[]>>();

function producersOf(pipeline: Pipeline): Map<string, string[]> {
  let index = producerIndex.get(pipeline);
  if (!index) {
    index = new Map();
    for (const stage of pipeline.stages.values()) for (const o of outsOf(stage)) index.set(o, [...(index.get(o) ?? []), stage.name]);
    producerIndex.set(pipeline, index);
  }
  return index;
}

/** `a/b/c` → [`a/b/c`, `a/b`, `a`]: every path a file at `p` lies within. */
function ancestorsOf(p: string): string[] {
  const out = [p];
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) out.push(p.slice(0, i));
  return out;
}

export function fingerprintEnv(env: FactsEnv): FingerprintEnv {
  return {
    root: env.pipeline.root,
    digestPath: async (p) => {
      const d = await env.statCache.digestPath(resolve(env.pipeline.root, p), env.signal);
      if (d === undefined) throw new Error(`${p}: no such file or directory`);
      return d;
    },
    latestKey: async (name) => (await env.store.readRefs()).get(name)?.key,
    signal: env.signal,
  };
}

async function stageFacts(env: FactsEnv, spec: StageSpec): Promise<StageFacts> {
  if (spec.kind === 'cmd') {
    const deps: Record<string, string | null> = {};
    for (const d of ownDeps(env.pipeline, spec)) deps[d] = (await env.statCache.digestPath(resolve(env.pipeline.root, d), env.signal)) ?? null;
    return { kind: 'cmd', cmd: spec.cmd ?? '', outs: outsOf(spec), deps, keyParams: spec.params };
  }
  const kind = kindOf(env, spec);
  const facts: StageFacts = { kind: kind.name, version: kind.version, keyParams: kind.cacheParams?.(spec.params) ?? spec.params };
  if (kind.fingerprint) {
    try {
      const fingerprint = await kind.fingerprint(spec.params, fingerprintEnv(env));
      if (fingerprint !== undefined) facts.fingerprint = fingerprint;
    } catch (err) {
      if (env.signal.aborted) throw err;
      facts.fingerprintError = errorMessage(err);
    }
  }
  return facts;
}

/** Facts for `stages`, with the store records of their refs preloaded. */
export async function gatherFacts(env: FactsEnv, stages: readonly string[], storeRefs?: ReadonlyMap<string, Ref>): Promise<MutablePlanFacts> {
  storeRefs ??= await env.store.readRefs();
  const refs = new Map<string, string>();
  for (const [stage, ref] of storeRefs) refs.set(stage, ref.key);
  const facts: MutablePlanFacts = { stages: new Map(), refs, stored: new Map() };
  const specs = stages.map((n) => env.pipeline.stages.get(n)!);
  const all = await Promise.all(specs.map((s) => stageFacts(env, s)));
  specs.forEach((s, i) => facts.stages.set(s.name, all[i]!));
  await loadKeys(
    env,
    facts,
    stages.map((n) => refs.get(n)).filter((k): k is string => k !== undefined),
  );
  return facts;
}

export async function loadKeys(env: FactsEnv, facts: MutablePlanFacts, keys: readonly string[]): Promise<void> {
  const todo = [...new Set(keys)].filter((k) => !facts.stored.has(k));
  const results = await Promise.all(todo.map((k) => loadStored(env, k)));
  todo.forEach((k, i) => facts.stored.set(k, results[i]!));
}

/** What the store holds for `key`: its manifest, which objects are gone, which workspace outs differ. */
export async function loadStored(env: Pick<FactsEnv, 'pipeline' | 'store' | 'statCache' | 'signal'>, key: string): Promise<StoredResult | null> {
  const manifest = await env.store.readManifest(key);
  if (!manifest) return null;
  const byDigest = new Map<string, string[]>();
  for (const [path, f] of Object.entries(manifest.files)) byDigest.set(f.digest, [...(byDigest.get(f.digest) ?? []), path]);
  const missingObjects: string[] = [];
  await Promise.all(
    [...byDigest].map(async ([digest, paths]) => {
      if (!(await env.store.objects.has(digest))) missingObjects.push(...paths);
    }),
  );
  missingObjects.sort();
  const workspaceMissing: string[] = [];
  if (manifest.kind === 'cmd') {
    for (const out of manifest.entries) if (!(await workspaceOutMatches(env, manifest.files, out))) workspaceMissing.push(out);
  }
  return { manifest, missingObjects, workspaceMissing };
}

/** Whether the workspace copy of a cmd out holds exactly the committed files (stat cache first, hash only if needed). */
async function workspaceOutMatches(env: Pick<FactsEnv, 'pipeline' | 'statCache' | 'signal'>, files: Manifest['files'], out: string): Promise<boolean> {
  let actual;
  try {
    actual = await listFiles(env.pipeline.root, out);
  } catch (err) {
    if (isErrno(err, 'ENOTDIR') || err instanceof UnsupportedEntryError) return false;
    throw err;
  }
  if (!actual) return false;
  const expected = Object.entries(files).filter(([p]) => p === out || p.startsWith(out + '/'));
  if (actual.length !== expected.length) return false;
  const want = new Map(expected);
  for (const f of actual) {
    const e = want.get(f.rel);
    if (!e || e.size !== Number(f.stat.size)) return false;
  }
  for (const f of actual) {
    const { digest } = await env.statCache.digestFile(f.abs, { signal: env.signal, stat: f.stat });
    if (digest !== want.get(f.rel)!.digest) return false;
  }
  return true;
}

/** Plans `stages`, loading the store records the plan asks for until it has all it needs. */
export async function resolvePlan(env: FactsEnv, facts: MutablePlanFacts, stages: readonly string[], options: PlanOptions = {}): Promise<Plan> {
  for (;;) {
    const p = plan(env.pipeline, stages, facts, options);
    if (p.wanted.length === 0) return p;
    await loadKeys(env, facts, p.wanted);
  }
}

/** Decides one stage against its upstreams' actual outputs (during execution). */
export async function resolveStage(
  env: FactsEnv,
  facts: MutablePlanFacts,
  name: string,
  upstream: UpstreamOutputs,
  options: PlanOptions = {},
): Promise<StagePlan> {
  for (;;) {
    const d = decideStage(env.pipeline, name, facts, upstream, options);
    if (d.wanted.length === 0) return d.plan;
    await loadKeys(env, facts, d.wanted);
  }
}
