// `run --matrix stage.param=v1,v2` (repeatable): the cross product of the axes, each combination an
// experiment run with those values as extra --set overrides. Stages whose key does not depend on
// the axes are shared (computed once); the rest is computed per experiment. Afterwards, one table
// compares the experiments' evaluate metrics.
import { InvalidArgumentError } from 'commander';
import { readFile } from 'node:fs/promises';
import type { StageReport } from '../engine/run/execute.js';
import type { Pipeline } from '../engine/config/pipeline.js';
import type { Store } from '../engine/store/store.js';
import { describeAssignments, type RunExperiment } from '../engine/runner/experiment.js';

export interface MatrixAxis {
  path: string;
  values: string[];
}

/** exp1, exp2... in the order of the cross product (the last axis varies fastest), with their assignments. */
export type Experiment = RunExperiment;
export { describeAssignments };

/** Commander collector for `--matrix PATH=V1,V2,...`. */
export function collectAxis(value: string, previous: MatrixAxis[]): MatrixAxis[] {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected STAGE.PARAM=V1,V2,... (or params.NAME=V1,V2,...)');
  const path = value.slice(0, eq).trim();
  if (!path.includes('.')) throw new InvalidArgumentError(`"${path}" is not STAGE.PARAM or params.NAME`);
  const values = value
    .slice(eq + 1)
    .split(',')
    .map((v) => v.trim());
  if (values.some((v) => v === '')) throw new InvalidArgumentError(`empty value in "${value}" (values are separated by commas)`);
  if (new Set(values).size !== values.length) throw new InvalidArgumentError(`a value repeats in "${value}"`);
  if (previous.some((a) => a.path === path)) throw new InvalidArgumentError(`${path} is given twice: put all its values in one --matrix`);
  return [...previous, { path, values }];
}

export function experimentsOf(axes: readonly MatrixAxis[]): Experiment[] {
  let combos: Record<string, string>[] = [{}];
  for (const axis of axes) combos = combos.flatMap((c) => axis.values.map((v) => ({ ...c, [axis.path]: v })));
  return combos.map((assignments, i) => ({
    label: `exp${i + 1}`,
    assignments,
    sets: Object.entries(assignments).map(([k, v]) => `${k}=${v}`),
  }));
}

interface Metrics {
  test_accuracy?: number;
  test_loss?: number;
}

/**
 * The comparison after a sweep: one row per experiment, its assignments and, for every evaluate
 * stage, test accuracy and loss; with no evaluate stage, the outcome and the stages computed.
 */
export async function sweepTable(
  experiments: readonly { experiment: Experiment; pipeline: Pipeline; reports: readonly StageReport[]; runId: string }[],
  store: Store,
): Promise<string[]> {
  const axes = Object.keys(experiments[0]?.experiment.assignments ?? {});
  // The evaluate stages this sweep ran (not every one in the file: `run evaluate` leaves out evaluate_aug).
  const evaluates = [...new Set(experiments.flatMap((e) => e.reports.filter((r) => e.pipeline.stages.get(r.stage)?.kind === 'evaluate').map((r) => r.stage)))];
  const header = ['', ...axes, ...evaluates.flatMap((s) => [`${s} acc`, `${s} loss`]), 'outcome', 'run'];
  const rows: string[][] = [];
  for (const { experiment, reports, runId } of experiments) {
    const row = [experiment.label, ...axes.map((a) => experiment.assignments[a] ?? '')];
    for (const stage of evaluates) {
      const m = await metricsOf(
        store,
        reports.find((r) => r.stage === stage),
      );
      row.push(m?.test_accuracy?.toFixed(4) ?? '-', m?.test_loss?.toFixed(4) ?? '-');
    }
    const failed = reports.filter((r) => r.outcome === 'failed' || r.outcome === 'aborted').length;
    row.push(failed ? `${failed} failed` : 'ok', runId);
    rows.push(row);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

async function metricsOf(store: Store, report: StageReport | undefined): Promise<Metrics | undefined> {
  const file = report?.manifest?.files['metrics.json'];
  if (!file) return undefined;
  try {
    return JSON.parse(await readFile(store.objects.path(file.digest), 'utf8')) as Metrics;
  } catch {
    return undefined; // unreadable metrics are verify's business
  }
}
