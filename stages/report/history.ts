// The report's History section: the evaluate metrics of earlier runs of this store (from the run
// records, read not hashed) and what changed between consecutive ones.
import type { KeyChange, RunHistory, RunSummary } from '../../engine/contract.js';
import type { History, HistoryRow } from '../../lib/report/model.js';
import type { MetricsRecord } from '../../lib/report/records.js';

type Metrics = HistoryRow['metrics'][string];

const COMMITTED = new Set(['ran', 'cached']);

/** Stage → key of the results a run ran or found cached, but for `ignore` (the report itself). */
function keysOf(run: RunSummary, ignore: ReadonlySet<string>): Map<string, string> {
  return new Map(run.stages.filter((s) => s.key && COMMITTED.has(s.outcome) && !ignore.has(s.stage)).map((s) => [s.stage, s.key!]));
}

/**
 * History rows, oldest first, ending with the current run: the last `limit` earlier runs that
 * have a result for at least one of `evaluateStages`. Stages in `ignore` (the report stage itself:
 * a new title is not news about the model) neither make rows differ nor appear in the changes.
 */
export async function collectHistory(
  runs: RunHistory,
  evaluateStages: readonly string[],
  current: { run: RunSummary; metrics: Record<string, { key: string; accuracy: number; loss: number }> },
  limit: number,
  ignore: ReadonlySet<string> = new Set(),
): Promise<History> {
  const earlier = await runs.earlier();
  const relevant = earlier.filter((r) => evaluateStages.some((s) => keysOf(r, ignore).has(s)));
  const shown = limit > 0 ? relevant.slice(-limit) : [];
  const metricCache = new Map<string, Promise<Metrics>>();
  const metricsOf = (key: string): Promise<Metrics> => {
    let m = metricCache.get(key);
    if (!m) {
      m = (async () => {
        const result = await runs.result(key);
        if (!result?.has('metrics.json')) return undefined;
        try {
          const r = await result.readJson<MetricsRecord>('metrics.json');
          return { key, accuracy: r.test_accuracy, loss: r.test_loss };
        } catch {
          return undefined;
        }
      })();
      metricCache.set(key, m);
    }
    return m;
  };

  const rows: HistoryRow[] = [];
  // A run need not run every stage (a subset, a failure, another pipeline of the store in
  // between): a row's changes compare each stage with its key in the latest row that had it,
  // else in the latest earlier run that had it; only a stage no earlier run had is new.
  let previous: Map<string, string> | undefined;
  let known: Map<string, string> | undefined;
  const ever = new Map<string, string>();
  const isShown = new Set(shown);
  for (const run of [...earlier, current.run]) {
    const keys = keysOf(run, ignore);
    const isCurrent = run === current.run;
    if (!isCurrent && !isShown.has(run)) {
      for (const [stage, key] of keys) ever.set(stage, key);
      continue;
    }
    const baseline = known && new Map([...ever, ...known]);
    for (const [stage, key] of keys) ever.set(stage, key);
    known = new Map([...(known ?? []), ...keys]);
    // A scheduled run that found everything cached repeats the row before it: fold it in.
    if (!isCurrent && previous && sameKeys(previous, keys)) {
      rows[rows.length - 1]!.repeated.push(run.id);
      continue;
    }
    const metrics: HistoryRow['metrics'] = {};
    for (const stage of evaluateStages) {
      const key = keys.get(stage);
      if (!key) continue;
      metrics[stage] = isCurrent && current.metrics[stage] ? current.metrics[stage] : await metricsOf(key);
    }
    rows.push({
      run_id: run.id,
      started_at: run.startedAt,
      outcome: isCurrent ? 'this run' : run.outcome,
      current: isCurrent,
      metrics,
      changes: baseline ? await describeChanges(runs, baseline, keys) : [],
      repeated: [],
      ...(run.scheduled ? { scheduled: run.scheduled } : {}),
      ...(run.experiment ? { experiment: run.experiment } : {}),
      ...(run.promotion ? { promotion: run.promotion } : {}),
    });
    previous = keys;
  }
  return {
    covers: rows.flatMap((r) => [r.run_id, ...r.repeated]),
    omitted: earlier.length - shown.length,
    rows,
  };
}

function sameKeys(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [stage, key] of a) if (b.get(stage) !== key) return false;
  return true;
}

/**
 * What changed between two runs, per stage. A stage whose only change is its inputs is listed by
 * name only when some other stage's own change (params, code, runtime) explains it: a new dataset
 * at fetch then reads as one line plus "downstream: decode, normalize, …", not ten input lines.
 */
export async function describeChanges(runs: RunHistory, before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): Promise<string[]> {
  const own: string[] = [];
  const notes: string[] = [];
  const inputsOnly: { stage: string; changes: KeyChange[] }[] = [];
  for (const [stage, key] of after) {
    const old = before.get(stage);
    if (old === undefined) {
      notes.push(`${stage}: new in this run`);
      continue;
    }
    if (old === key) continue;
    const changes = await runs.changes(old, key);
    const direct = changes.filter((c) => c.what !== 'inputs');
    if (direct.length) own.push(...direct.map((c) => `${stage}: ${c.text}`));
    else if (changes.length) inputsOnly.push({ stage, changes });
    else notes.push(`${stage}: result ${old.slice(0, 8)} → ${key.slice(0, 8)} (earlier result no longer in the store)`);
  }
  // Without a stage's own change to explain them, input changes are the news (e.g. a dep file edited).
  if (own.length === 0) return [...inputsOnly.flatMap((s) => s.changes.map((c) => `${s.stage}: ${c.text}`)), ...notes];
  if (inputsOnly.length) own.push(`downstream (inputs changed): ${inputsOnly.map((s) => s.stage).join(', ')}`);
  return [...own, ...notes];
}
