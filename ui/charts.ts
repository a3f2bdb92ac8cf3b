// The compare page's charts: Vega-Lite specs rendered to SVG on the server with the report's
// renderer (lib/report/svg.ts), so the browser runs no chart code and loads nothing else.
import { renderSvg } from '../lib/report/svg.js';
import type { VegaLiteSpec } from '../lib/report/charts.js';

interface Compared {
  curves: { run: string; stage: string; epoch: number; metric: string; value: number }[];
  deltas: { run: string; deltas: { class: string; delta: { f1: number } }[] }[];
}

function curvesSpec(points: Compared['curves']): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    data: { values: points.map((p) => ({ ...p, series: `${p.run} ${p.stage}` })) },
    facet: { column: { field: 'metric', type: 'nominal', title: null } },
    spec: {
      width: 260,
      height: 180,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
        y: { field: 'value', type: 'quantitative', scale: { zero: false } },
        // Whole run ids: the default label limit cuts them to an ellipsis where they differ.
        color: { field: 'series', type: 'nominal', title: 'run, stage', legend: { labelLimit: 0 } },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

function deltasSpec(deltas: Compared['deltas']): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    data: { values: deltas.flatMap((d) => d.deltas.map((c) => ({ run: d.run, class: c.class, f1: c.delta.f1 }))) },
    width: 400,
    mark: 'bar',
    encoding: {
      y: { field: 'class', type: 'nominal' },
      x: { field: 'f1', type: 'quantitative', title: 'F1 change vs the first run' },
      color: { field: 'run', type: 'nominal' },
      yOffset: { field: 'run' },
    },
  };
}

export async function compareCharts(c: Compared): Promise<{ curves?: string; deltas?: string }> {
  return {
    ...(c.curves.length ? { curves: await renderSvg(curvesSpec(c.curves)) } : {}),
    ...(c.deltas.some((d) => d.deltas.length) ? { deltas: await renderSvg(deltasSpec(c.deltas)) } : {}),
  };
}
