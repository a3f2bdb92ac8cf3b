// The last source: compute the stage here (a kind's run, or a `cmd:` command), commit its outputs
// and write its manifest.
import { withAttempts } from './attempts.js';
import { computeCommand } from './compute-cmd.js';
import { computeKind } from './compute-kind.js';
import { checkMayProduce, producing, type ResultSource } from './result-source.js';

export const computeSource: ResultSource = {
  name: 'compute here',
  produces: true,
  async tryProvide(stage, x) {
    checkMayProduce(stage, x);
    const { name } = stage;
    const { key, reason } = producing(stage);
    const spec = x.pipeline.stages.get(name)!;
    // `timeout:` and `retries:` apply to computing here, each attempt under its own signal.
    const compute = () => withAttempts(stage, x, (signal) => (spec.kind === 'cmd' ? computeCommand(stage, x, signal) : computeKind(stage, x, signal)));
    const exclusive = x.opts.sweep?.exclusive;
    const m = spec.kind === 'cmd' && exclusive ? await exclusive(name)(compute) : await compute();
    await x.adopt(name, m);
    return { stage: name, outcome: 'ran', durationMs: Date.now() - stage.t0, key: m.key, manifest: m, reason };
  },
};
