// Runs a pipeline selection: each stage starts when its needs are done (p-limit caps how many run
// at once), is decided against its upstreams' actual outputs (an upstream that reran with the same
// outputs leaves it cached, as in DVC), then restores, runs and commits. Without keepGoing the
// first failure aborts the running stages and nothing else starts.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger, ProgressReporter } from '../contract.js';
import { AbortedError, CorruptObjectError, DiskFullError, StageError } from '../errors.js';
import { adoptTree, ingestWorkspaceOuts } from './commit.js';
import { runCmd } from './cmd-stage.js';
import { commandGroups } from './command-groups.js';
import { ownedOutPath } from './owned-paths.js';
import { diskFullInCommandStage, diskFullInKindStage, failedForSpace } from './disk-full.js';
import { reusedSourceHint } from './failure-hint.js';
import { SharedPools, stageContext, type Upstream } from './context.js';
import { kindOf, outsOf, resolveStage, type FactsEnv, type MutablePlanFacts } from '../plan/facts.js';
import { forceRemove, type Ref } from '../store/store.js';
import { errorMessage, isErrno } from '../store/fs-tree.js';
import { filesUnder, MANIFEST_FORMAT, outputsDigestOf, type Manifest } from '../store/manifest.js';
import { describeReasons } from '../plan/reasons.js';
import type { StageOutcomeKind } from '../store/runs.js';
import type { StagePlan } from '../plan/plan.js';
import type { KeyMaterial } from '../store/cache-key.js';
import type { RunStageSummary } from '../contract.js';
import { runHistory } from './run-history.js';

export interface StageReport {
  stage: string;
  outcome: StageOutcomeKind;
  durationMs: number;
  key?: string;
  /** Why it ran, or why it was skipped / aborted. */
  reason?: string;
  error?: unknown;
  /** Workspace outs restored from the store. */
  restored?: string[];
  manifest?: Manifest;
  /** The result was downloaded from the remote cache instead of computed. */
  pulled?: boolean;
  /** The queue worker that computed it (`run --executor queue`). */
  worker?: string;
  /** A failed stage: which reused upstream results it read (engine/run/failure-hint.ts). */
  hint?: string;
}

/**
 * Computes a stage somewhere else (a queue worker), which pushes the result to the remote.
 * `computed` false: the worker found the result already made (its manifest says by whom).
 */
export type StageDispatch = (
  stage: string,
  key: string,
  upstreams: readonly Manifest[],
  signal: AbortSignal,
) => Promise<{ worker: string; computed?: boolean }>;

/** The remote artifact cache as execution sees it (engine/remote/cache.ts). */
export interface RemoteLookup {
  /** Downloads and commits the result for `key` if the remote has it; null on a miss or a remote failure. */
  fetch(stage: string, key: string, signal: AbortSignal): Promise<Manifest | null>;
}

export interface StageUi {
  logger(stage: string): Logger;
  progress(stage: string): ProgressReporter;
}

export interface ExecuteOptions {
  env: FactsEnv;
  facts: MutablePlanFacts;
  /** Stages to run, topologically ordered and closed under `needs`. */
  stages: readonly string[];
  force: ReadonlySet<string>;
  jobs: number;
  keepGoing: boolean;
  /** External stop (Ctrl-C, lost lock). */
  signal: AbortSignal;
  runId: string;
  /** When the run started and its command line (what stages see of the current run). */
  run?: { startedAt: string; command: readonly string[]; scheduled?: string; experiment?: string };
  /** The store's refs; updated (and written) as stages finish. */
  refs: Map<string, Ref>;
  ui: StageUi;
  /** Asked on a local miss before a stage is computed (not for --force). */
  remote?: RemoteLookup;
  onStageStart?(stage: string): void;
  onStageDone?(report: StageReport): void;
  /** `run --executor queue`: stages are computed by workers, then pulled from the remote (which must be set). */
  dispatch?: StageDispatch;
  /** A worker's run: only these stages may be computed; the others must come from the store or the remote. */
  computeOnly?: ReadonlySet<string>;
  /** A worker's run: the key the coordinator computed; arriving at another one here is an error. */
  expectKeys?: ReadonlyMap<string, string>;
  /** A worker's run: the worker's name, recorded in the manifests of the results it computes. */
  producer?: string;
  /** A sweep: results being produced by the other experiments, by key (each is produced once). */
  inflight?: Map<string, Promise<StageReport>>;
  /** A sweep: one limit on running stages shared by all experiments (else `jobs`). */
  limit?: LimitFunction;
  /** A sweep: cmd stages of one name run one at a time (they write the same workspace outs). */
  exclusive?: (stage: string) => LimitFunction;
  /** A sweep's experiment: leave stage links, refs and workspace outs alone (results stay in the store). */
  experiment?: boolean;
}

