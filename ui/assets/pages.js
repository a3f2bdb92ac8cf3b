// The app's pages: runs table, a run (DAG, stages, live progress, curves, logs, report), runs
// compared, the model registry (promote/rollback behind a confirmation) and the schedule.
import { h, api, post, confirmAction, duration, num, onLeave } from './dom.js';
import { drawDag } from './dag.js';
import { followRun } from './live.js';

const runLink = (id) => h('a', { href: `#/run/${encodeURIComponent(id)}` }, id);

export async function runsPage(params) {
  const rows = await api('/api/runs');
  const metricNames = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
  const filter = h('input', {
    type: 'search',
    id: 'runs-filter',
    placeholder: 'filter: id, trigger, outcome, command…',
    value: params.get('q') ?? '',
    size: 40,
  });
  const outcome = h(
    'select',
    { id: 'runs-outcome' },
    h('option', { value: '' }, 'any outcome'),
    ...['ok', 'failed', 'running', 'interrupted', 'killed', 'skipped'].map((o) => h('option', { value: o }, o)),
  );
  const selected = new Set();
  const compare = h(
    'button',
    { id: 'compare-selected', disabled: true, onclick: () => (location.hash = `#/compare?runs=${[...selected].join(',')}`) },
    'Compare selected',
  );
  const body = h('tbody');
  const table = h(
    'table',
    { id: 'runs-table' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, ''),
        ...['run', 'started', 'trigger', 'outcome', 'duration', 'ran', 'cached', 'pulled', ...metricNames].map((t) => h('th', {}, t)),
      ),
    ),
    body,
  );
  const render = () => {
    const q = filter.value.toLowerCase();
    body.replaceChildren(
      ...rows
        .filter(
          (r) => (!outcome.value || r.outcome === outcome.value) && (!q || [r.id, r.trigger, r.outcome, r.command].some((t) => t.toLowerCase().includes(q))),
        )
        .map((r) => {
          const box = h('input', {
            type: 'checkbox',
            'data-run': r.id,
            checked: selected.has(r.id),
            onchange: (e) => {
              e.target.checked ? selected.add(r.id) : selected.delete(r.id);
              compare.disabled = selected.size < 2;
            },
          });
          return h(
            'tr',
            { 'data-run': r.id, title: r.command },
            h('td', {}, box),
            h('td', {}, runLink(r.id)),
            h('td', {}, new Date(r.startedAt).toLocaleString()),
            h(
              'td',
              {},
              r.sweep
                ? h(
                    'a',
                    {
                      href: `#/compare?runs=${rows
                        .filter((o) => o.sweep === r.sweep)
                        .map((o) => o.id)
                        .join(',')}`,
                      title: 'compare the experiments of this sweep',
                    },
                    r.trigger,
                  )
                : r.trigger,
            ),
            h('td', { class: `outcome-${r.outcome}` }, r.outcome),
            h('td', { class: 'num' }, duration(r.durationMs)),
            h('td', { class: 'num' }, r.counts.ran),
            h('td', { class: 'num' }, r.counts.cached),
            h('td', { class: 'num' }, r.counts.pulled),
            ...metricNames.map((m) => h('td', { class: 'num' }, num(r.metrics[m]))),
          );
        }),
    );
  };
  filter.addEventListener('input', render);
  outcome.addEventListener('change', render);
  render();
  return h('section', {}, h('h1', {}, 'Runs'), h('div', { class: 'filters' }, filter, outcome, compare), rows.length ? table : h('p', {}, 'no runs yet'));
}

