// `report`: one self-contained HTML page of the run (plus report.md and report.json) from the
// outputs of the stages it needs: run summary, data, model, learning curves joined across
// init_from, test results with confusion matrix and confident mistakes, phase-to-phase deltas,
// augmentation previews, history of earlier runs, model card and provenance.
// The work lives in run.ts beside it, loaded on demand (it pulls in Vega); the page itself is
// assembled and rendered by lib/report/.
import { z } from 'zod';
import { defineStage } from '../../engine/contract.js';

export const ReportParams = z.strictObject({
  title: z.string().min(1).default('Training report').describe('heading of the report'),
  mistakes: z.int().min(0).default(16).describe('most confident mistakes shown per evaluate stage (with their test images)'),
  history: z.int().min(0).default(10).describe('earlier runs shown in the History section, beyond the current one (read from the run records, not hashed)'),
  compare_with: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe(
      "evaluate stages of another pipeline sharing this store (e.g. the default pipeline's evaluate, evaluate_aug): their latest results are shown next to this pipeline's — in the headline, as per-class comparisons against this pipeline's evaluations, and dashed in the learning curves (with the train stages they evaluated). Their keys are part of the report's key, so it reruns when the other pipeline has a new result; a stage without a result yet is named in a warning and left out",
    ),
});
export type ReportParams = z.output<typeof ReportParams>;

export const reportStage = defineStage({
  name: 'report',
  version: 1,
  description: 'A self-contained HTML report (and Markdown, JSON) of the stages it needs: curves, metrics, confusion matrices, mistakes, history',
  inputs: 'the stages listed in its needs (any of fetch, decode, normalize, augment, train, evaluate); what it shows depends on what it is given',
  params: ReportParams,
  outputs: [
    { name: 'index.html', type: 'file', description: 'the report: one HTML file, charts and images inlined, opens offline' },
    { name: 'report.md', type: 'file', description: 'the same facts as Markdown' },
    { name: 'report.json', type: 'json', description: 'the assembled report data' },
  ],
  // The compared results are read from the store, so their keys enter the key: the report reruns
  // when the other pipeline produced a new result. Absent compare_with, nothing is added.
  async fingerprint(params, env) {
    if (!params.compare_with) return undefined;
    const compared: Record<string, string | null> = {};
    for (const name of params.compare_with) compared[name] = (await env.latestKey?.(name)) ?? null;
    return { compared };
  },
  run: async (ctx) => (await import('./run.js')).runReport(ctx),
});
