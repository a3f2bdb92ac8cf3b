// The report as one self-contained HTML page: inline CSS, charts as inline SVG, images as PNG data
// URIs, no script and no network. Opens from the store with a double click.
import { formatDuration } from '../format.js';
import { fixed, signed } from './numbers.js';
import { describeChanges } from './records.js';
import { describeOutcome, num } from './hyperparameters.js';
import type { AugmentInfo, Comparison, Evaluation, Phase, ReportData, Source, StageRow } from './model.js';

/** Rendered charts and images, keyed as run.ts produces them. */
export interface RenderedAssets {
  /** `curves-loss`, `curves-accuracy`, `confusion-<stage>`, `delta-<before>-<after>`, `history` → SVG text. */
  svg: Record<string, string>;
  /** Augment stage → contact sheet data URI. */
  contactSheets: Record<string, string>;
  /** Augment stage → [file name, data URI] of each preview image. */
  previews: Record<string, [string, string][]>;
}

export function esc(text: unknown): string {
  return String(text ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const f4 = (x: number | undefined) => fixed(x, 4);
const f3 = (x: number | undefined) => fixed(x, 3);
const short = (key: string | undefined) => (key ? key.slice(0, 12) : '—');

export function duration(ms: number | undefined): string {
  return ms === undefined ? '—' : formatDuration(ms);
}

function provenance(sources: readonly Source[]): string {
  if (!sources.length) return '';
  const parts = sources.map(
    (s) =>
      `<span class="src" data-stage="${esc(s.stage)}">${esc(s.stage)} · key <code>${esc(short(s.key))}</code> · ${esc(s.file)}${s.digest ? ` <code>sha256:${esc(s.digest.slice(0, 12))}</code>` : ''}</span>`,
  );
  return `<figcaption class="prov">from ${parts.join('; ')}</figcaption>`;
}

function figure(id: string, svg: string | undefined, sources: readonly Source[], attrs = ''): string {
  if (!svg) return '';
  return `<figure class="chart" data-chart="${esc(id)}"${attrs}>${svg}${provenance(sources)}</figure>`;
}

/** A table in its own horizontally scrolling box, so a wide one never widens the page. */
function table(head: string[], rows: string[][], cls = ''): string {
  return `<div class="scroll"><table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table></div>`;
}

function deltaCell(x: number, digits = 3, higherIsBetter = true): string {
  const cls = Math.abs(x) < 0.5 * 10 ** -digits ? 'same' : x > 0 === higherIsBetter ? 'up' : 'down';
  return `<span class="delta ${cls}">${signed(x, digits)}</span>`;
}

function headline(d: ReportData): string {
  const cards = d.evaluations.map((e) => {
    const cmps = d.comparisons.filter((c) => c.after === e.stage);
    const from = e.compared ? ` <span class="muted">· compared, from run <code>${esc(e.compared.run_id)}</code></span>` : '';
    return `<div class="card${e.compared ? ' compared' : ''}" data-evaluate="${esc(e.stage)}"><div class="label">${esc(e.stage)} <span class="muted">(${esc(e.model_stage)})</span>${from}</div><div class="big">${(100 * e.accuracy).toFixed(2)}%</div><div class="muted">test accuracy · loss ${f4(e.loss)}${cmps.map((cmp) => ` · ${deltaCell(cmp.accuracy.delta * 100, 2)} pts vs ${esc(cmp.before)}`).join('')}</div></div>`;
  });
  return cards.length ? `<div class="cards">${cards.join('')}</div>` : '<p class="muted">No evaluate stage among the inputs: no test metrics.</p>';
}

function runSection(d: ReportData): string {
  const rows = d.stages.map((s: StageRow) => [
    `<b>${esc(s.stage)}</b>`,
    esc(s.kind),
    `<span class="outcome ${esc(s.outcome)}">${esc(s.outcome)}</span>`,
    duration(s.run_ms),
    duration(s.compute_ms),
    `<code>${esc(short(s.key))}</code>`,
  ]);
  const backends = d.run.backends.map(
    (b) =>
      `<li><b>${esc(b.stage)}</b>: ${esc(b.backend ?? '?')}${b.workers ? `, ${b.workers} worker${b.workers > 1 ? 's' : ''}` : ''}${
        b.versions
          ? ` — ${Object.entries(b.versions)
              .map(([k, v]) => `<code>${esc(k)}@${esc(v)}</code>`)
              .join(', ')}`
          : ''
      }</li>`,
  );
  return `<section id="run"><h2>Run summary</h2>
<p>Run <code>${esc(d.run.id)}</code>, started ${esc(d.run.started_at)}: <code>pipeline ${esc(d.run.command.join(' '))}</code>. Wall time up to this report: <b>${duration(d.run.wall_ms)}</b>.</p>
${table(['stage', 'kind', 'this run', 'time this run', 'time to compute', 'key'], rows, 'stages')}
${backends.length ? `<p>Training runtime:</p><ul>${backends.join('')}</ul>` : ''}
</section>`;
}

function dataSection(d: ReportData): string {
  const { fetch, decode, normalization, classes } = d.data;
  const parts: string[] = [];
  if (fetch) {
    const digest = fetch.sha256
      ? `sha256 <code>${esc(fetch.sha256)}</code>`
      : fetch.md5
        ? `md5 <code>${esc(fetch.md5)}</code>`
        : fetch.digest
          ? `digest <code>${esc(fetch.digest)}</code>`
          : 'no checksum';
    parts.push(
      `<p>Source <code>${esc(fetch.source ?? '?')}</code> (${esc(fetch.type ?? '?')}${fetch.bytes !== undefined ? `, ${fetch.bytes.toLocaleString('en-US')} bytes` : ''}${fetch.archive ? `, ${esc(fetch.archive)} archive of ${fetch.files ?? '?'} files` : ''}), ${digest}.</p>${provenance([fetch.source_ref])}`,
    );
  }
  if (decode?.counts) {
    const splits = Object.keys(decode.counts);
    const rows = classes.map((c) => [esc(c), ...splits.map((s) => String(decode.counts![s]!.per_class[c] ?? 0))]);
    rows.push(['<b>total</b>', ...splits.map((s) => `<b>${decode.counts![s]!.total}</b>`)]);
    const skipped = decode.skipped_corrupt ?? 0;
    parts.push(`<p>Decoded as ${esc(decode.format ?? '?')}, images ${esc((decode.shape ?? []).join('×'))}. ${skipped ? `<b>${skipped} corrupt file${skipped > 1 ? 's' : ''} skipped</b>${decode.skipped_files?.length ? `: ${decode.skipped_files.map((f) => `<code>${esc(f.file)}</code> (${esc(f.reason)})`).join(', ')}` : ''}.` : 'No file was skipped as corrupt.'}${decode.ignored_files ? ` ${decode.ignored_files} non-image files ignored.` : ''}${decode.changes ? ` ${esc(describeChanges(decode.changes))}.` : ''}</p>
${table(['class', ...splits.map(esc)], rows, 'counts')}${provenance([decode.source_ref])}`);
  }
  if (normalization) {
    const split = normalization.split;
    parts.push(
      `<p>Normalization <b>${esc(normalization.method ?? '?')}</b>: <code>${esc(normalization.formula ?? '')}</code>${normalization.mean ? ` with mean [${normalization.mean.map((m) => m.toFixed(4)).join(', ')}], std [${(normalization.std ?? []).map((m) => m.toFixed(4)).join(', ')}]` : ''}. ${split ? `Validation split ${split.validation_split} (${split.stratified ? 'stratified, ' : ''}seed ${split.seed}): ${split.train} training, ${split.validation} validation, ${split.test} test images.` : ''}</p>${provenance([normalization.source_ref])}`,
    );
  }
  return `<section id="data"><h2>Data</h2>${parts.join('\n') || '<p class="muted">No data stage among the inputs.</p>'}</section>`;
}

function modelSection(d: ReportData): string {
  if (!d.models.length) return '';
  const blocks = d.models.map(
    (m) =>
      `<details${m === d.models[0] ? ' open' : ''}><summary>${esc(m.stage)}${m.params_total !== undefined ? ` — ${m.params_total.toLocaleString('en-US')} parameters` : ''}</summary><pre class="summary">${esc(m.summary)}</pre>${provenance([m.source_ref])}</details>`,
  );
  return `<section id="model"><h2>Model</h2>${blocks.join('')}</section>`;
}

/** The hyperparameters of every train stage side by side, one column per stage (visible, not folded away). */
function trainingSection(d: ReportData): string {
  if (!d.trainings.length) return '';
  const names = [...new Set(d.trainings.flatMap((t) => t.hyperparameters.map((h) => h.name)))];
  const rows = names.map((name) => [esc(name), ...d.trainings.map((t) => esc(t.hyperparameters.find((h) => h.name === name)?.value ?? '—'))]);
  const sources = d.trainings.flatMap((t) => (t.source_ref ? [t.source_ref] : []));
  return `<section id="training"><h2>Training</h2>
${table(['hyperparameter', ...d.trainings.map((t) => `<b>${esc(t.stage)}</b>`)], rows, 'hyperparameters')}${provenance(sources)}</section>`;
}

/** `epochs 21–40` or, for a phase of one epoch, `epoch 3`. */
export function epochRange(p: Phase): string {
  return p.first === p.last ? `epoch ${p.first}` : `epochs ${p.first}–${p.last}`;
}

function phaseItem(p: Phase): string {
  const outcome = p.outcome && (p.outcome.best || p.outcome.kept) ? describeOutcome(p.outcome) : '';
  return `<li><b>${esc(p.stage)}</b>: ${epochRange(p)}${p.parent ? `, continuing from ${esc(p.parent)}` : ''}${p.compared ? ' <span class="muted">(compared: another pipeline in this store, dashed)</span>' : ''}${outcome ? ` — ${p.first > 1 ? 'in its own epochs: ' : ''}${esc(outcome)}` : ''}</li>`;
}

function curvesSection(d: ReportData, a: RenderedAssets): string {
  if (!d.curves.points.length) return '';
  const phases = d.curves.phases.map(phaseItem).join('');
  const phaseOf = (stage: string, compared: boolean | undefined) => d.curves.phases.find((p) => p.stage === stage && !!p.compared === !!compared);
  const rows = d.curves.epochs.map((r) => {
    const o = phaseOf(r.stage, r.compared)?.outcome;
    const notes = [
      o?.best?.epoch === r.stage_epoch ? `best ${o.best.monitor}` : '',
      o?.kept?.epoch === r.stage_epoch ? `weights kept` : '',
      o?.stopped_after === r.stage_epoch ? 'stopped early' : '',
    ].filter(Boolean);
    return [
      esc(r.stage),
      String(r.epoch),
      f4(r.loss),
      f4(r.acc),
      f4(r.val_loss),
      f4(r.val_acc),
      r.lr === undefined ? '—' : num(r.lr),
      r.seconds === undefined ? '—' : r.seconds.toFixed(1),
      notes.join(', '),
    ];
  });
  return `<section id="curves"><h2>Learning curves</h2><ul class="phases">${phases}</ul>
<div class="row">${figure('curves-loss', a.svg['curves-loss'], d.curves.sources)}${figure('curves-accuracy', a.svg['curves-accuracy'], d.curves.sources)}</div>
<details><summary>Per-epoch values: loss, accuracy, learning rate, seconds</summary>${table(['stage', 'epoch', 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds', ''], rows, 'num epochs')}</details></section>`;
}

function evaluationSection(e: Evaluation, a: RenderedAssets): string {
  const rows = e.per_class.map((c) => [esc(c.class), f3(c.precision), f3(c.recall), f3(c.f1), String(c.support)]);
  if (e.macro_avg) rows.push(['<b>macro avg</b>', f3(e.macro_avg.precision), f3(e.macro_avg.recall), f3(e.macro_avg.f1), String(e.count)]);
  const k = e.confusion_matrix.length;
  const mistakes = e.mistakes
    .map(
      (m) =>
        `<figure class="mistake" data-index="${m.index}">${m.image ? `<img src="${m.image}" alt="test image ${m.index}: a ${esc(m.true_class)} predicted as ${esc(m.predicted_class)}" width="96" height="96">` : '<div class="noimg">no image</div>'}<figcaption><b>${esc(m.predicted_class)}</b> ${(100 * m.confidence).toFixed(1)}%<br><span class="muted">true: ${esc(m.true_class)} (${(100 * m.true_probability).toFixed(1)}%)</span><br><span class="muted">#${m.index}</span></figcaption></figure>`,
    )
    .join('');
  return `<section class="evaluation" id="eval-${esc(e.stage)}" data-stage="${esc(e.stage)}"><h2>Test results: ${esc(e.stage)}</h2>
<p>Model <b>${esc(e.model_stage)}</b> on ${e.count.toLocaleString('en-US')} test images: <b>Test accuracy ${f4(e.accuracy)}</b>, Test score (loss) ${f4(e.loss)}.</p>
<div class="row"><div>${table(['class', 'precision', 'recall', 'F1', 'support'], rows, 'num per-class')}${provenance([e.source_ref])}</div>
${figure(`confusion-${e.stage}`, a.svg[`confusion-${e.stage}`], [e.source_ref], ` data-k="${k}" data-counts="${esc(JSON.stringify(e.confusion_matrix))}"`)}</div>
${e.mistakes.length ? `<h3>Most confident mistakes</h3><div class="mistakes">${mistakes}</div>` : ''}
</section>`;
}

function comparisonSection(c: Comparison, a: RenderedAssets, evaluations: readonly Evaluation[]): string {
  const sources = evaluations.filter((e) => e.stage === c.before || e.stage === c.after).map((e) => e.source_ref);
  const rows = c.classes.map((x) => [
    esc(x.class),
    f3(x.before.precision),
    f3(x.after.precision),
    deltaCell(x.delta.precision),
    f3(x.before.recall),
    f3(x.after.recall),
    deltaCell(x.delta.recall),
    f3(x.before.f1),
    f3(x.after.f1),
    deltaCell(x.delta.f1),
  ]);
  const hurt = c.hurt.length
    ? `<p class="callout down"><b>${c.hurt.length} of ${c.classes.length} classes got worse</b> (F1): ${c.hurt.map(esc).join(', ')}.</p>`
    : `<p class="callout up">No class got worse (F1).</p>`;
  return `<section class="comparison" id="compare-${esc(c.before)}-${esc(c.after)}"><h2>${esc(c.before)} → ${esc(c.after)}</h2>
<p>Test accuracy ${f4(c.accuracy.before)} → ${f4(c.accuracy.after)} (${deltaCell(c.accuracy.delta, 4)}), loss ${f4(c.loss.before)} → ${f4(c.loss.after)} (${deltaCell(c.loss.delta, 4, false)}).</p>
${hurt}
<div class="row">${figure(`delta-${c.before}-${c.after}`, a.svg[`delta-${c.before}-${c.after}`], sources)}
${table(['class', 'P before', 'P after', 'Δ', 'R before', 'R after', 'Δ', 'F1 before', 'F1 after', 'Δ'], rows, 'num compare')}</div></section>`;
}

const copiesWord = (n: number) => `${n} cop${n === 1 ? 'y' : 'ies'}`;

/** Which copies the train stages used: epoch e trains on copy (e − 1) mod copies. */
function copiesUsed(g: AugmentInfo): string {
  if (!g.used_by.length) return 'No train stage of this report trained on these copies.';
  return g.used_by
    .map(
      (u) =>
        `<b>${esc(u.stage)}</b> trained ${u.epochs} epoch${u.epochs === 1 ? '' : 's'} on ${u.copies_used === g.copies ? `all ${copiesWord(g.copies)}` : `${copiesWord(u.copies_used)} of the ${g.copies}`}${u.epochs > g.copies ? ', each reused in turn (epoch e trains on copy (e − 1) mod ' + g.copies + ')' : ''}.`,
    )
    .join(' ');
}

/**
 * The preview images as a labelled grid: one row per training image, its original and then
 * variant v, which is exactly that image in copy v while v < copies; further variants are more
 * draws of the same transform that no copy holds, so training never saw them.
 */
function previewGrid(g: AugmentInfo, previews: readonly [string, string][]): string {
  const grid = new Map<number, Map<number, [string, string]>>(); // image → column (-1: original) → file
  for (const entry of previews) {
    const m = /image_(\d+)_(?:original|variant_(\d+))\.png$/.exec(entry[0]);
    if (!m) continue;
    const row = grid.get(Number(m[1])) ?? new Map<number, [string, string]>();
    row.set(m[2] === undefined ? -1 : Number(m[2]), entry);
    grid.set(Number(m[1]), row);
  }
  if (!grid.size) return '';
  const columns = [...new Set([...grid.values()].flatMap((r) => [...r.keys()]))].sort((x, y) => x - y);
  const used = Math.max(0, ...g.used_by.map((u) => u.copies_used));
  const head = columns.map((c) =>
    c < 0
      ? 'original'
      : c < g.copies
        ? `copy ${c}<br><span class="muted">${c < used ? 'trained on' : 'not trained on'}</span>`
        : `variant ${c}<br><span class="muted">preview only</span>`,
  );
  const rows = [...grid.entries()]
    .sort(([x], [y]) => x - y)
    .map(([image, cells]) =>
      columns.map((c) => {
        const cell = cells.get(c);
        const label = c < 0 ? `training image ${image}, original` : `training image ${image}, ${c < g.copies ? `copy ${c}` : `variant ${c} (preview only)`}`;
        return cell ? `<img class="preview" src="${cell[1]}" alt="${esc(label)}" title="${esc(cell[0])}" width="64" height="64">` : '';
      }),
    );
  const extra = columns.filter((c) => c >= g.copies).length;
  return `<p>Each row is one training image: the original, then its augmented versions. Columns <i>copy v</i> are exactly that image in copy v${extra ? `; the ${extra} <i>variant</i> column${extra === 1 ? '' : 's'} beyond the ${copiesWord(g.copies)} ${extra === 1 ? 'is a further draw' : 'are further draws'} of the same transform for this preview only: no copy holds ${extra === 1 ? 'it' : 'them'} and training never saw ${extra === 1 ? 'it' : 'them'}` : ''}.</p>
${table(
  columns.map((_, i) => head[i]!),
  rows,
  'aug-grid',
)}${provenance(g.previews.slice(0, 1))}`;
}

function augmentSection(d: ReportData, a: RenderedAssets): string {
  if (!d.augmentations.length) return '';
  const blocks = d.augmentations.map((g) => {
    const sheet = a.contactSheets[g.stage];
    const params = g.params
      ? Object.entries(g.params)
          .map(([k, v]) => `<code>${esc(k)}=${esc(JSON.stringify(v))}</code>`)
          .join(' ')
      : '';
    const grid = previewGrid(g, a.previews[g.stage] ?? []);
    // The contact sheet is the same images without labels: shown only when there are no previews.
    const fallback =
      !grid && sheet
        ? `<figure class="sheet"><img src="${sheet}" alt="contact sheet of ${esc(g.stage)}: each row an original and its augmented variants">${provenance(g.contact_sheet ? [g.contact_sheet] : [])}</figure>`
        : '';
    return `<h3>${esc(g.stage)}</h3><p>${copiesWord(g.copies)} augmented of ${g.rows ?? '?'} training images. ${copiesUsed(g)} ${params}</p>
${grid}${fallback}`;
  });
  return `<section id="augment"><h2>Augmentation</h2>${blocks.join('')}</section>`;
}

function historySection(d: ReportData, a: RenderedAssets): string {
  const h = d.history;
  const stages = [...new Set(h.rows.flatMap((r) => Object.keys(r.metrics)))];
  const rows = [...h.rows].reverse().map((r) => [
    `<code>${esc(r.run_id)}</code>${r.current ? ' <b>(this run)</b>' : ''}${r.repeated.length ? `<br><span class="muted">and ${r.repeated.length} later run${r.repeated.length > 1 ? 's' : ''} with the same results</span>` : ''}`,
    esc(r.started_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')),
    esc(r.outcome) +
      (r.scheduled ? `<br><span class="muted">scheduled: ${esc(r.scheduled)}</span>` : '') +
      (r.experiment ? `<br><span class="muted">experiment: ${esc(r.experiment)}</span>` : '') +
      (r.promotion
        ? `<br><span class="${r.promotion.decision === 'promoted' ? 'delta up' : 'muted'}" title="${esc(r.promotion.reason)}">${esc(r.promotion.decision)}</span>`
        : ''),
    ...stages.map((s) => {
      const m = r.metrics[s];
      return m ? (m.accuracy !== undefined ? f4(m.accuracy) : `<span class="muted">gone (gc)</span>`) : '—';
    }),
    r.changes.length
      ? `<ul class="changes">${r.changes.map((c) => `<li>${esc(c)}</li>`).join('')}</ul>`
      : r === h.rows[0]
        ? '<span class="muted">(first shown)</span>'
        : '<span class="muted">no change</span>',
  ]);
  const covers = `Covers ${h.covers.length} run${h.covers.length === 1 ? '' : 's'} (${h.covers.length ? `<code>${esc(h.covers[0])}</code> … <code>${esc(h.covers[h.covers.length - 1])}</code>` : 'none'})${h.omitted ? `; ${h.omitted} earlier run${h.omitted === 1 ? '' : 's'} of this store not shown (no evaluate result, or beyond the <code>history</code> limit)` : ''}. Read from the run records when this report was made; not part of its cache key.`;
  return `<section id="history"><h2>History</h2><p>${covers}</p>
${h.rows.length > 1 ? figure('history', a.svg['history'], []) : ''}
${table(['run', 'started', 'outcome', ...stages.map((s) => `${esc(s)} accuracy`), 'changed since the row below'], rows, 'history')}</section>`;
}

function modelCardSection(d: ReportData): string {
  const c = d.model_card;
  const li = (xs: string[]) => `<ul>${xs.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>`;
  return `<section id="model-card"><h2>Model card</h2>
<dl><dt>Model</dt><dd>${esc(c.name)}</dd>${c.weights ? `<dt>Weights</dt><dd>${esc(c.weights)}</dd>` : ''}<dt>Architecture</dt><dd>${esc(c.architecture)}${c.params_total !== undefined ? `, ${c.params_total.toLocaleString('en-US')} parameters` : ''}</dd>
<dt>Data</dt><dd>${esc(c.data)}</dd><dt>Metrics</dt><dd>${c.metrics.map((m) => `${esc(m.stage)}: accuracy ${f4(m.accuracy)}, loss ${f4(m.loss)}`).join('; ') || '—'}</dd></dl>
<h3>Intended use</h3>${li(c.intended_use)}<h3>Limitations</h3>${li(c.limitations)}<h3>Privacy and ethics</h3>${li(c.ethics)}</section>`;
}

function provenanceSection(d: ReportData): string {
  const rows = d.stages.map((s) => [
    `<b>${esc(s.stage)}</b>`,
    esc(s.kind) + (s.version !== undefined ? ` v${s.version}` : ''),
    `<code>${esc(s.key ?? '—')}</code>`,
    `<code>${esc(s.outputs_digest ?? '—')}</code>`,
    esc(s.created_at ?? '—'),
    `<code>${esc(s.run_id ?? '—')}</code>`,
    s.params && Object.keys(s.params).length ? `<details><summary>params</summary><pre>${esc(JSON.stringify(s.params, null, 2))}</pre></details>` : '—',
  ]);
  return `<section id="provenance"><h2>Provenance</h2><p>Every figure above names the stage, key and file digest it was drawn from. Each input of this report:</p>
${table(['stage', 'kind', 'key', 'outputs digest', 'computed at', 'by run', 'params'], rows, 'prov-table')}</section>`;
}

const CSS = `
:root{--fg:#1f2d3d;--muted:#6b7785;--line:#e3e7ec;--bg:#fff;--soft:#f6f8fa;--up:#2f8a4f;--down:#c8323f}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1120px;margin:0 auto;padding:24px 28px 64px}h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 10px;padding-top:8px;border-top:1px solid var(--line)}h3{font-size:15px;margin:18px 0 8px}
nav{position:sticky;top:0;background:#fffffff0;border-bottom:1px solid var(--line);padding:8px 28px;font-size:13px;z-index:1;white-space:nowrap;overflow-x:auto;scrollbar-width:thin}nav a{margin-right:14px;color:var(--fg);text-decoration:none}nav a:hover{text-decoration:underline}
main [id]{scroll-margin-top:64px}.scroll{overflow-x:auto;max-width:100%}
.muted{color:var(--muted)}code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:var(--soft);padding:1px 4px;border-radius:3px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:14px;margin:18px 0}.card{border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:220px}.card .big{font-size:30px;font-weight:650}.card .label{font-weight:600}
table{border-collapse:collapse;margin:8px 0;font-size:13.5px}th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}th{background:var(--soft);font-weight:600}
table.num td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.row>*{min-width:0;max-width:100%}.row>figure.chart{flex:0 1 520px}.row>figure.chart[data-chart^="confusion"]{flex:0 1 auto}figure{margin:8px 0}figure.chart svg{max-width:100%;height:auto}
.prov{font-size:11.5px;color:var(--muted);margin-top:4px}.prov code{font-size:11px}
.delta.up{color:var(--up);font-weight:600}.delta.down{color:var(--down);font-weight:600}.delta.same{color:var(--muted)}
.callout{padding:8px 12px;border-radius:6px}.callout.down{background:#fdecee;border-left:4px solid var(--down)}.callout.up{background:#eaf6ee;border-left:4px solid var(--up)}
.outcome.ran{color:var(--up);font-weight:600}.outcome.failed{color:var(--down);font-weight:600}
.mistakes{display:grid;grid-template-columns:repeat(auto-fill,minmax(112px,1fr));gap:10px}.mistake{margin:0;text-align:center;font-size:12px}.mistake img,.preview,.sheet img{image-rendering:pixelated}.mistake img{border:1px solid var(--line);border-radius:4px}
table.aug-grid td{padding:2px;border:0}table.aug-grid th{font-weight:500;font-size:12px}.sheet img{max-width:100%}
table.hyperparameters td:first-child{font-weight:600;white-space:nowrap}
pre.summary{font-size:12px;background:var(--soft);padding:10px;overflow:auto}ul.changes{margin:0;padding-left:16px;font-size:12.5px}
dl{display:grid;grid-template-columns:minmax(0,140px) minmax(0,1fr);gap:4px 12px}dt{font-weight:600}dd{margin:0}
details summary{cursor:pointer;color:var(--fg)}
@media (max-width:600px){main{padding:16px 12px 48px}nav{padding:8px 12px}}
@media print{nav{display:none}details{display:block}}
`;

export function renderHtml(d: ReportData, a: RenderedAssets): string {
  const sections = [
    headline(d),
    runSection(d),
    dataSection(d),
    modelSection(d),
    trainingSection(d),
    curvesSection(d, a),
    ...d.comparisons.map((c) => comparisonSection(c, a, d.evaluations)),
    ...d.evaluations.map((e) => evaluationSection(e, a)),
    augmentSection(d, a),
    historySection(d, a),
    modelCardSection(d),
    provenanceSection(d),
  ];
  const nav = [
    ['run', 'Run'],
    ['data', 'Data'],
    ['model', 'Model'],
    ['training', 'Training'],
    ['curves', 'Curves'],
    ...d.comparisons.map((c) => [`compare-${c.before}-${c.after}`, `${c.before} → ${c.after}`]),
    ...d.evaluations.map((e) => [`eval-${e.stage}`, e.stage]),
    ['augment', 'Augmentation'],
    ['history', 'History'],
    ['model-card', 'Model card'],
    ['provenance', 'Provenance'],
  ]
    .filter(([id]) => sections.some((s) => s.includes(`id="${esc(id)}"`)))
    .map(([id, label]) => `<a href="#${esc(id)}">${esc(label)}</a>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${esc(d.title)}</title><style>${CSS}</style></head>
<body><nav>${nav}</nav><main>
<h1>${esc(d.title)}</h1>
<p class="muted">Generated ${esc(d.generated_at)} by run <code>${esc(d.run.id)}</code> · report format ${d.format} · the same facts as text in <code>report.md</code>, as data in <code>report.json</code></p>
${sections.join('\n')}
</main></body></html>
`;
}
