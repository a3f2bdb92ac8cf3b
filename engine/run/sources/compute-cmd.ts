// Computing a `cmd:` stage here: run its command (in its own process group), then ingest the outs
// it wrote in the workspace.
import { StageError } from '../../errors.js';
import { outsOf } from '../../plan/facts.js';
import type { Manifest } from '../../store/manifest.js';
import { runCmd } from '../cmd-stage.js';
import { commandGroups } from '../command-groups.js';
import { ingestWorkspaceOuts } from '../commit.js';
import { diskFullInCommandStage, failedForSpace } from '../disk-full.js';
import type { Execution } from '../execution.js';
import { manifestOf } from './manifest-of.js';
import { producing, type StageRequest } from './result-source.js';

export async function computeCommand(stage: StageRequest, x: Execution, signal: AbortSignal): Promise<Manifest> {
  const { name } = stage;
  const { key, material } = producing(stage);
  const { pipeline, store } = x;
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
      signal,
      log: x.opts.ui.logger(name),
      groups: commandGroups(store.commandsDir),
    });
    committing = true;
    const tree = await ingestWorkspaceOuts(store.objects, x.env.statCache, pipeline.root, outs, signal);
    if (tree.missing.length) throw new StageError(`stage ${name}: command succeeded but did not create ${tree.missing.join(', ')}`);
    const m = manifestOf({
      stage: name,
      kind: 'cmd',
      key,
      material,
      params: spec.params,
      entries: outs,
      tree,
      started,
      runId: x.opts.runId,
      worker: x.producer,
    });
    await store.rebuildView(m);
    await store.writeManifest(m);
    return m;
  } catch (err) {
    throw failedForSpace(err) ? await diskFullInCommandStage(err, name, pipeline.root, outs, committing) : err;
  }
}
