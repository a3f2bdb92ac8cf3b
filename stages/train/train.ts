// `train`: fits a Keras-like layer stack on normalize's split with TensorFlow.js (any backend),
// optionally on an augment stage's copies and/or starting from another train stage's weights.
// Checkpoints after every epoch in ctx.resumeDir; an interrupted run resumes from the last one.
// The work lives in run.ts beside it (the params in params.ts), loaded on demand: this module stays
// tf-free so that reading pipeline.yaml (every command) does not pay for loading TensorFlow.js.
import { defineStage } from '../../engine/contract.js';
import { resolveBackend } from '../../lib/tf/backend.js';
import { resolveWorkers } from '../../lib/model/workers-param.js';
import { championFingerprint } from '../../lib/champion.js';
import { withEngineErrors } from '../lib-errors.js';
import { INIT_FROM_CURRENT, TrainParams, trainKeyParams } from './params.js';

export const trainStage = defineStage({
  name: 'train',
  version: 1,
  description: 'Train a Keras-like model with TensorFlow.js on a normalize split (optionally augmented copies / init_from)',
  inputs: 'a normalize stage (dataset, split, normalization); the train stage named by `init_from` and the augment stage named by `augmented` (implied needs)',
  params: TrainParams,
  outputs: [
    {
      name: 'model',
      type: 'dir',
      description: 'model.json + weights.bin (tf.loadLayersModel layout) and bundle.json (classes, input size, resize, normalization, training data, metrics)',
    },
    { name: 'history.json', type: 'json', description: 'per-epoch loss, acc, val_loss, val_acc, lr, seconds' },
    { name: 'summary.txt', type: 'file', description: 'Keras-style model.summary() text' },
    { name: 'train.json', type: 'json', description: 'backend, versions, time per epoch, final metrics' },
  ],
  stageRefs: (params) => [params.init_from === INIT_FROM_CURRENT ? undefined : params.init_from, params.augmented].filter((s): s is string => !!s),
  // The raw `workers` param ('auto') is not what changes results; the resolved count is (gradients
  // averaged per shard round differently, dropout masks differ), so it enters the key through the
  // fingerprint, and only when > 1: single-thread keys stay what they were before the param existed.
  cacheParams: trainKeyParams,
  // A warm start from the promoted model keys on that model's file digests, like any input.
  async fingerprint(params, env) {
    const backend = resolveBackend(params.backend);
    const workers = resolveWorkers(params.workers, backend.name);
    const champion = params.init_from === INIT_FROM_CURRENT ? { champion: (await championFingerprint(env.root))?.files ?? null } : {};
    return { backend: backend.name, versions: backend.versions, ...(workers > 1 ? { workers } : {}), ...champion };
  },
  run: (ctx) => withEngineErrors(async () => (await import('./run.js')).runTrain(ctx)),
});
