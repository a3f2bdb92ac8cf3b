// A run's event stream (server-sent events of its events.jsonl): stage states onto the DAG and the
// stages table, progress bars with the terminal's figures (label such as `Epoch 2/3`, count, img/s,
// ETA, loss), and learning curves grown from each `Epoch N/M - … loss: x - acc: y` line.
import { h, num } from './dom.js';
import { setNodeState } from './dag.js';

const EPOCH_LINE = /^Epoch (\d+)\/(\d+)\s+-\s+(.*)$/;

export function parseEpoch(line) {
  const m = EPOCH_LINE.exec(line);
  if (!m) return undefined;
  const values = {};
  for (const [, k, v] of m[3].matchAll(/([a-z_]+):\s*(-?[\d.]+(?:e[-+]?\d+)?)/gi)) values[k] = Number(v);
  return { epoch: Number(m[1]), of: Number(m[2]), values };
}

function eta(seconds) {
  if (seconds === undefined) return '';
  const s = Math.round(seconds);
  return s >= 60 ? `ETA ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `ETA ${s}s`;
}

/** Draws curves (metric → points) as one small SVG chart per metric. */
function drawCurves(box, curves) {
  box.replaceChildren();
  for (const [stage, metrics] of curves)
    for (const [metric, points] of metrics) {
      if (!points.length) continue;
      const W = 260;
      const H = 120;
      const xs = points.map((p) => p.epoch);
      const ys = points.map((p) => p.value);
      const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
      const [y0, y1] = [Math.min(...ys), Math.max(...ys) === Math.min(...ys) ? Math.min(...ys) + 1 : Math.max(...ys)];
      const px = (x) => 30 + ((x - x0) / (x1 - x0)) * (W - 40);
      const py = (y) => H - 20 - ((y - y0) / (y1 - y0)) * (H - 35);
      const svg = h(
        'svg',
        { class: 'curve', width: W, height: H, 'data-stage': stage, 'data-metric': metric, 'data-points': points.length },
        h('text', { x: 30, y: 12, 'font-size': 11 }, `${stage} ${metric} (${points.length} epoch${points.length === 1 ? '' : 's'}, last ${num(ys.at(-1))})`),
        h('path', { d: points.map((p, i) => `${i ? 'L' : 'M'}${px(p.epoch).toFixed(1)},${py(p.value).toFixed(1)}`).join(' '), stroke: '#1e88e5' }),
        ...points.map((p) => h('circle', { cx: px(p.epoch).toFixed(1), cy: py(p.value).toFixed(1), r: 2.5, fill: '#1e88e5' })),
      );
      box.append(svg);
    }
}

/**
 * Follows run `id`: `dag` is the run page's SVG, `progressBox` and `curveBox` are filled,
 * `onStage(stage, state)` updates the stages table, `onEnd(outcome)` when the run is over.
 * Returns a function that stops following.
 */
export function followRun(id, { dag, progressBox, curveBox, onStage, onEnd }) {
  const source = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
  const bars = new Map();
  const curves = new Map();
  source.onmessage = (msg) => {
    const e = JSON.parse(msg.data);
    if (e.type === 'stage') {
      setNodeState(dag, e.stage, e);
      onStage(e.stage, e);
      if (e.state !== 'running') (bars.get(e.stage)?.remove(), bars.delete(e.stage));
    } else if (e.type === 'progress') {
      let bar = bars.get(e.stage);
      if (!bar) {
        bar = h('div', { class: 'progress', 'data-stage': e.stage });
        bars.set(e.stage, bar);
        progressBox.append(bar);
      }
      const pct = e.total > 0 ? Math.min(100, (100 * e.value) / e.total) : 0;
      const fill = h('span', { style: `width:${pct.toFixed(1)}%` });
      bar.replaceChildren(
        h('strong', {}, `[${e.stage}] ${e.label}`),
        h('span', { class: 'bar' }, fill),
        `${Math.round(e.value)}/${Math.round(e.total)} ${e.unit ?? ''}`,
        e.rate !== undefined ? `  ${Math.round(e.rate)} ${e.unit ?? ''}/s` : '',
        `  ${eta(e.etaSeconds)}`,
        e.status ? `  ${e.status}` : '',
      );
    } else if (e.type === 'log') {
      const ep = parseEpoch(e.line);
      if (!ep) return;
      const metrics = curves.get(e.stage) ?? new Map();
      curves.set(e.stage, metrics);
      for (const [k, v] of Object.entries(ep.values)) {
        if (!/loss|acc/.test(k)) continue;
        const points = metrics.get(k) ?? [];
        metrics.set(k, [...points.filter((p) => p.epoch !== ep.epoch), { epoch: ep.epoch, value: v }]);
      }
      drawCurves(curveBox, curves);
    }
  };
  source.addEventListener('end', (msg) => {
    source.close();
    for (const bar of bars.values()) bar.remove();
    onEnd(JSON.parse(msg.data).outcome);
  });
  return () => source.close();
}
