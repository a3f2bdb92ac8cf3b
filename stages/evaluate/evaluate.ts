// `evaluate`: a train stage's model on normalize's test split — the notebook's "Test score" (loss)
// and "Test accuracy", plus per-class precision/recall/F1, the confusion matrix and the most
// confident mistakes, written to metrics.json and logged as a short table.
// The work lives in run.ts beside it (params in params.ts), loaded on demand (it pulls in TensorFlow.js).
import { defineStage } from '../../engine/contract.js';
import { resolveBackend } from '../../lib/tf/backend.js';
import { withEngineErrors } from '../lib-errors.js';
import { EvaluateParams } from './params.js';

export const evaluateStage = defineStage({
  name: 'evaluate',
  version: 1,
  description: "Test loss/accuracy, per-class precision/recall/F1, confusion matrix and confident mistakes of a train stage's model",
  inputs: 'a train stage (its model/; the one named by `model` when it needs several) and a normalize stage (the test split and the normalization)',
  params: EvaluateParams,
  outputs: [{ name: 'metrics.json', type: 'json', description: 'test loss and accuracy, per-class metrics, confusion matrix, mistakes' }],
  stageRefs: (params) => (params.model ? [params.model] : []),
  async fingerprint(params) {
    const backend = resolveBackend(params.backend);
    return { backend: backend.name, versions: backend.versions };
  },
  run: (ctx) => withEngineErrors(async () => (await import('./run.js')).runEvaluate(ctx)),
});
