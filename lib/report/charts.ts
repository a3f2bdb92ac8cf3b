// Vega-Lite specs of the report's charts: plain data in, plain JSON out, so they can be read and
// tested apart from rendering (svg.ts). Every mark carries a `description` (its aria-label in the
// SVG), which says what the mark shows in words.
import type { ClassDelta, CurvePoint, HistoryRow, Phase } from './model.js';
import { signed } from './numbers.js';

export type VegaLiteSpec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

const config = {
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#eceff3' },
  legend: { labelFontSize: 11, titleFontSize: 11 },
};

/** Series colours in phase order: phase 1 training, phase 1 validation, phase 2 training, ... */
const SERIES_COLOURS = ['#4269d0', '#ef8a33', '#3ca951', '#d6404e', '#a463f2', '#2a9d8f', '#9c6b4e', '#e377c2', '#6b7785', '#b8a000'];

const seriesName = (stage: string, compared: boolean | undefined, split: string) => `${stage}${compared ? ' (compared)' : ''} · ${split}`;

/** The chart a monitor's values are drawn in, and as which split. */
function monitored(monitor: string): { metric: CurvePoint['metric']; split: CurvePoint['split'] } {
  return { metric: monitor.endsWith('acc') ? 'accuracy' : 'loss', split: monitor.startsWith('val_') ? 'validation' : 'training' };
}

/**
 * Loss or accuracy per epoch, training and validation, every train stage on one epoch axis: one
 * colour per stage and split, a large mark for a stage of a single epoch (a line of one point
 * draws nothing else), and a ring on each stage's best epoch of the value it is judged by.
 */
export function learningCurveSpec(points: readonly CurvePoint[], phases: readonly Phase[], metric: CurvePoint['metric']): VegaLiteSpec {
  const single = new Set(phases.filter((p) => p.first === p.last).map((p) => seriesName(p.stage, p.compared, '')));
  const values = points
    .filter((p) => p.metric === metric)
    .map((p) => ({
      ...p,
      series: seriesName(p.stage, p.compared, p.split),
      pipeline: p.compared ? 'compared' : 'this pipeline',
      single: single.has(seriesName(p.stage, p.compared, '')),
      label: `${p.stage}${p.compared ? ' (compared)' : ''} epoch ${p.stage_epoch} (overall ${p.epoch}): ${p.split} ${metric} ${p.value.toFixed(4)}`,
    }));
  const anyCompared = values.some((v) => v.compared);
  const domain = phases.flatMap((p) =>
    (['training', 'validation'] as const).map((split) => seriesName(p.stage, p.compared, split)).filter((name) => values.some((v) => v.series === name)),
  );
  const colour = {
    field: 'series',
    type: 'nominal',
    title: null,
    scale: { domain, range: domain.map((_, i) => SERIES_COLOURS[i % SERIES_COLOURS.length]!) },
    // Below the plot, two per row: `stage · split` names are long for a legend at the side.
    legend: { orient: 'bottom', direction: 'horizontal', columns: 2, labelLimit: 220 },
  };
  const best = phases.flatMap((p) => {
    const b = p.outcome?.best;
    if (!b) return [];
    const where = monitored(b.monitor);
    const at = values.find((v) => v.stage === p.stage && !!v.compared === !!p.compared && v.stage_epoch === b.epoch && v.split === where.split);
    if (where.metric !== metric || !at) return [];
    const kept = p.outcome?.kept?.weights === 'best' && p.outcome.kept.epoch === b.epoch;
    return [
      {
        epoch: at.epoch,
        value: at.value,
        label: `${p.stage}: best ${b.monitor} ${at.value.toFixed(4)} at its epoch ${b.epoch}${kept ? ' (weights kept)' : ''}`,
      },
    ];
  });
  // A boundary where a stage continues another one (init_from): phase 2 starts here.
  const boundaries = phases.filter((p) => p.first > 1).map((p) => ({ epoch: p.first - 0.5, text: `${p.stage} →` }));
  const layers: VegaLiteSpec[] = [
    {
      mark: { type: 'line', point: { size: 28 }, strokeWidth: 2 },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
        y: {
          field: 'value',
          type: 'quantitative',
          title: metric,
          scale: metric === 'accuracy' ? { domain: [0, 1] } : { zero: false },
        },
        color: colour,
        // Another pipeline's stages (report compare_with) are dashed.
        ...(anyCompared
          ? {
              strokeDash: {
                field: 'pipeline',
                type: 'nominal',
                title: null,
                scale: {
                  domain: ['this pipeline', 'compared'],
                  range: [
                    [1, 0],
                    [5, 3],
                  ],
                },
              },
            }
          : {}),
        tooltip: [{ field: 'stage' }, { field: 'stage_epoch', title: 'stage epoch' }, { field: 'value', format: '.4f' }],
        description: { field: 'label' },
      },
    },
  ];
  if (single.size) {
    layers.push({
      transform: [{ filter: 'datum.single' }],
      mark: { type: 'point', shape: 'diamond', filled: true, size: 120 },
      encoding: {
        x: { field: 'epoch', type: 'quantitative' },
        y: { field: 'value', type: 'quantitative' },
        color: colour,
        description: { field: 'label' },
      },
    });
  }
  if (best.length) {
    layers.push({
      data: { values: best },
      mark: { type: 'point', shape: 'circle', filled: false, size: 260, strokeWidth: 2, color: '#1f2d3d' },
      encoding: { x: { field: 'epoch', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' }, description: { field: 'label' } },
    });
  }
  if (boundaries.length) {
    layers.push(
      {
        data: { values: boundaries },
        mark: { type: 'rule', strokeDash: [4, 4], color: '#888' },
        encoding: { x: { field: 'epoch', type: 'quantitative' }, description: { field: 'text' } },
      },
      {
        data: { values: boundaries },
        mark: { type: 'text', align: 'left', dx: 4, dy: -4, baseline: 'top', color: '#555', fontSize: 11 },
        encoding: { x: { field: 'epoch', type: 'quantitative' }, y: { value: 0 }, text: { field: 'text' } },
      },
    );
  }
  return {
    $schema: SCHEMA,
    width: 360,
    height: 220,
    title: { text: metric === 'loss' ? 'Loss per epoch' : 'Accuracy per epoch', anchor: 'start', fontSize: 13 },
    data: { values },
    layer: layers,
    config,
  };
}

/** The confusion matrix as a heatmap: true class down, predicted across, counts in the cells. */
export function confusionSpec(matrix: readonly (readonly number[])[], classes: readonly string[]): VegaLiteSpec {
  const values: { true: string; predicted: string; count: number; share: number; label: string }[] = [];
  matrix.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, p) => {
      const trueClass = classes[t] ?? String(t);
      const predicted = classes[p] ?? String(p);
      values.push({
        true: trueClass,
        predicted,
        count,
        share: total ? count / total : 0,
        label: `true ${trueClass}, predicted ${predicted}: ${count}`,
      });
    });
  });
  const order = classes.map(String);
  const cell = Math.max(22, Math.min(40, Math.floor(440 / Math.max(1, order.length))));
  return {
    $schema: SCHEMA,
    width: cell * order.length,
    height: cell * order.length,
    data: { values },
    encoding: {
      // No grid: on a band scale its lines would run through the middle of the cells and their counts.
      x: { field: 'predicted', type: 'ordinal', sort: order, title: 'predicted class', axis: { labelAngle: -40, orient: 'top', grid: false } },
      y: { field: 'true', type: 'ordinal', sort: order, title: 'true class', axis: { grid: false } },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: '#fff', strokeWidth: 1 },
        encoding: {
          // Shade by share of the true class, so rows of unequal size read alike.
          color: { field: 'share', type: 'quantitative', title: 'share of row', scale: { scheme: 'blues', domain: [0, 1] }, legend: { format: '.0%' } },
          tooltip: [{ field: 'true' }, { field: 'predicted' }, { field: 'count' }, { field: 'share', format: '.1%' }],
          description: { field: 'label' },
        },
      },
      {
        mark: { type: 'text', fontSize: cell < 30 ? 9 : 11 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: 'datum.share > 0.5', value: '#fff' }, value: '#1f2d3d' },
        },
      },
    ],
    config,
  };
}

