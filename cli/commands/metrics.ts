// `pipeline metrics [--diff [RUN_A [RUN_B]]] [--json]`: every evaluate stage's metrics (numbers in
// its metrics.json) for the latest run, or for two runs side by side with the change and the params
// that differ, as `dvc metrics diff` / `dvc params diff`.
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import type { RunRecord } from '../../engine/store/runs.js';
import type { StageMetrics } from '../../engine/experiments/table.js';
import { openSession } from '../session.js';
import { findRun } from '../run-ref.js';
import { UsageError } from '../../engine/errors.js';
import { paramChanges, runMetrics } from '../../engine/experiments/table.js';

interface MetricsOptions {
  /** `--diff` alone is true. */
  diff?: string[] | true;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('metrics')
    .description("every evaluate stage's metrics for the latest run, or two runs side by side with their param changes (--diff)")
    .argument('[run]', 'run id, a unique prefix of it, or latest', 'latest')
    .option('--diff [runs...]', 'compare two runs: RUN_A RUN_B; RUN_A alone: against the latest run; none: the last two runs with metrics of the same stage')
    .option('--json', 'machine-readable output')
    .action(async (run: string, options: MetricsOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const records = await session.store.runs.list();
      const store = session.store;
      const hasMetrics = (r: RunRecord) => r.stages.some((s) => s.key && (s.outcome === 'ran' || s.outcome === 'cached'));
      const metricsOf = async (r: RunRecord) => (await runMetrics(store, r)).metrics;

      if (options.diff) {
        const given = options.diff === true ? [] : options.diff;
        if (given.length > 2) throw new UsageError('--diff takes at most two runs: --diff [RUN_A [RUN_B]]');
        const [a, b] = await diffPair(records, given, (t) => findRun(records, t, hasMetrics), metricsOf);
        // Params from the records (runs of older versions recorded none).
        const params = a.record.effective && b.record.effective ? paramChanges(a.record.effective, b.record.effective) : [];
        return printDiff(a, b, params, options.json ?? false);
      }

      // `latest`: the newest run that has metrics (a `pipeline run fetch` has none to show).
      const found = run === 'latest' ? await newestWithMetrics(records, metricsOf) : undefined;
      const record = found?.record ?? findRun(records, run, hasMetrics);
      const metrics = found?.metrics ?? (await metricsOf(record));
      if (options.json) {
        const obj = Object.fromEntries([...metrics].map(([stage, m]) => [stage, Object.fromEntries(m)]));
        process.stdout.write(JSON.stringify({ run: record.id, metrics: obj }, null, 2) + '\n');
        return;
      }
      if (metrics.size === 0) return void process.stdout.write(`no evaluate metrics in run ${record.id}\n`);
      process.stdout.write(`run ${record.id}\n`);
      printTable(
        ['stage', 'metric', 'value'],
        [...metrics].flatMap(([stage, m]) => [...m].map(([k, v]) => [stage, k, num(v)])),
      );
    });
}

interface Measured {
  record: RunRecord;
  metrics: StageMetrics;
}

/**
 * The two runs `--diff` compares. Two given: those. One: it against the newest run with metrics of
 * a stage it has. None: the newest run with metrics, against the newest run before it with metrics
 * of one of the same stages (comparable: a `run evaluate_aug` is not compared with a `run evaluate`).
 */
async function diffPair(
  records: readonly RunRecord[],
  given: string[],
  find: (text: string) => RunRecord,
  metricsOf: (r: RunRecord) => Promise<StageMetrics>,
): Promise<[Measured, Measured]> {
  const measured = async (record: RunRecord): Promise<Measured> => ({ record, metrics: await metricsOf(record) });
  if (given.length === 2) return [await measured(find(given[0]!)), await measured(find(given[1]!))];
  const comparable = (m: StageMetrics, n: StageMetrics) => [...m.keys()].some((stage) => n.has(stage));
  const newestFirst = [...records].reverse();
  let b: Measured | undefined;
  let a: Measured | undefined;
  if (given.length === 1) {
    a = await measured(find(given[0]!));
    for (const r of newestFirst) {
      if (r.id === a.record.id) continue;
      const m = await metricsOf(r);
      if (comparable(a.metrics, m)) {
        b = { record: r, metrics: m };
        break;
      }
    }
    if (!b) throw new UsageError(`no other run has metrics of the stages of run ${a.record.id} (pipeline runs lists them)`);
    // Older first, as `--diff A B` reads.
    return a.record.id < b.record.id ? [a, b] : [b, a];
  }
  for (const r of newestFirst) {
    const m = await metricsOf(r);
    if (m.size === 0) continue;
    if (!b) b = { record: r, metrics: m };
    else if (comparable(b.metrics, m)) {
      a = { record: r, metrics: m };
      break;
    }
  }
  if (!b) throw new UsageError('no run has metrics yet (pipeline run computes them)');
  if (!a) throw new UsageError(`only one run (${b.record.id}) has metrics of its stages: nothing to compare it with yet`);
  return [a, b];
}

interface ParamChange {
  param: string;
  a: unknown;
  b: unknown;
}

function printDiff(a: Measured, b: Measured, params: readonly ParamChange[], json: boolean): void {
  const rows = diffRows(a.metrics, b.metrics);
  if (json) {
    process.stdout.write(JSON.stringify({ a: a.record.id, b: b.record.id, metrics: rows, params }, null, 2) + '\n');
    return;
  }
  const ids = [a.record.id, b.record.id];
  if (rows.length === 0) process.stdout.write(`no evaluate metrics in runs ${ids[0]} and ${ids[1]}\n`);
  else
    printTable(
      ['stage', 'metric', ...ids, 'change'],
      rows.map((r) => [r.stage, r.metric, num(r.a), num(r.b), r.change === null ? '-' : signed(r.change)]),
    );
  if (!a.record.effective || !b.record.effective) {
    process.stdout.write(`\nparams: not recorded for run ${!a.record.effective ? ids[0] : ids[1]} (a run of an older version)\n`);
  } else if (params.length === 0) {
    process.stdout.write('\nparams: the same in both runs\n');
  } else {
    process.stdout.write('\n');
    printTable(
      ['param', ...ids],
      params.map((p) => [p.param, paramText(p.a), paramText(p.b)]),
    );
  }
}

const paramText = (v: unknown) => (v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v));

async function newestWithMetrics(records: readonly RunRecord[], metricsOf: (r: RunRecord) => Promise<StageMetrics>): Promise<Measured | undefined> {
  for (const record of [...records].reverse()) {
    const metrics = await metricsOf(record);
    if (metrics.size > 0) return { record, metrics };
  }
  return undefined;
}

interface DiffRow {
  stage: string;
  metric: string;
  a: number | null;
  b: number | null;
  change: number | null;
}

function diffRows(a: StageMetrics, b: StageMetrics): DiffRow[] {
  const rows: DiffRow[] = [];
  for (const stage of [...new Set([...a.keys(), ...b.keys()])]) {
    const ma = a.get(stage) ?? new Map<string, number>();
    const mb = b.get(stage) ?? new Map<string, number>();
    for (const metric of [...new Set([...ma.keys(), ...mb.keys()])]) {
      const va = ma.get(metric) ?? null;
      const vb = mb.get(metric) ?? null;
      rows.push({ stage, metric, a: va, b: vb, change: va !== null && vb !== null ? vb - va : null });
    }
  }
  return rows;
}

const num = (v: number | null) => (v === null ? '-' : Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6))));
const signed = (v: number) => (v > 0 ? '+' : '') + num(v);

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) process.stdout.write(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ') + '\n');
}
