// A sweep's experiments share every stage whose key they have in common: the first to reach a key
// produces it, the others wait for that result and take it as cached.
import { StageError } from '../../errors.js';
import type { ResultSource } from './result-source.js';
import { producing } from './result-source.js';

export const siblingSource: ResultSource = {
  name: 'sibling experiment',
  produces: false,
  async tryProvide(stage, x) {
    const inflight = x.opts.sweep?.inflight;
    if (!inflight) return undefined;
    const { key } = producing(stage);
    const sibling = inflight.get(key);
    if (!sibling) {
      // This experiment produces it: the others wait on this stage's result.
      inflight.set(key, stage.result);
      return undefined;
    }
    const other = await sibling;
    if (!other.manifest || (other.outcome !== 'cached' && other.outcome !== 'ran'))
      throw new StageError(`stage ${stage.name}: ${other.outcome} in another experiment of this sweep`);
    const m = other.manifest;
    await x.adopt(stage.name, m);
    return {
      stage: stage.name,
      outcome: 'cached',
      durationMs: Date.now() - stage.t0,
      key: m.key,
      manifest: m,
      reason: 'produced once for the whole sweep',
      worker: other.worker,
    };
  },
};
