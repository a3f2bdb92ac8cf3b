// Runs and sweep experiments side by side (`pipeline exp show`, like DVC's `exp show` or MLflow's
// runs table): the params each ran with, from its run record, and the metrics of the results it
// made or reused (every stage result holding a metrics.json: evaluate stages, and cmd stages that
// write one). Reads only.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { canonicalJson } from '../store/hash.js';
import type { Manifest } from '../store/manifest.js';
import type { EffectiveParams, RunRecord } from '../store/runs.js';
import type { Store } from '../store/store.js';

const METRICS_FILE = 'metrics.json';

/** stage → metric path (dotted) → value. */
export type StageMetrics = Map<string, Map<string, number>>;

export interface ExperimentRow {
  run: string;
  startedAt: string;
  outcome: RunRecord['outcome'];
  /** A sweep's experiment: the sweep's id, and its place in it. */
  sweep?: string;
  experiment?: { index: number; of: number };
  /** Param column → value (absent: the run did not record it, or did not run that stage). */
  params: Record<string, unknown>;
  /** Metric column (`stage.metric`) → value. */
  metrics: Record<string, number>;
}

export interface ExperimentTable {
  /** Param columns shown: those whose value differs between rows (all of them with `all`). */
  params: string[];
  metrics: string[];
  rows: ExperimentRow[];
  /** How many runs there were before `limit`. */
  total: number;
}

export interface TableOptions {
  /** Show every param, not only those that differ; and every top-level number of evaluate's metrics. */
  all?: boolean;
  /** A column (param or metric, full name or a unique last part such as `test_accuracy`): best first for metrics, ascending for params. */
  sort?: string;
  /** At most this many rows (0: all), newest first (or best first with `sort`). */
  limit?: number;
}

/** Every stage result of the run that holds a metrics.json: its numbers by dotted path (lists are not metrics). */
export async function runMetrics(
  store: Store,
  record: RunRecord,
  cache = new Map<string, Manifest | null>(),
): Promise<{ metrics: StageMetrics; kinds: Map<string, string> }> {
  const metrics: StageMetrics = new Map();
  const kinds = new Map<string, string>();
  for (const s of record.stages) {
    if (!s.key || (s.outcome !== 'ran' && s.outcome !== 'cached')) continue;
    if (!cache.has(s.key)) cache.set(s.key, await store.readManifest(s.key));
    const m = cache.get(s.key);
    const file = m?.files[METRICS_FILE];
    if (!m || !file) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(store.objects.path(file.digest), 'utf8'));
    } catch {
      continue; // gone (gc) or unreadable: verify's business, not a metric
    }
    const values = new Map<string, number>();
    flattenNumbers(parsed, '', values);
    metrics.set(s.stage, values);
    kinds.set(s.stage, m.kind);
  }
  return { metrics, kinds };
}

function flattenNumbers(value: unknown, prefix: string, into: Map<string, number>): void {
  if (typeof value === 'number' && Number.isFinite(value)) into.set(prefix, value);
  else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flattenNumbers(v, prefix ? `${prefix}.${k}` : k, into);
  }
}

/**
 * A run's params by column: `params.NAME` for the top-level params, `STAGE.PARAM` (dotted into
 * maps, e.g. `train.optimizer.lr`) for each stage's; a list is one value.
 */
export function paramColumns(effective: EffectiveParams | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!effective) return out;
  flattenParams(effective.params, 'params', out);
  for (const [stage, params] of Object.entries(effective.stages)) flattenParams(params, stage, out);
  return out;
}

function flattenParams(value: unknown, prefix: string, into: Record<string, unknown>): void {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) flattenParams(v, `${prefix}.${k}`, into);
  } else if (value !== undefined) into[prefix] = value;
}

/**
 * What a run's record says of a param column: its value, null when the run had that stage (or the
 * top-level params) without that param (say, --unset), undefined when it did not run that stage.
 */
function recordedValue(effective: EffectiveParams | undefined, columns: Record<string, unknown>, column: string): unknown {
  if (column in columns) return columns[column];
  const scope = column.slice(0, column.indexOf('.'));
  return effective && (scope === 'params' || scope in effective.stages) ? null : undefined;
}