export async function runPage(id) {
  const page = await api(`/api/runs/${encodeURIComponent(id)}`);
  const r = page.record;
  const states = new Map(r.stages.map((s) => [s.stage, { state: s.outcome, durationMs: s.durationMs, reason: s.reason }]));
  const inRun = new Set(r.stages.map((s) => s.stage));
  const dag = drawDag(page.graph, states);
  const outcomeEl = h('span', { id: 'run-outcome', class: `outcome-${r.outcome}` }, r.outcome);
  const stageRows = new Map();
  const stageRow = (name, s) => {
    const out = page.outputs[name];
    const logName = page.logs.includes(`${name}.log`) ? `${name}.log` : undefined;
    return h(
      'tr',
      { 'data-stage': name },
      h('td', {}, name),
      h('td', { class: `state-${s.state}` }, s.state),
      h('td', { class: 'num' }, duration(s.durationMs)),
      h('td', {}, s.reason ?? ''),
      h(
        'td',
        {},
        out
          ? out.files
              .slice(0, 8)
              .map((f) =>
                h('div', {}, h('a', { href: `/api/files/${out.key}/${f.path.split('/').map(encodeURIComponent).join('/')}`, target: '_blank' }, f.path)),
              )
          : '',
      ),
      h('td', {}, logName ? h('a', { href: '#', 'data-log': logName, onclick: (e) => (e.preventDefault(), showLog(logName)) }, 'log') : ''),
    );
  };
  const stagesBody = h('tbody');
  for (const s of page.graph) {
    if (!inRun.has(s.name) && r.outcome !== 'running') continue;
    const row = stageRow(s.name, states.get(s.name) ?? { state: 'pending' });
    stageRows.set(s.name, row);
    stagesBody.append(row);
  }
  const logBox = h('div', { id: 'log-panel', class: 'panel' });
  const showLog = async (name) => {
    const base = `/api/runs/${encodeURIComponent(r.id)}/logs/${encodeURIComponent(name)}`;
    const res = await fetch(base, { credentials: 'same-origin' });
    const text = await res.text();
    const pre = h('pre', { class: 'log', id: 'log-text' });
    const search = h('input', { type: 'search', id: 'log-search', placeholder: 'search the log' });
    const render = () => {
      const q = search.value.toLowerCase();
      const lines = text.split('\n').filter((l) => !q || l.toLowerCase().includes(q));
      pre.replaceChildren(...lines.map((l) => h('div', {}, l)));
    };
    search.addEventListener('input', render);
    render();
    logBox.replaceChildren(
      h('h2', {}, `Log: ${name}`),
      search,
      ' ',
      h('a', { href: `${base}?download=1`, id: 'log-download', download: `${r.id}-${name}` }, 'download'),
      pre,
    );
  };
  const progressBox = h('div', { id: 'progress', class: 'panel' });
  const curveBox = h('div', { id: 'curves', class: 'panel' });
  // A running run can be cancelled (as `pipeline cancel RUN`); its event stream then ends `cancelled`.
  const cancelStatus = h('span', { id: 'cancel-status' });
  const cancelButton =
    r.outcome === 'running'
      ? h(
          'button',
          {
            id: 'cancel-run',
            onclick: async () => {
              if (!(await confirmAction(`Cancel run ${r.id}? Its running stages are stopped; finished ones are kept.`))) return;
              cancelButton.disabled = true;
              cancelStatus.textContent = ' cancelling…';
              cancelStatus.className = '';
              try {
                const out = await post(`/api/runs/${encodeURIComponent(r.id)}/cancel`);
                cancelStatus.textContent = out.stopped ? ` run ended ${out.outcome}` : ' asked to cancel; the run has not stopped yet';
              } catch (err) {
                cancelButton.disabled = false;
                cancelStatus.textContent = ` ${String(err.message ?? err)}`;
                cancelStatus.className = 'error';
              }
            },
          },
          'Cancel run',
        )
      : '';
  const stop = followRun(r.id, {
    dag,
    progressBox,
    curveBox,
    onStage(stage, e) {
      const row = stageRow(stage, { state: e.state, durationMs: e.durationMs, reason: e.reason });
      const old = stageRows.get(stage);
      if (old) old.replaceWith(row);
      else stagesBody.append(row);
      stageRows.set(stage, row);
    },
    async onEnd(outcome) {
      if (cancelButton) cancelButton.remove();
      outcomeEl.textContent = outcome;
      outcomeEl.className = `outcome-${outcome}`;
      if (r.outcome === 'running') {
        // The final record has the durations, outputs and logs: show them.
        const fresh = await api(`/api/runs/${encodeURIComponent(r.id)}`);
        page.outputs = fresh.outputs;
        page.logs = fresh.logs;
        for (const s of fresh.record.stages) {
          const row = stageRow(s.stage, { state: s.outcome, durationMs: s.durationMs, reason: s.reason });
          stageRows.get(s.stage)?.replaceWith(row);
          stageRows.set(s.stage, row);
        }
      }
    },
  });
  onLeave(stop);
  const trigger = r.trigger
    ? `schedule ${r.trigger.entry}`
    : r.experiment
      ? `sweep ${r.experiment.sweep} (${r.experiment.index}/${r.experiment.of})`
      : 'command line';
  return h(
    'section',
    { id: 'run-page', 'data-run': r.id },
    h('h1', {}, `Run ${r.id}`),
    h(
      'p',
      {},
      'outcome: ',
      outcomeEl,
      ` · started ${new Date(r.startedAt).toLocaleString()} · ${duration(r.durationMs)} · ${trigger} · `,
      h('code', {}, ['pipeline', ...r.command].join(' ')),
    ),
    cancelButton ? h('p', {}, cancelButton, cancelStatus) : '',
    r.error ? h('p', { class: 'error' }, r.error) : '',
    r.promotion ? h('p', {}, `promotion: ${r.promotion.decision} (${r.promotion.reason})`) : '',
    h('div', { class: 'panel' }, dag),
    progressBox,
    curveBox,
    h('h2', {}, 'Stages'),
    h(
      'table',
      { id: 'stages-table' },
      h('thead', {}, h('tr', {}, ...['stage', 'state', 'duration', 'why', 'outputs', 'log'].map((t) => h('th', {}, t)))),
      stagesBody,
    ),
    logBox,
    page.report
      ? h(
          'div',
          { class: 'panel' },
          h('h2', {}, 'Report'),
          h('iframe', { class: 'report', id: 'report-frame', src: `/api/files/${page.report.key}/index.html`, title: 'report' }),
        )
      : '',
  );
}