/** Per-class change of a metric between two evaluations: losses in red, gains in green. */
export function deltaSpec(deltas: readonly ClassDelta[], metric: 'f1' | 'recall' | 'precision', before: string, after: string): VegaLiteSpec {
  const values = deltas.map((d) => ({
    class: d.class,
    delta: d.delta[metric],
    sign: d.delta[metric] < 0 ? 'worse' : 'better',
    label: `${d.class}: ${metric} ${d.before[metric].toFixed(3)} → ${d.after[metric].toFixed(3)} (${signed(d.delta[metric])})`,
  }));
  return {
    $schema: SCHEMA,
    width: 420,
    height: Math.max(120, 22 * values.length),
    title: { text: `Change in ${metric === 'f1' ? 'F1' : metric} per class, ${before} → ${after}`, anchor: 'start', fontSize: 13 },
    data: { values },
    layer: [
      {
        mark: { type: 'bar', cornerRadius: 2 },
        encoding: {
          y: { field: 'class', type: 'nominal', sort: values.map((v) => v.class), title: null },
          x: { field: 'delta', type: 'quantitative', title: `Δ ${metric}`, axis: { format: '+.2f' } },
          color: { field: 'sign', type: 'nominal', scale: { domain: ['worse', 'better'], range: ['#d6404e', '#3a9a5b'] }, legend: null },
          tooltip: [{ field: 'class' }, { field: 'delta', format: '+.3f' }],
          description: { field: 'label' },
        },
      },
      { mark: { type: 'rule', color: '#333' }, encoding: { x: { datum: 0 } } },
    ],
    config,
  };
}

/** Test accuracy of every evaluate stage across runs (the History section). */
export function historySpec(rows: readonly HistoryRow[]): VegaLiteSpec {
  const values = rows.flatMap((r, i) =>
    Object.entries(r.metrics)
      .filter(([, m]) => m?.accuracy !== undefined)
      .map(([stage, m]) => ({
        run: i + 1,
        run_id: r.run_id,
        stage,
        accuracy: m!.accuracy!,
        label: `run ${r.run_id}${r.current ? ' (this run)' : ''}: ${stage} accuracy ${m!.accuracy!.toFixed(4)}`,
      })),
  );
  return {
    $schema: SCHEMA,
    width: 420,
    height: 180,
    title: { text: 'Test accuracy by run', anchor: 'start', fontSize: 13 },
    data: { values },
    mark: { type: 'line', point: { size: 40 } },
    encoding: {
      x: { field: 'run', type: 'ordinal', title: 'run (oldest → this one)', axis: { labelAngle: 0 } },
      y: { field: 'accuracy', type: 'quantitative', scale: { zero: false }, title: 'test accuracy' },
      color: { field: 'stage', type: 'nominal', title: 'evaluate stage' },
      tooltip: [{ field: 'run_id' }, { field: 'stage' }, { field: 'accuracy', format: '.4f' }],
      description: { field: 'label' },
    },
    config,
  };
}
