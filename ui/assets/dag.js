// The run's DAG as an SVG: stages in columns by depth (longest path from a source), edges from
// each need; every node carries data-stage and data-state, and its class says the state.
import { h, duration } from './dom.js';

const W = 170;
const H = 46;
const GAP_X = 60;
const GAP_Y = 18;

export function drawDag(graph, states) {
  const depth = new Map();
  const byName = new Map(graph.map((s) => [s.name, s]));
  const depthOf = (name, seen = new Set()) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.has(name)) return 0;
    seen.add(name);
    const needs = byName.get(name)?.needs ?? [];
    const d = needs.length ? 1 + Math.max(...needs.filter((n) => byName.has(n)).map((n) => depthOf(n, seen)), -1) : 0;
    depth.set(name, d);
    return d;
  };
  const columns = [];
  for (const s of graph) (columns[depthOf(s.name)] ??= []).push(s.name);
  const pos = new Map();
  columns.forEach((names, x) => names.forEach((n, y) => pos.set(n, { x: 10 + x * (W + GAP_X), y: 10 + y * (H + GAP_Y) })));
  const width = 20 + columns.length * (W + GAP_X) - GAP_X;
  const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y;
  const svg = h('svg', { class: 'dag', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'pipeline DAG' });
  for (const s of graph)
    for (const need of s.needs) {
      const a = pos.get(need);
      const b = pos.get(s.name);
      if (!a || !b) continue;
      const [x1, y1, x2, y2] = [a.x + W, a.y + H / 2, b.x, b.y + H / 2];
      svg.append(h('path', { d: `M${x1},${y1} C${x1 + GAP_X / 2},${y1} ${x2 - GAP_X / 2},${y2} ${x2},${y2}` }));
    }
  for (const s of graph) {
    const p = pos.get(s.name);
    const st = states.get(s.name) ?? {};
    const state = st.state ?? 'not-run';
    svg.append(
      h(
        'g',
        { class: `node state-${state}`, 'data-stage': s.name, 'data-state': state, transform: `translate(${p.x},${p.y})` },
        h('title', {}, `${s.name} (${s.kind}): ${state}${st.reason ? ` — ${st.reason}` : ''}`),
        h('rect', { width: W, height: H, rx: 6 }),
        h('text', { x: 8, y: 18, 'font-weight': 'bold' }, s.name),
        h('text', { x: 8, y: 36, class: 'node-detail' }, `${state}${st.durationMs !== undefined ? ` · ${duration(st.durationMs)}` : ''}`),
      ),
    );
  }
  return svg;
}

/** Updates one node in place (a live state change). */
export function setNodeState(svg, stage, st) {
  const g = svg.querySelector(`g[data-stage="${CSS.escape(stage)}"]`);
  if (!g) return;
  g.setAttribute('class', `node state-${st.state}`);
  g.setAttribute('data-state', st.state);
  g.querySelector('.node-detail').textContent = `${st.state}${st.durationMs !== undefined ? ` · ${duration(st.durationMs)}` : ''}`;
  g.querySelector('title').textContent = `${stage}: ${st.state}${st.reason ? ` — ${st.reason}` : ''}`;
}