const OK: ReadonlySet<StageOutcomeKind> = new Set(['cached', 'ran']);

export async function execute(opts: ExecuteOptions): Promise<StageReport[]> {
  const { env } = opts;
  const { pipeline, store } = env;
  const run = new AbortController();
  const stopRun = () => run.abort(opts.signal.reason);
  if (opts.signal.aborted) stopRun();
  else opts.signal.addEventListener('abort', stopRun, { once: true });
  const limit = opts.limit ?? pLimit(Math.max(1, opts.jobs));
  let pools: Promise<SharedPools> | undefined;
  const getPools = () => (pools ??= SharedPools.create());
  const stageEnv: FactsEnv = { ...env, signal: run.signal };
  const finished: RunStageSummary[] = [];
  const history = runHistory(
    store,
    {
      id: opts.runId,
      startedAt: opts.run?.startedAt ?? new Date().toISOString(),
      command: opts.run?.command ?? [],
      ...(opts.run?.scheduled ? { scheduled: opts.run.scheduled } : {}),
      ...(opts.run?.experiment ? { experiment: opts.run.experiment } : {}),
    },
    () => finished,
  );

  const finishRef = async (stage: string, m: Manifest) => {
    await store.ensureView(m);
    if (opts.experiment) return;
    await store.linkStage(stage, m.key);
    if (opts.refs.get(stage)?.key !== m.key) {
      opts.refs.set(stage, { key: m.key, at: new Date().toISOString() });
      await store.writeRefs(opts.refs);
    }
  };

  /** The stage's latest result of the same kind under another key (a forced rerun computes afresh). */
  const previousResult = async (stage: string, kind: string, key: string): Promise<Upstream | undefined> => {
    const ref = opts.refs.get(stage);
    if (!ref || ref.key === key) return undefined;
    const m = await store.readManifest(ref.key);
    if (!m || m.kind !== kind) return undefined;
    return { stage, manifest: m, view: await store.ensureView(m) };
  };

  const runKind = async (name: string, key: string, material: KeyMaterial, ups: StageReport[]): Promise<Manifest> => {
    const spec = pipeline.stages.get(name)!;
    const kind = kindOf(env, spec);
    const started = Date.now();
    const outDir = await store.makeTmpDir(name);
    const resumeDir = store.resumeDir(name, key);
    await mkdir(resumeDir, { recursive: true });
    try {
      const upstreams: Upstream[] = [];
      for (const u of ups) upstreams.push({ stage: u.stage, manifest: u.manifest!, view: await store.ensureView(u.manifest!) });
      const reused = new Map<string, string>();
      const ctx = stageContext({
        previous: await previousResult(name, spec.kind, key),
        reused,
        stage: name,
        params: spec.params,
        root: pipeline.root,
        upstreams,
        outDir,
        resumeDir,
        log: opts.ui.logger(name),
        progress: opts.ui.progress(name),
        signal: run.signal,
        workers: await getPools(),
        fingerprint: material.fingerprint ?? {},
        digestFile: async (path) => env.statCache.digestFile(path, { signal: run.signal }),
        runs: history,
      });
      await kind.run(ctx);
      const entries = (await readdir(outDir)).sort();
      const absent = kind.outputs.filter((o) => !o.optional && !entries.includes(o.name.replace(/\/$/, '')));
      if (absent.length)
        throw new StageError(`stage ${name}: declared output${absent.length > 1 ? 's' : ''} not written: ${absent.map((o) => o.name).join(', ')}`);
      const tree = await adoptTree(store.objects, outDir, run.signal, storingProgress(ctx.progress), reused);
      const m = manifestOf(name, spec.kind, key, material, spec.params, entries, tree, started, opts.runId, opts.producer);
      await store.rebuildView(m);
      await store.writeManifest(m);
      await forceRemove(resumeDir);
      return m;
    } catch (err) {
      throw failedForSpace(err) ? await diskFullInKindStage(err, name, outDir) : err;
    } finally {
      await forceRemove(outDir);
    }
  };

  const runShell = async (name: string, key: string, material: KeyMaterial): Promise<Manifest> => {
    const spec = pipeline.stages.get(name)!;
    const started = Date.now();
    const outs = outsOf(spec);
    let committing = false;
    try {
      await runCmd({
        stage: name,
        cmd: spec.cmdExec ?? spec.cmd ?? '',
        env: spec.cmdEnv,
        root: pipeline.root,
        outs,
        signal: run.signal,
        log: opts.ui.logger(name),
        groups: commandGroups(store.commandsDir),
      });
      committing = true;
      const tree = await ingestWorkspaceOuts(store.objects, env.statCache, pipeline.root, outs, run.signal);
      if (tree.missing.length) throw new StageError(`stage ${name}: command succeeded but did not create ${tree.missing.join(', ')}`);
      const m = manifestOf(name, 'cmd', key, material, spec.params, outs, tree, started, opts.runId, opts.producer);
      await store.rebuildView(m);
      await store.writeManifest(m);
      return m;
    } catch (err) {
      throw failedForSpace(err) ? await diskFullInCommandStage(err, name, pipeline.root, outs, committing) : err;
    }
  };

  /** Puts a cmd stage's committed outs back into the workspace (copies, writable). */
  const restore = async (m: Manifest, outs: string[]) => {
    for (const out of outs) {
      const abs = await ownedOutPath(pipeline.root, out, m.stage);
      await rm(abs, { recursive: true, force: true });
      // Paths below the out are inside what we just made, so no link can redirect them.
      const under = (p: string) => join(abs, relative(out, p));
      try {
        for (const d of m.dirs) if (d === out || d.startsWith(out + '/')) await mkdir(under(d), { recursive: true });
        for (const [rel, f] of filesUnder(m, out)) {
          const dest = under(rel);
          await mkdir(dirname(dest), { recursive: true });
          await store.objects.copyOut(f.digest, dest, run.signal);
          await env.statCache.remember(dest, f.digest);
        }
      } catch (err) {
        if (!failedForSpace(err)) throw err;
        // A half-restored out is worse than none: the next run restores it whole.
        await rm(abs, { recursive: true, force: true });
        throw new DiskFullError(
          `stage ${m.stage}: no space left on device while restoring ${out} from the store (the disk holding ${pipeline.root} is full); removed the partial copy`,
          { cause: err },
        );
      }
    }
  };

  /**
   * Objects of a stored result whose content is not what its manifest says (or that are gone): a
   * stat when the stat cache vouches for the object, else a hash (recorded, so only once).
   */
  const unsoundObjects = async (m: Manifest): Promise<string[]> => {
    const bad: string[] = [];
    for (const digest of new Set(Object.values(m.files).map((f) => f.digest))) {
      try {
        const actual = await env.statCache.digestFile(store.objects.path(digest), { trustRecent: true, signal: run.signal });
        if (actual.digest !== digest) bad.push(digest);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
        bad.push(digest);
      }
    }
    return bad;
  };

  /** Remote cache hook: a result another machine computed, committed like a local one. */
  const fromRemote = async (name: string, key: string, t0: number): Promise<StageReport | undefined> => {
    const m = await opts.remote?.fetch(name, key, run.signal);
    if (!m) return undefined;
    opts.facts.stored.set(m.key, { manifest: m, missingObjects: [], workspaceMissing: [] });
    const spec = pipeline.stages.get(name)!;
    const outs = spec.kind === 'cmd' && !opts.experiment ? outsOf(spec) : [];
    if (outs.length) await restore(m, outs);
    await finishRef(name, m);
    return {
      stage: name,
      outcome: 'cached',
      durationMs: Date.now() - t0,
      key: m.key,
      manifest: m,
      reason: 'pulled from the remote',
      restored: outs.length ? outs : undefined,
      pulled: true,
    };
  };

  /** A result another experiment of the sweep produced (or is producing) for the same key. */
  const fromSibling = async (name: string, other: StageReport, t0: number): Promise<StageReport> => {
    if (!other.manifest || !OK.has(other.outcome)) throw new StageError(`stage ${name}: ${other.outcome} in another experiment of this sweep`);
    const m = other.manifest;
    opts.facts.stored.set(m.key, { manifest: m, missingObjects: [], workspaceMissing: [] });
    await finishRef(name, m);
    return {
      stage: name,
      outcome: 'cached',
      durationMs: Date.now() - t0,
      key: m.key,
      manifest: m,
      reason: 'produced once for the whole sweep',
      worker: other.worker,
    };
  };

  /** A local miss: the remote's copy, else computed here or by a queue worker. */
  const produce = async (name: string, key: string, material: KeyMaterial, ups: StageReport[], t0: number, reason: string): Promise<StageReport> => {
    const pulled = opts.force.has(name) ? undefined : await fromRemote(name, key, t0);
    if (pulled) return pulled;
    if (opts.computeOnly && !opts.computeOnly.has(name)) {
      throw new StageError(
        `stage ${name}: its result ${key.slice(0, 12)} is neither in this store nor on the remote (a coordinator pushes a stage's inputs before queueing it)`,
      );
    }
    if (opts.dispatch) {
      const { worker, computed } = await opts.dispatch(
        name,
        key,
        ups.map((u) => u.manifest!),
        run.signal,
      );
      // The worker pushed it: committed here like any remote result, but this run computed it.
      const pulledBack = await fromRemote(name, key, t0);
      if (!pulledBack) throw new StageError(`stage ${name}: worker ${worker} finished it, but its result could not be pulled from the remote`);
      const { pulled: _pulled, ...result } = pulledBack;
      if (computed !== false) return { ...result, outcome: 'ran', reason, worker };
      // The worker found it made (say, by a worker cut off after it pushed): credit who computed it.
      const by = pulledBack.manifest?.worker?.replace(/\p{Cc}/gu, '?').slice(0, 200);
      return by ? { ...result, outcome: 'ran', reason, worker: by } : pulledBack;
    }
    const spec = pipeline.stages.get(name)!;
    const compute = () => (spec.kind === 'cmd' ? runShell(name, key, material) : runKind(name, key, material, ups));
    const m = spec.kind === 'cmd' && opts.exclusive ? await opts.exclusive(name)(compute) : await compute();
    opts.facts.stored.set(m.key, { manifest: m, missingObjects: [], workspaceMissing: [] });
    await finishRef(name, m);
    return { stage: name, outcome: 'ran', durationMs: Date.now() - t0, key: m.key, manifest: m, reason };
  };

  const processStage = async (name: string, ups: StageReport[]): Promise<StageReport> => {
    if (run.signal.aborted) return { stage: name, outcome: 'skipped', durationMs: 0, reason: 'not started: run stopped' };
    const t0 = Date.now();
    opts.onStageStart?.(name);
    let decision: StagePlan | undefined;
    let producing = false;
    try {
      const upstream = new Map(ups.map((u) => [u.stage, u.manifest!.outputsDigest] as const));
      decision = await resolveStage(stageEnv, opts.facts, name, upstream, { force: opts.force });
      if (decision.action === 'cached') {
        const m = decision.stored.manifest;
        // Downstream stages read these objects (through views or restored copies): never a corrupt one.
        let bad = await unsoundObjects(m);
        if (bad.length === 0) {
          try {
            const toRestore = opts.experiment ? [] : decision.restore;
            if (toRestore.length) await restore(m, toRestore);
            // A commit interrupted between its view and its manifest can leave a view of other bytes.
            if ((await store.viewMismatches(m, false)).length) await store.rebuildView(m);
            await finishRef(name, m);
            const restored = toRestore.length ? toRestore : undefined;
            return { stage: name, outcome: 'cached', durationMs: Date.now() - t0, key: m.key, manifest: m, restored };
          } catch (err) {
            if (!(err instanceof CorruptObjectError)) throw err;
            bad = [err.digest];
          }
        }
        // Drop the bad objects and the view linking them; the stage runs again (output missing).
        for (const d of bad) await store.objects.remove(d);
        await store.removeView(m.key);
        const missing = Object.entries(m.files)
          .filter(([, f]) => bad.includes(f.digest))
          .map(([p]) => p);
        opts.facts.stored.set(m.key, { ...decision.stored, missingObjects: missing, corrupt: true });
        decision = await resolveStage(stageEnv, opts.facts, name, upstream, { force: opts.force });
        if (decision.action === 'cached') throw new StageError(`stage ${name}: stored outputs are corrupt and could not be recomputed`);
      }
      const reason = describeReasons(decision.reasons);
      const failed = decision.reasons.find((r) => r.type === 'fingerprint-failed');
      if (failed || !decision.key || !decision.material) throw new StageError(`stage ${name}: ${reason || 'cannot compute its cache key'}`);
      const { key, material } = decision;
      const expected = opts.expectKeys?.get(name);
      if (expected !== undefined && expected !== key) {
        throw new StageError(
          `stage ${name}: this checkout computes cache key ${key.slice(0, 12)} where the coordinator has ${expected.slice(0, 12)}: its code, pipeline file or params differ`,
        );
      }
      const sibling = opts.inflight?.get(key);
      if (sibling) return await fromSibling(name, await sibling, t0);
      producing = true;
      const produced = produce(name, key, material, ups, t0, reason);
      opts.inflight?.set(key, produced);
      return await produced;
    } catch (error) {
      const durationMs = Date.now() - t0;
      const reason = decision ? describeReasons(decision.reasons) : undefined;
      if (run.signal.aborted) return { stage: name, outcome: 'aborted', durationMs, key: decision?.key, reason, error };
      if (!opts.keepGoing) run.abort(new StageError(`stage ${name} failed`));
      // A kind's failure is often about the data it read; a command's is the command's to explain.
      const isSource = (stage: string) => pipeline.stages.get(stage)?.needs.length === 0;
      const hint = producing && pipeline.stages.get(name)!.kind !== 'cmd' ? reusedSourceHint(name, ups, isSource, error) : undefined;
      return { stage: name, outcome: 'failed', durationMs, key: decision?.key, reason, error: asStageError(name, error), ...(hint ? { hint } : {}) };
    }
  };

  const reports = new Map<string, Promise<StageReport>>();
  for (const name of opts.stages) {
    const spec = pipeline.stages.get(name)!;
    const needs = spec.needs.map((n) => {
      const p = reports.get(n);
      if (!p) throw new Error(`execute: ${name} needs ${n}, which is not scheduled before it`);
      return p;
    });
    reports.set(
      name,
      (async () => {
        const ups = await Promise.all(needs);
        const bad = ups.find((u) => !OK.has(u.outcome));
        const report = bad
          ? { stage: name, outcome: 'skipped' as const, durationMs: 0, reason: `upstream ${bad.stage} ${bad.outcome}` }
          : await limit(() => processStage(name, ups));
        finished.push({ stage: report.stage, outcome: report.outcome, key: report.key, durationMs: report.durationMs });
        opts.onStageDone?.(report);
        return report;
      })(),
    );
  }
  try {
    return await Promise.all(opts.stages.map((n) => reports.get(n)!));
  } finally {
    opts.signal.removeEventListener('abort', stopRun);
    if (pools) await (await pools).destroy();
  }
}

