// `pipeline exp show`: runs and sweep experiments as one table of the params that differ between
// them and their metrics (engine/experiments/table.ts), as text, --json or --csv.
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import type { ExperimentRow, ExperimentTable } from '../../engine/experiments/table.js';
import { nonNegativeInt } from '../stage-lines.js';
import { UsageError } from '../../engine/errors.js';
import { loadPipeline } from '../session.js';
import { Store } from '../../engine/store/store.js';
import { experimentTable } from '../../engine/experiments/table.js';

interface ShowOptions {
  all?: boolean;
  sort?: string;
  limit: number;
  json?: boolean;
  csv?: boolean;
}

export function register(program: Command): void {
  const exp = program.command('exp').description('experiments: runs and sweep experiments compared (exp show)');
  exp
    .command('show')
    .description('runs and sweep experiments, newest first: the params that differ between them and their metrics')
    .option('--all', 'every param, also those the same in every run (and every number of evaluate metrics.json)')
    .option('--sort <column>', 'best first by a metric (e.g. test_accuracy, evaluate.test_loss), or ascending by a param')
    .option('--limit <n>', 'how many runs to show (0: all)', nonNegativeInt, 20)
    .option('--json', 'machine-readable output')
    .option('--csv', 'comma-separated values, one row per run')
    .action(async (options: ShowOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      if (options.json && options.csv) throw new UsageError('--json and --csv: choose one');
      const store = new Store((await loadPipeline(globals.config)).root);
      const table = await experimentTable(store, { all: options.all, sort: options.sort, limit: options.limit });
      const write = (text: string) => process.stdout.write(text);
      if (options.json) write(JSON.stringify(table, null, 2) + '\n');
      else if (options.csv) write(csvOf(table));
      else write(textOf(table));
    });
}

const experimentOf = (r: ExperimentRow) => (r.experiment ? `${r.experiment.index}/${r.experiment.of}` : '');

function textOf(table: ExperimentTable): string {
  if (table.rows.length === 0) return 'no runs yet\n';
  // The outcome only when some run did not end well.
  const outcome = table.rows.some((r) => r.outcome !== 'ok');
  const sweeps = table.rows.some((r) => r.experiment);
  const header = ['run', ...(sweeps ? ['exp'] : []), ...(outcome ? ['outcome'] : []), ...table.params, ...table.metrics];
  const rows = table.rows.map((r) => [
    r.run,
    ...(sweeps ? [experimentOf(r)] : []),
    ...(outcome ? [r.outcome] : []),
    ...table.params.map((p) => (p in r.params ? valueText(r.params[p]) : '-')),
    ...table.metrics.map((m) => (r.metrics[m] === undefined ? '-' : String(Number(r.metrics[m]!.toPrecision(4))))),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const lines = [line(header), ...rows.map(line)];
  if (table.rows.length < table.total) lines.push(`(${table.rows.length} of ${table.total} runs; --limit 0 shows all)`);
  else if (table.params.length === 0 && table.rows.length > 1) lines.push('(no param differs between these runs; --all shows them)');
  return lines.join('\n') + '\n';
}

function valueText(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 40 ? s.slice(0, 37) + '...' : s;
}

function csvOf(table: ExperimentTable): string {
  const header = ['run', 'sweep', 'experiment', 'started', 'outcome', ...table.params, ...table.metrics];
  const rows = table.rows.map((r) => [
    r.run,
    r.sweep ?? '',
    experimentOf(r),
    r.startedAt,
    r.outcome,
    ...table.params.map((p) => (r.params[p] === undefined ? '' : typeof r.params[p] === 'string' ? (r.params[p] as string) : JSON.stringify(r.params[p]))),
    ...table.metrics.map((m) => (r.metrics[m] === undefined ? '' : String(r.metrics[m]))),
  ]);
  return [header, ...rows].map((cells) => cells.map(csvCell).join(',')).join('\n') + '\n';
}

/** RFC 4180: quoted when it holds a comma, quote or line break. */
function csvCell(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}