export async function comparePage(ids) {
  if (ids.length < 2) {
    const rows = await api('/api/runs');
    return h(
      'section',
      {},
      h('h1', {}, 'Compare'),
      h('p', {}, 'Pick two or more runs in the runs table (the checkboxes), then "Compare selected".'),
      h('p', {}, `${rows.length} runs in the store.`),
    );
  }
  const c = await api(`/api/compare?runs=${ids.map(encodeURIComponent).join(',')}`);
  const head = h('tr', {}, h('th', {}, ''), ...c.runs.map((id) => h('th', {}, runLink(id))));
  const params = h(
    'table',
    { id: 'compare-params' },
    h('thead', {}, h('tr', {}, ...['param', 'compared run', `in ${c.runs[0]}`, 'in the compared run'].map((t) => h('th', {}, t)))),
    h(
      'tbody',
      {},
      ...c.params.map((p) =>
        h(
          'tr',
          { 'data-param': p.param },
          h('td', {}, p.param),
          h('td', {}, p.run),
          h('td', {}, JSON.stringify(p.a) ?? '-'),
          h('td', {}, JSON.stringify(p.b) ?? '-'),
        ),
      ),
    ),
  );
  const metrics = h(
    'table',
    { id: 'compare-metrics' },
    h('thead', {}, head),
    h('tbody', {}, ...c.metrics.map((m) => h('tr', { 'data-metric': m.name }, h('td', {}, m.name), ...m.values.map((v) => h('td', { class: 'num' }, num(v)))))),
  );
  const chart = (svg, id) => {
    const box = h('div', { class: 'panel', id });
    box.innerHTML = svg; // rendered on the server by vega from the store's numbers
    return box;
  };
  return h(
    'section',
    { id: 'compare-page' },
    h('h1', {}, 'Compare runs'),
    h('h2', {}, 'Params that differ'),
    c.params.length ? params : h('p', {}, 'none'),
    h('h2', {}, 'Metrics'),
    metrics,
    c.charts.curves ? [h('h2', {}, 'Learning curves'), chart(c.charts.curves, 'compare-curves')] : '',
    c.charts.deltas ? [h('h2', {}, 'Per-class F1 change'), chart(c.charts.deltas, 'compare-deltas')] : '',
  );
}

