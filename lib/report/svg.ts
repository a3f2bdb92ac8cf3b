// Vega-Lite → SVG in Node, headless: vega's own SVG renderer, no browser, no canvas, no native code.
import type { VegaLiteSpec } from './charts.js';

export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  // One after the other: both import vega's internals, and a concurrent first load of a shared
  // module graph trips jest's ESM loader.
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const compiled = vl.compile(spec as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
