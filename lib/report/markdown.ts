// The report as Markdown: the same facts as the HTML page, for terminals, CI logs and diffs.
import { fixed, signed } from './numbers.js';
import { describeChanges } from './records.js';
import { duration, epochRange } from './html.js';
import { describeOutcome, num } from './hyperparameters.js';
import type { ReportData } from './model.js';

const f4 = (x: number | undefined) => fixed(x, 4);
const f3 = (x: number | undefined) => fixed(x, 3);
const cell = (s: unknown) =>
  String(s ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');

function table(head: string[], rows: unknown[][]): string[] {
  return [`| ${head.map(cell).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}

export function renderMarkdown(d: ReportData): string {
  const out: string[] = [`# ${d.title}`, '', `Generated ${d.generated_at} by run \`${d.run.id}\`.`, ''];

  for (const e of d.evaluations) {
    const from = e.compared ? ` — compared: another pipeline's result in this store (run \`${e.compared.run_id}\`)` : '';
    const cmps = d.comparisons.filter((c) => c.after === e.stage);
    out.push(
      `- **${e.stage}** (${e.model_stage}): Test accuracy **${f4(e.accuracy)}**, Test score ${f4(e.loss)}${cmps.length ? ` (${cmps.map((c) => `${signed(c.accuracy.delta, 4)} vs ${c.before}`).join(', ')})` : ''}${from}`,
    );
  }
  if (d.evaluations.length) out.push('');

  out.push(
    '## Run summary',
    '',
    `Run \`${d.run.id}\` started ${d.run.started_at}: \`pipeline ${d.run.command.join(' ')}\`; wall time up to the report ${duration(d.run.wall_ms)}.`,
    '',
  );
  out.push(
    ...table(
      ['stage', 'kind', 'this run', 'time this run', 'time to compute', 'key'],
      d.stages.map((s) => [s.stage, s.kind, s.outcome, duration(s.run_ms), duration(s.compute_ms), s.key?.slice(0, 12) ?? '—']),
    ),
    '',
  );
  for (const b of d.run.backends) {
    out.push(
      `- ${b.stage}: ${b.backend ?? '?'}${b.workers ? `, ${b.workers} worker(s)` : ''}${
        b.versions
          ? `, ${Object.entries(b.versions)
              .map(([k, v]) => `${k}@${v}`)
              .join(', ')}`
          : ''
      }`,
    );
  }
  if (d.run.backends.length) out.push('');

  out.push('## Data', '');
  const { fetch, decode, normalization, classes } = d.data;
  if (fetch)
    out.push(
      `- Source \`${fetch.source ?? '?'}\`${fetch.sha256 ? `, sha256 ${fetch.sha256}` : fetch.md5 ? `, md5 ${fetch.md5}` : ''}${fetch.bytes !== undefined ? `, ${fetch.bytes} bytes` : ''}`,
    );
  if (decode) {
    out.push(
      `- Decoded as ${decode.format ?? '?'}, images ${(decode.shape ?? []).join('×')}; skipped as corrupt: ${decode.skipped_corrupt ?? 0}${decode.skipped_files?.length ? ` (${decode.skipped_files.map((f) => f.file).join(', ')})` : ''}${decode.changes ? `; ${describeChanges(decode.changes)}` : ''}`,
    );
  }
  if (normalization) {
    const s = normalization.split;
    out.push(
      `- Normalization ${normalization.method ?? '?'}: \`${normalization.formula ?? ''}\`${s ? `; validation split ${s.validation_split} (seed ${s.seed}): ${s.train} train, ${s.validation} validation, ${s.test} test` : ''}`,
    );
  }
  if (decode?.counts) {
    const splits = Object.keys(decode.counts);
    out.push(
      '',
      ...table(
        ['class', ...splits],
        [...classes.map((c) => [c, ...splits.map((s) => decode.counts![s]!.per_class[c] ?? 0)]), ['total', ...splits.map((s) => decode.counts![s]!.total)]],
      ),
    );
  }
  out.push('');

  for (const m of d.models) out.push(`## Model: ${m.stage}`, '', '```', m.summary.trimEnd(), '```', '');

  if (d.trainings.length) {
    out.push('## Training', '');
    const names = [...new Set(d.trainings.flatMap((t) => t.hyperparameters.map((h) => h.name)))];
    out.push(
      ...table(
        ['hyperparameter', ...d.trainings.map((t) => t.stage)],
        names.map((name) => [name, ...d.trainings.map((t) => t.hyperparameters.find((h) => h.name === name)?.value ?? '—')]),
      ),
      '',
    );
  }

  if (d.curves.phases.length) {
    out.push('## Learning curves', '');
    for (const p of d.curves.phases) {
      const outcome = p.outcome && (p.outcome.best || p.outcome.kept) ? describeOutcome(p.outcome) : '';
      out.push(
        `- ${p.stage}: ${epochRange(p)}${p.parent ? ` (continues ${p.parent})` : ''}${p.compared ? ' — compared: another pipeline in this store' : ''}${outcome ? ` — ${p.first > 1 ? 'in its own epochs: ' : ''}${outcome}` : ''}`,
      );
    }
    out.push(
      '',
      ...table(
        ['stage', 'epoch', 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds'],
        d.curves.epochs.map((r) => [
          r.stage,
          r.epoch,
          f4(r.loss),
          f4(r.acc),
          f4(r.val_loss),
          f4(r.val_acc),
          r.lr === undefined ? '—' : num(r.lr),
          r.seconds === undefined ? '—' : r.seconds.toFixed(1),
        ]),
      ),
      '',
    );
  }

  for (const c of d.comparisons) {
    out.push(`## ${c.before} → ${c.after}`, '', `Test accuracy ${f4(c.accuracy.before)} → ${f4(c.accuracy.after)} (${signed(c.accuracy.delta, 4)}).`);
    out.push(c.hurt.length ? `**${c.hurt.length} of ${c.classes.length} classes got worse (F1): ${c.hurt.join(', ')}.**` : 'No class got worse (F1).', '');
    out.push(
      ...table(
        ['class', 'recall before', 'recall after', 'Δ recall', 'F1 before', 'F1 after', 'Δ F1'],
        c.classes.map((x) => [x.class, f3(x.before.recall), f3(x.after.recall), signed(x.delta.recall), f3(x.before.f1), f3(x.after.f1), signed(x.delta.f1)]),
      ),
      '',
    );
  }

  for (const e of d.evaluations) {
    out.push(`## Test results: ${e.stage}`, '', `${e.model_stage} on ${e.count} test images: Test accuracy ${f4(e.accuracy)}, Test score ${f4(e.loss)}.`, '');
    const rows = e.per_class.map((c) => [c.class, f3(c.precision), f3(c.recall), f3(c.f1), c.support]);
    if (e.macro_avg) rows.push(['macro avg', f3(e.macro_avg.precision), f3(e.macro_avg.recall), f3(e.macro_avg.f1), e.count]);
    out.push(...table(['class', 'precision', 'recall', 'F1', 'support'], rows), '', 'Confusion matrix (rows: true class, columns: predicted):', '');
    out.push(
      ...table(
        ['true \\ predicted', ...e.classes],
        e.confusion_matrix.map((r, i) => [e.classes[i] ?? i, ...r]),
      ),
      '',
    );
    if (e.mistakes.length) {
      out.push('Most confident mistakes:', '');
      out.push(
        ...table(
          ['test image', 'true', 'predicted', 'confidence'],
          e.mistakes.map((m) => [`#${m.index}`, m.true_class, m.predicted_class, m.confidence.toFixed(3)]),
        ),
        '',
      );
    }
  }

  for (const g of d.augmentations) {
    out.push(
      `## Augmentation: ${g.stage}`,
      '',
      `${g.copies} copies of ${g.rows ?? '?'} training images${g.used_by.map((u) => `; ${u.stage} trained ${u.epochs} epochs on ${u.copies_used} of them`).join('')}${
        g.variants !== undefined && g.variants > g.copies
          ? `; ${g.variants - g.copies === 1 ? `preview variant ${g.copies} is` : `preview variants ${g.copies}–${g.variants - 1} are`} in no copy (preview only)`
          : ''
      }; ${
        g.params
          ? Object.entries(g.params)
              .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
              .join(', ')
          : ''
      }`,
      '',
    );
  }

  const h = d.history;
  out.push(
    '## History',
    '',
    `Covers ${h.covers.length} run(s)${h.omitted ? `; ${h.omitted} earlier run(s) not shown` : ''}. Read from the run records, not part of the cache key.`,
    '',
  );
  const stages = [...new Set(h.rows.flatMap((r) => Object.keys(r.metrics)))];
  out.push(
    ...table(
      ['run', 'outcome', ...stages.map((s) => `${s} accuracy`), 'changed since the previous run shown'],
      [...h.rows]
        .reverse()
        .map((r) => [
          r.run_id + (r.current ? ' (this run)' : '') + (r.repeated.length ? ` (+${r.repeated.length} identical)` : ''),
          r.outcome +
            (r.scheduled ? ` (scheduled: ${r.scheduled})` : '') +
            (r.experiment ? ` (experiment: ${r.experiment})` : '') +
            (r.promotion ? `; ${r.promotion.decision}: ${r.promotion.reason}` : ''),
          ...stages.map((s) => (r.metrics[s] ? (r.metrics[s]!.accuracy !== undefined ? f4(r.metrics[s]!.accuracy) : 'gone') : '—')),
          r.changes.join('; ') || '—',
        ]),
    ),
    '',
  );

  const c = d.model_card;
  out.push(
    '## Model card',
    '',
    `- **Model:** ${c.name}`,
    ...(c.weights ? [`- **Weights:** ${c.weights}`] : []),
    `- **Architecture:** ${c.architecture}${c.params_total !== undefined ? `, ${c.params_total} parameters` : ''}`,
    `- **Data:** ${c.data}`,
  );
  out.push(
    '',
    '### Intended use',
    '',
    ...c.intended_use.map((x) => `- ${x}`),
    '',
    '### Limitations',
    '',
    ...c.limitations.map((x) => `- ${x}`),
    '',
    '### Privacy and ethics',
    '',
    ...c.ethics.map((x) => `- ${x}`),
    '',
  );

  out.push(
    '## Provenance',
    '',
    ...table(
      ['stage', 'kind', 'key', 'outputs digest', 'computed at', 'by run'],
      d.stages.map((s) => [s.stage, s.kind, s.key ?? '—', s.outputs_digest ?? '—', s.created_at ?? '—', s.run_id ?? '—']),
    ),
    '',
  );
  return out.join('\n');
}
