// Computing a stage of a kind here: its run() writes into a fresh tmp dir (with a resume dir kept
// across attempts), then its outputs are adopted into the store and its manifest written.
import { mkdir, readdir } from 'node:fs/promises';
import type { ProgressReporter } from '../../contract.js';
import { StageError } from '../../errors.js';
import { kindOf } from '../../plan/facts.js';
import type { Manifest } from '../../store/manifest.js';
import { forceRemove } from '../../store/store.js';
import { adoptTree } from '../commit.js';
import { stageContext, type Upstream } from '../context.js';
import { diskFullInKindStage, failedForSpace } from '../disk-full.js';
import type { Execution } from '../execution.js';
import { manifestOf } from './manifest-of.js';
import { producing, type StageRequest } from './result-source.js';

export async function computeKind(stage: StageRequest, x: Execution, signal: AbortSignal): Promise<Manifest> {
  const { name } = stage;
  const { key, material } = producing(stage);
  const { pipeline, store } = x;
  const spec = pipeline.stages.get(name)!;
  const kind = kindOf(x.env, spec);
  const started = Date.now();
  const outDir = await store.makeTmpDir(name);
  const resumeDir = store.resumeDir(name, key);
  await mkdir(resumeDir, { recursive: true });
  try {
    const upstreams: Upstream[] = [];
    for (const u of stage.ups) upstreams.push({ stage: u.stage, manifest: u.manifest!, view: await store.ensureView(u.manifest!) });
    const reused = new Map<string, string>();
    const ctx = stageContext({
      previous: await previousResult(x, name, spec.kind, key),
      reused,
      stage: name,
      params: spec.params,
      root: pipeline.root,
      upstreams,
      outDir,
      resumeDir,
      log: x.opts.ui.logger(name),
      progress: x.opts.ui.progress(name),
      signal,
      workers: await x.pools(),
      fingerprint: material.fingerprint ?? {},
      digestFile: async (path, stat) => x.env.statCache.digestFile(path, { signal, ...(stat ? { stat } : {}) }),
      runs: x.history,
    });
    await kind.run(ctx);
    const entries = (await readdir(outDir)).sort();
    const absent = kind.outputs.filter((o) => !o.optional && !entries.includes(o.name.replace(/\/$/, '')));
    if (absent.length)
      throw new StageError(`stage ${name}: declared output${absent.length > 1 ? 's' : ''} not written: ${absent.map((o) => o.name).join(', ')}`);
    const tree = await adoptTree(store.objects, outDir, signal, storingProgress(ctx.progress), reused);
    const m = manifestOf({ stage: name, kind: spec.kind, key, material, params: spec.params, entries, tree, started, runId: x.opts.runId, worker: x.producer });
    await store.rebuildView(m);
    await store.writeManifest(m);
    await forceRemove(resumeDir);
    return m;
  } catch (err) {
    throw failedForSpace(err) ? await diskFullInKindStage(err, name, outDir) : err;
  } finally {
    await forceRemove(outDir);
  }
}

/** The stage's latest result of the same kind under another key (a forced rerun computes afresh). */
async function previousResult(x: Execution, stage: string, kind: string, key: string): Promise<Upstream | undefined> {
  const ref = x.opts.refs.get(stage);
  if (!ref || ref.key === key) return undefined;
  const m = await x.store.readManifest(ref.key);
  if (!m || m.kind !== kind) return undefined;
  return { stage, manifest: m, view: await x.store.ensureView(m) };
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
