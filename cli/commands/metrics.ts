// `pipeline metrics [--diff RUN_A RUN_B] [--json]`: every evaluate stage's metrics (numbers in its
// metrics.json) for the latest run, or for two runs side by side with the change, as `dvc metrics diff`.
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import type { RunRecord } from '../../engine/store/runs.js';
import type { Store } from '../../engine/store/store.js';

interface MetricsOptions {
  diff?: string[];
  json?: boolean;
}

/** stage → metric path → value. */
type StageMetrics = Map<string, Map<string, number>>;

export function register(program: Command): void {
  program
    .command('metrics')
    .description("every evaluate stage's metrics for the latest run, or two runs side by side (--diff)")
    .argument('[run]', 'run id, a unique prefix of it, or latest', 'latest')
    .option('--diff <runs...>', 'compare two runs: RUN_A RUN_B (ids, prefixes or latest)')
    .option('--json', 'machine-readable output')
    .action(async (run: string, options: MetricsOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const { openSession } = await import('../session.js');
      const { findRun } = await import('../run-ref.js');
      const { UsageError } = await import('../../engine/errors.js');
      const session = await openSession(globals.config);
      const records = await session.store.runs.list();
      const store = session.store;
      const hasMetrics = (r: RunRecord) => r.stages.some((s) => s.key && (s.outcome === 'ran' || s.outcome === 'cached'));

      if (options.diff) {
        if (options.diff.length !== 2) throw new UsageError('--diff takes two runs: --diff RUN_A RUN_B');
        const [a, b] = options.diff.map((t) => findRun(records, t, hasMetrics));
        const [ma, mb] = await Promise.all([metricsOf(store, a!), metricsOf(store, b!)]);
        const rows = diffRows(ma, mb);
        if (options.json) {
          process.stdout.write(JSON.stringify({ a: a!.id, b: b!.id, metrics: rows }, null, 2) + '\n');
          return;
        }
        if (rows.length === 0) return void process.stdout.write(`no evaluate metrics in runs ${a!.id} and ${b!.id}\n`);
        printTable(
          ['stage', 'metric', a!.id, b!.id, 'change'],
          rows.map((r) => [r.stage, r.metric, num(r.a), num(r.b), r.change === null ? '-' : signed(r.change)]),
        );
        return;
      }

      // `latest`: the newest run that has metrics (a `pipeline run fetch` has none to show).
      const found = run === 'latest' ? await newestWithMetrics(store, records) : undefined;
      const record = found?.record ?? findRun(records, run, hasMetrics);
      const metrics = found?.metrics ?? (await metricsOf(store, record));
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

/** Metrics of every stage result (evaluate, or a cmd stage's metrics.json) the run used or produced. */
async function metricsOf(store: Store, record: RunRecord): Promise<StageMetrics> {
  const { readMetrics } = await import('../../engine/promote/promote.js');
  const out: StageMetrics = new Map();
  for (const s of record.stages) {
    if (!s.key) continue;
    const m = await store.readManifest(s.key);
    if (!m || !m.files['metrics.json']) continue; // evaluate stages, and cmd stages that write one
    const values = new Map<string, number>();
    flatten(await readMetrics(store, m), '', values);
    out.set(s.stage, values);
  }
  return out;
}

async function newestWithMetrics(store: Store, records: readonly RunRecord[]): Promise<{ record: RunRecord; metrics: StageMetrics } | undefined> {
  for (const record of [...records].reverse()) {
    const metrics = await metricsOf(store, record);
    if (metrics.size > 0) return { record, metrics };
  }
  return undefined;
}

/** Numeric leaves by dotted path; lists (confusion matrix, mistakes) are not metrics. */
function flatten(value: unknown, prefix: string, into: Map<string, number>): void {
  if (typeof value === 'number') into.set(prefix, value);
  else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, into);
  }
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
