// The remote cache: a result another machine computed, downloaded and committed like a local one
// (not asked for a stage the run forces).
import type { StageReport } from '../execute-options.js';
import type { Execution } from '../execution.js';
import { outsOf } from '../../plan/facts.js';
import { producing, type ResultSource, type StageRequest } from './result-source.js';

export const remoteSource: ResultSource = {
  name: 'remote',
  produces: true,
  async tryProvide(stage, x) {
    if (x.opts.force.has(stage.name)) return undefined;
    return pullFromRemote(stage, x);
  },
};

/** The remote's result for the stage's key, committed here and (a cmd stage) restored to the workspace. */
export async function pullFromRemote(stage: StageRequest, x: Execution): Promise<StageReport | undefined> {
  const { name } = stage;
  const m = await x.opts.remote?.fetch(name, producing(stage).key, x.signal);
  if (!m) return undefined;
  const spec = x.pipeline.stages.get(name)!;
  const outs = spec.kind === 'cmd' && !x.experiment ? outsOf(spec) : [];
  x.opts.facts.stored.set(m.key, { manifest: m, missingObjects: [], workspaceMissing: [] });
  if (outs.length) await x.restore(m, outs);
  await x.finishRef(name, m);
  return {
    stage: name,
    outcome: 'cached',
    durationMs: Date.now() - stage.t0,
    key: m.key,
    manifest: m,
    reason: 'pulled from the remote',
    restored: outs.length ? outs : undefined,
    pulled: true,
  };
}
