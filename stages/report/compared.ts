// `compare_with`: evaluate stages of another pipeline that shares this store (the default
// pipeline's, next to pipelines/improved.yaml's). The plan named their latest keys (the report's
// fingerprint), so the report reads exactly those results; the train stages behind them are
// found through the run record that computed each evaluation, following init_from.
import type { RunHistory, RunSummary, StoredStageResult } from '../../engine/contract.js';
import type { TrainCurveInput } from '../../lib/report/assemble.js';
import type { HistoryRecord, MetricsRecord } from '../../lib/report/records.js';
import type { Source } from '../../lib/report/model.js';

export interface ComparedEvaluation {
  stage: string;
  metrics: MetricsRecord;
  source: Source;
  /** The run that computed it. */
  run_id: string;
  /** Whether that run's `data.stage` result is this report's (same test images, in the same order). */
  sameData: boolean;
}

export interface ComparedResults {
  evaluations: ComparedEvaluation[];
  /** The train stages behind them (with their init_from ancestors), for the learning curves. */
  trains: TrainCurveInput[];
  /** Why a named stage is not shown (no result in this store yet, collected by gc...). */
  missing: string[];
}

function sourceOf(r: StoredStageResult, file: string): Source {
  return { stage: r.stage, key: r.provenance.key, file };
}

/**
 * Reads the results `keys` names (stage → key, null when the store had none at plan time).
 * Stage names in `taken` (this pipeline's own) are not shown again.
 */
export async function readCompared(
  runs: RunHistory,
  keys: Readonly<Record<string, string | null>>,
  taken: ReadonlySet<string>,
  data?: { stage: string; key: string },
): Promise<ComparedResults> {
  const out: ComparedResults = { evaluations: [], trains: [], missing: [] };
  let earlier: RunSummary[] | undefined;
  const runById = async (id: string) => (earlier ??= await runs.earlier()).find((r) => r.id === id) ?? (runs.current().id === id ? runs.current() : undefined);
  const seenTrains = new Set<string>();

  for (const [stage, key] of Object.entries(keys)) {
    if (taken.has(stage)) {
      out.missing.push(`${stage}: a stage of this pipeline (list it in needs: instead)`);
      continue;
    }
    const result = key ? await runs.result(key) : undefined;
    if (!result || !result.has('metrics.json')) {
      out.missing.push(`${stage}: no result in this store${key ? ' any more' : ' yet'} (run the pipeline that defines it)`);
      continue;
    }
    const metrics = await result.readJson<MetricsRecord>('metrics.json');
    // The model it evaluated, and the models that one started from, as that run saw them.
    const run = await runById(result.provenance.runId);
    const keyIn = new Map(run?.stages.filter((s) => s.key).map((s) => [s.stage, s.key!]) ?? []);
    const sameData = data !== undefined && keyIn.get(data.stage) === data.key;
    out.evaluations.push({ stage, metrics, source: sourceOf(result, 'metrics.json'), run_id: result.provenance.runId, sameData });

    let model: string | undefined = metrics.model_stage;
    while (model && !seenTrains.has(model) && !taken.has(model)) {
      const trainKey = keyIn.get(model);
      const train = trainKey ? await runs.result(trainKey) : undefined;
      if (!train || !train.has('history.json')) break;
      seenTrains.add(model);
      const initFrom = typeof train.params.init_from === 'string' ? train.params.init_from : undefined;
      out.trains.push({
        stage: model,
        ...(initFrom ? { init_from: initFrom } : {}),
        history: await train.readJson<HistoryRecord>('history.json'),
        source: sourceOf(train, 'history.json'),
        compared: true,
      });
      model = initFrom;
    }
  }
  return out;
}