/** Progress of committing many output files (a fetched image folder); a handful go by silently. */
function storingProgress(progress: ProgressReporter): (done: number, total: number) => void {
  return (done, total) => {
    if (total < STORING_PROGRESS_MIN_FILES) return;
    if (done === 1) progress.start('store outputs', total, 'file');
    progress.update(done);
    if (done === total) progress.done();
  };
}

const STORING_PROGRESS_MIN_FILES = 500;

/** The error a failed stage is reported with: a StageError whose message names the stage. */
function asStageError(stage: string, err: unknown): unknown {
  if (err instanceof AbortedError) return err;
  const message = errorMessage(err);
  if (err instanceof StageError) {
    // A kind's own words (`image folders: missing test/ folder`) may not say which stage failed.
    if (namesStage(message, stage)) return err;
    const named = new StageError(`stage ${stage}: ${message}`, { cause: err });
    if (err.stack?.includes('\n')) named.stack = `${named.name}: ${named.message}${err.stack.slice(err.stack.indexOf('\n'))}`;
    return named;
  }
  return new StageError(message.includes(stage) ? message : `stage ${stage}: ${message}`, { cause: err });
}

function namesStage(message: string, stage: string): boolean {
  const escaped = stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[\\s'"])${escaped}(['":\\s]|$)`).test(message);
}

function manifestOf(
  stage: string,
  kind: string,
  key: string,
  material: KeyMaterial,
  params: Record<string, unknown>,
  entries: string[],
  tree: { files: Manifest['files']; dirs: string[] },
  started: number,
  runId: string,
  worker: string | undefined,
): Manifest {
  return {
    format: MANIFEST_FORMAT,
    key,
    stage,
    kind,
    material,
    params,
    entries,
    dirs: tree.dirs,
    files: tree.files,
    outputsDigest: outputsDigestOf(tree.files),
    createdAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    runId,
    ...(worker ? { worker } : {}),
  };
}