export async function modelsPage() {
  const m = await api('/api/models');
  const status = h('p', { id: 'models-status' });
  const act = async (text, path, body) => {
    if (!(await confirmAction(text))) return;
    try {
      await post(path, body);
      location.reload();
    } catch (err) {
      status.textContent = String(err.message ?? err);
      status.className = 'error';
    }
  };
  const metric = (info) => (info.evaluate ? `${info.evaluate.metric} ${num(info.evaluate.value)}` : '-');
  const history = h(
    'table',
    { id: 'models-history' },
    h('thead', {}, h('tr', {}, ...['model', 'promoted', 'how', 'run', 'metric', 'previous'].map((t) => h('th', {}, t)))),
    h(
      'tbody',
      {},
      ...m.history.map((i) =>
        h(
          'tr',
          { 'data-model': i.id, class: m.current?.id === i.id ? 'current' : '' },
          h('td', {}, i.id + (m.current?.id === i.id ? ' (current)' : '')),
          h('td', {}, new Date(i.promotedAt).toLocaleString()),
          h('td', {}, i.how),
          h('td', {}, runLink(i.runId)),
          h('td', {}, metric(i)),
          h('td', {}, i.previous ?? '-'),
        ),
      ),
    ),
  );
  const pick = h('select', { id: 'promote-run' }, ...m.candidates.map((id) => h('option', { value: id }, id)));
  return h(
    'section',
    {},
    h('h1', {}, 'Models'),
    h('p', { id: 'models-current' }, m.current ? `models/current: ${m.current.id} (run ${m.current.runId}, ${metric(m.current)})` : 'no model promoted yet'),
    status,
    m.trainStage
      ? h(
          'p',
          {},
          `Promote the ${m.trainStage} model of run `,
          pick,
          ' ',
          h(
            'button',
            { id: 'promote', onclick: () => act(`Make the model of run ${pick.value} current?`, '/api/models/promote', { run: pick.value }) },
            'Promote',
          ),
        )
      : h('p', {}, 'pipeline.yaml has no promote: section'),
    m.current?.previous
      ? h(
          'p',
          {},
          h(
            'button',
            { id: 'rollback', onclick: () => act(`Roll models/current back to ${m.current.previous}?`, '/api/models/rollback') },
            `Roll back to ${m.current.previous}`,
          ),
        )
      : '',
    h('h2', {}, 'History'),
    history,
  );
}

export async function schedulePage() {
  const entries = await api('/api/schedule');
  if (!entries.length) return h('section', {}, h('h1', {}, 'Schedule'), h('p', {}, 'pipeline.yaml has no schedule: entries'));
  return h(
    'section',
    {},
    h('h1', {}, 'Schedule'),
    h(
      'table',
      { id: 'schedule-table' },
      h('thead', {}, h('tr', {}, ...['entry', 'cron', 'next fire times', 'last tick', 'last outcome', 'skipped ticks'].map((t) => h('th', {}, t)))),
      h(
        'tbody',
        {},
        ...entries.map((e) =>
          h(
            'tr',
            { 'data-entry': e.name },
            h('td', {}, e.name),
            h('td', {}, h('code', {}, e.cron), e.timezone ? ` (${e.timezone})` : ''),
            h('td', {}, ...e.next.map((t) => h('div', {}, new Date(t).toLocaleString()))),
            h('td', {}, e.lastTick ? new Date(e.lastTick).toLocaleString() : '-'),
            h('td', {}, e.lastOutcome ? [runLink(e.lastOutcome.run), ` ${e.lastOutcome.result}`] : '-'),
            h(
              'td',
              {},
              e.skipped.length ? e.skipped.map((s) => h('div', {}, `${new Date(s.firedAt).toLocaleString()}${s.note ? `: ${s.note}` : ''}`)) : 'none',
            ),
          ),
        ),
      ),
    ),
  );
}