/** The params that differ between two runs that both ran their stage, in column order (undefined: not set in that run). */
export function paramChanges(a: EffectiveParams, b: EffectiveParams): { param: string; a: unknown; b: unknown }[] {
  const pa = paramColumns(a);
  const pb = paramColumns(b);
  const names = [...new Set([...Object.keys(pa), ...Object.keys(pb)])];
  return names
    .filter((n) => {
      const [va, vb] = [recordedValue(a, pa, n), recordedValue(b, pb, n)];
      return va !== undefined && vb !== undefined && canonicalJson(va) !== canonicalJson(vb);
    })
    .map((n) => ({ param: n, a: pa[n], b: pb[n] }));
}

/** The columns of evaluate's metrics.json that are its results (the rest, such as `count`, with `all`). */
const EVALUATE_METRICS = ['test_accuracy', 'test_loss'];

export async function experimentTable(store: Store, options: TableOptions = {}): Promise<ExperimentTable> {
  const records = (await store.runs.list()).filter((r) => r.outcome !== 'skipped' && r.stages.length > 0);
  const manifests = new Map<string, Manifest | null>();
  const rows: ExperimentRow[] = [];
  const effective = new Map<ExperimentRow, EffectiveParams | undefined>();
  for (const r of records) {
    const { metrics, kinds } = await runMetrics(store, r, manifests);
    const shown: Record<string, number> = {};
    for (const [stage, values] of metrics) {
      for (const [name, v] of values) {
        if (name.includes('.')) continue; // nested numbers (per class, without_tta) are details, not columns
        if (!options.all && kinds.get(stage) === 'evaluate' && !EVALUATE_METRICS.includes(name)) continue;
        shown[`${stage}.${name}`] = v;
      }
    }
    const row: ExperimentRow = {
      run: r.id,
      startedAt: r.startedAt,
      outcome: r.outcome,
      ...(r.experiment ? { sweep: r.experiment.sweep, experiment: { index: r.experiment.index, of: r.experiment.of } } : {}),
      params: paramColumns(r.effective),
      metrics: shown,
    };
    rows.push(row);
    effective.set(row, r.effective);
  }
  // Newest first; a sweep's experiments (one start time) in their order.
  rows.sort((a, b) => (a.startedAt === b.startedAt ? (a.experiment?.index ?? 0) - (b.experiment?.index ?? 0) : a.startedAt < b.startedAt ? 1 : -1));

  const paramNames = columnsOf(rows.map((r) => r.params));
  const metricNames = columnsOf(rows.map((r) => r.metrics));
  const params = options.all ? paramNames : paramNames.filter((n) => differs(rows.map((r) => recordedValue(effective.get(r), r.params, n))));
  if (options.sort) sortRows(rows, options.sort, paramNames, metricNames);
  const limited = options.limit ? rows.slice(0, options.limit) : rows;
  return { params, metrics: metricNames, rows: limited, total: rows.length };
}

/** Column names in first-seen order. */
function columnsOf(maps: readonly Record<string, unknown>[]): string[] {
  const names = new Set<string>();
  for (const m of maps) for (const k of Object.keys(m)) names.add(k);
  return [...names];
}

/** Two rows that recorded the column hold different values (a run that did not run its stage does not count). */
function differs(values: readonly unknown[]): boolean {
  return new Set(values.filter((v) => v !== undefined).map((v) => canonicalJson(v))).size > 1;
}

/** Metrics whose lower values are better. */
const LOWER_IS_BETTER = /loss|error|mse|mae|rmse|perplexity/i;

function sortRows(rows: ExperimentRow[], sort: string, params: readonly string[], metrics: readonly string[]): void {
  const column = resolveColumn(sort, params, metrics);
  const isMetric = metrics.includes(column);
  const sign = isMetric && !LOWER_IS_BETTER.test(column) ? -1 : 1;
  const value = (r: ExperimentRow): unknown => (isMetric ? r.metrics[column] : r.params[column]);
  rows.sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    if (va === undefined || vb === undefined) return va === vb ? 0 : va === undefined ? 1 : -1; // missing last
    if (typeof va === 'number' && typeof vb === 'number') return sign * (va - vb);
    return sign * String(va).localeCompare(String(vb));
  });
}

/** `--sort` names a column in full, or by its last part when only one column ends so. */
function resolveColumn(name: string, params: readonly string[], metrics: readonly string[]): string {
  const all = [...metrics, ...params];
  if (all.includes(name)) return name;
  const matches = all.filter((c) => c.endsWith(`.${name}`));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new UsageError(`--sort ${name} names ${matches.length} columns: ${matches.join(', ')}; give one in full`);
  const known = metrics.length ? ` (metrics: ${metrics.join(', ')})` : ' (no run has metrics yet)';
  throw new UsageError(`--sort ${name}: no such metric or param${known}`);
}
