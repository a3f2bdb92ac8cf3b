// The report stage's work: read what the upstream stages wrote, assemble ReportData, render the
// charts to SVG and write index.html (self-contained), report.md and report.json.
import { readFile, writeFile } from 'node:fs/promises';
import type { StageContext, UpstreamArtifacts } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { comparePairs, compare, joinCurves, modelCard, type TrainCurveInput } from '../../lib/report/assemble.js';
import { confusionSpec, deltaSpec, historySpec, learningCurveSpec, type VegaLiteSpec } from '../../lib/report/charts.js';
import { collectHistory } from './history.js';
import { readCompared } from './compared.js';
import { renderHtml, type RenderedAssets } from '../../lib/report/html.js';
import { datasetTestImages, fileDataUri, rowImages } from '../../lib/report/images.js';
import { DATASET_DIR } from '../../lib/dataset/format.js';
import { renderMarkdown } from '../../lib/report/markdown.js';
import {
  REPORT_FORMAT,
  type AugmentInfo,
  type DataInfo,
  type Evaluation,
  type ModelInfo,
  type ReportData,
  type Source,
  type StageRow,
} from '../../lib/report/model.js';
import type { AugmentRecord, DecodeRecord, FetchRecord, HistoryRecord, MetricsRecord, NormalizationRecord, TrainRecord } from '../../lib/report/records.js';
import { renderSvg } from '../../lib/report/svg.js';
import { trainingInfo } from '../../lib/report/hyperparameters.js';

export interface ReportParams {
  title: string;
  mistakes: number;
  history: number;
  compare_with?: string[];
}

function source(u: UpstreamArtifacts, file: string): Source {
  const digest = u.digest(file);
  return { stage: u.stage, key: u.provenance.key, file, ...(digest ? { digest } : {}) };
}

async function readOptionalJson<T>(u: UpstreamArtifacts | undefined, name: string): Promise<T | undefined> {
  return u?.has(name) ? u.readJson<T>(name) : undefined;
}

/** "4 Conv2D, 2 MaxPooling2D, 3 Dropout, 2 Dense layers" from a Keras-style summary. */
export function describeArchitecture(summary: string): string {
  const counts = new Map<string, number>();
  for (const m of summary.matchAll(/^\S+\s+\((\w+)\)\s/gm)) {
    const type = m[1]!;
    if (type === 'Activation' || type === 'type') continue; // `type` is the header row
    counts.set(type, (counts.get(type) ?? 0) + 1);
  }
  const input = /\(None, ([\d, ]+)\)/.exec(summary)?.[1];
  const parts = [...counts].map(([t, n]) => `${n} ${t}`);
  return parts.length ? `sequential network: ${parts.join(', ')} layers${input ? ` (first layer output ${input.replace(/, /g, '×')})` : ''}` : 'unknown';
}

export async function runReport(ctx: StageContext<ReportParams>): Promise<void> {
  const p = ctx.params;
  const inputs = ctx.inputs;
  if (inputs.all.length === 0) {
    throw new StageError(`report ${ctx.stage}: no inputs; list the stages it reports on in needs: (e.g. needs: [train, evaluate])`);
  }
  const first = (kind: string) => inputs.ofKind(kind)[0];
  const current = ctx.runs.current();

  // ---- data
  const fetchIn = first('fetch');
  const decodeIn = first('decode');
  const normIn = first('normalize');
  const fetch = await readOptionalJson<FetchRecord>(fetchIn, 'fetch.json');
  const decode = await readOptionalJson<DecodeRecord>(decodeIn, 'decode.json');
  const normalization = await readOptionalJson<NormalizationRecord>(normIn, 'normalization.json');
  const evaluateIns = inputs.ofKind('evaluate');
  const metricsOf = new Map<string, MetricsRecord>();
  for (const e of evaluateIns) metricsOf.set(e.stage, await e.readJson<MetricsRecord>('metrics.json'));
  const classes = (await readOptionalJson<string[]>(normIn, 'classes.json')) ?? decode?.classes ?? [...metricsOf.values()][0]?.classes ?? [];
  const data: DataInfo = {
    classes,
    ...(fetch && fetchIn ? { fetch: { ...fetch, source_ref: source(fetchIn, 'fetch.json') } } : {}),
    ...(decode && decodeIn ? { decode: { ...decode, source_ref: source(decodeIn, 'decode.json') } } : {}),
    ...(normalization && normIn ? { normalization: { ...normalization, source_ref: source(normIn, 'normalization.json') } } : {}),
  };

  // ---- training
  const trainIns = inputs.ofKind('train');
  const trains: (TrainCurveInput & { record?: TrainRecord; summary?: string; upstream: UpstreamArtifacts })[] = [];
  for (const t of trainIns) {
    const initFrom = typeof t.params.init_from === 'string' ? t.params.init_from : undefined;
    trains.push({
      stage: t.stage,
      ...(initFrom ? { init_from: initFrom } : {}),
      history: await t.readJson<HistoryRecord>('history.json'),
      source: source(t, 'history.json'),
      record: await readOptionalJson<TrainRecord>(t, 'train.json'),
      summary: t.has('summary.txt') ? await readFile(t.path('summary.txt'), 'utf8') : undefined,
      upstream: t,
    });
  }
  const curves = joinCurves(trains);
  const models: ModelInfo[] = [];
  for (const t of trains) {
    if (!t.summary || models.some((m) => m.summary === t.summary)) continue;
    models.push({ stage: t.stage, summary: t.summary, params_total: t.record?.params?.total, source_ref: source(t.upstream, 'summary.txt') });
  }
  const trainings = trains.map((t) =>
    trainingInfo(t.stage, t.upstream.params, t.record, t.history, t.upstream.has('train.json') ? source(t.upstream, 'train.json') : undefined),
  );

  // ---- evaluations, with the test images of the most confident mistakes
  const datasetIn = [normIn, decodeIn].find((u) => u?.has(DATASET_DIR));
  const imageSource: { dataset: string } | { path: string; normalization?: NormalizationRecord } | undefined = datasetIn
    ? { dataset: datasetIn.path(DATASET_DIR) }
    : decodeIn?.has('test_images.npy')
      ? { path: decodeIn.path('test_images.npy') }
      : normIn?.has('test_x.npy')
        ? { path: normIn.path('test_x.npy'), normalization }
        : undefined;
  const evaluationOf = async (stage: string, m: MetricsRecord, ref: Source, ourTestImages = true): Promise<Evaluation> => {
    const shown = m.most_confident_mistakes.slice(0, p.mistakes);
    let images: string[] = [];
    if (imageSource && ourTestImages && shown.length) {
      try {
        const rows = shown.map((x) => x.index);
        images =
          'dataset' in imageSource ? await datasetTestImages(imageSource.dataset, rows) : await rowImages(imageSource.path, rows, imageSource.normalization);
      } catch (err) {
        ctx.log.warn(`test images for ${stage}'s mistakes unavailable: ${(err as Error).message}`);
      }
    }
    return {
      stage,
      model_stage: m.model_stage,
      count: m.count,
      loss: m.test_loss,
      accuracy: m.test_accuracy,
      classes: m.classes,
      per_class: m.per_class,
      ...(m.macro_avg ? { macro_avg: m.macro_avg } : {}),
      confusion_matrix: m.confusion_matrix,
      mistakes: shown.map((x, i) => ({ ...x, ...(images[i] ? { image: images[i] } : {}) })),
      source_ref: ref,
    };
  };
  const own: Evaluation[] = [];
  for (const e of evaluateIns) own.push(await evaluationOf(e.stage, metricsOf.get(e.stage)!, source(e, 'metrics.json')));

  // ---- another pipeline's results in this store (compare_with): the keys the plan named
  const comparedKeys = (ctx.fingerprint.compared ?? {}) as Record<string, string | null>;
  // Their mistakes get test images only when they were computed on this report's normalize result.
  const ourData = normIn ? { stage: normIn.stage, key: normIn.provenance.key } : undefined;
  const compared = await readCompared(ctx.runs, comparedKeys, new Set([...inputs.all.map((u) => u.stage), ctx.stage]), ourData);
  for (const why of compared.missing) ctx.log.warn(`compare_with ${why}`);
  const others: Evaluation[] = [];
  for (const c of compared.evaluations) others.push({ ...(await evaluationOf(c.stage, c.metrics, c.source, c.sameData)), compared: { run_id: c.run_id } });
  const comparedCurves = compared.trains.filter((t) => !trains.some((o) => o.stage === t.stage));
  const curvesAll = comparedCurves.length ? joinCurves([...trains, ...comparedCurves]) : curves;
  const evaluations = [...own, ...others];
  const parents = new Map(trains.map((t) => [t.stage, t.init_from]));
  const comparisons = comparePairs(own, parents).map(([a, b]) => compare(a, b));
  // This pipeline's first-generation evaluations against each compared one.
  const roots = own.filter((e) => !comparisons.some((c) => c.after === e.stage));
  for (const other of others) for (const e of roots) comparisons.push(compare(other, e));

  // ---- augmentation
  const augmentations: AugmentInfo[] = [];
  const assets: RenderedAssets = { svg: {}, contactSheets: {}, previews: {} };
  for (const g of inputs.ofKind('augment')) {
    const rec = await readOptionalJson<AugmentRecord>(g, 'augment.json');
    const previewFiles = (rec?.preview?.files ?? []).filter((f) => g.digest(f) !== undefined);
    const copies = typeof rec?.copies === 'number' ? rec.copies : (rec?.copies?.length ?? 0);
    // Epoch e of a train stage on these copies trains on copy e mod copies.
    const usedBy = trains
      .filter((t) => t.upstream.params.augmented === g.stage)
      .map((t) => {
        const epochs = t.history.epoch?.length ?? t.history.loss?.length ?? 0;
        return { stage: t.stage, epochs, copies_used: Math.min(copies, epochs) };
      });
    augmentations.push({
      stage: g.stage,
      ...(rec?.params ? { params: rec.params } : {}),
      copies,
      ...(rec?.rows !== undefined ? { rows: rec.rows } : {}),
      ...(rec?.preview?.variants !== undefined ? { variants: rec.preview.variants } : {}),
      used_by: usedBy,
      ...(g.has('contact_sheet.png') ? { contact_sheet: source(g, 'contact_sheet.png') } : {}),
      previews: previewFiles.map((f) => source(g, f)),
    });
    if (g.has('contact_sheet.png')) assets.contactSheets[g.stage] = await fileDataUri(g.path('contact_sheet.png'));
    assets.previews[g.stage] = await Promise.all(previewFiles.map(async (f) => [f, await fileDataUri(g.path(f))] as [string, string]));
  }

  // ---- run summary and provenance: this report's inputs, then whatever else the run finished
  const outcomes = new Map(current.stages.map((s) => [s.stage, s]));
  const stages: StageRow[] = inputs.all.map((u) => {
    const o = outcomes.get(u.stage);
    return {
      stage: u.stage,
      kind: u.kind,
      outcome: o && o.key === u.provenance.key ? o.outcome : 'input',
      ...(o ? { run_ms: o.durationMs } : {}),
      compute_ms: u.provenance.durationMs,
      key: u.provenance.key,
      outputs_digest: u.provenance.outputsDigest,
      created_at: u.provenance.createdAt,
      run_id: u.provenance.runId,
      ...(u.provenance.version !== undefined ? { version: u.provenance.version } : {}),
      params: u.params,
      ...(u.provenance.fingerprint ? { fingerprint: u.provenance.fingerprint } : {}),
    };
  });
  for (const s of current.stages) {
    if (!stages.some((r) => r.stage === s.stage))
      stages.push({ stage: s.stage, kind: '(not an input)', outcome: s.outcome, run_ms: s.durationMs, ...(s.key ? { key: s.key } : {}) });
  }

  const history = await collectHistory(
    ctx.runs,
    evaluations.map((e) => e.stage),
    {
      run: current,
      metrics: Object.fromEntries(own.map((e) => [e.stage, { key: e.source_ref.key, accuracy: e.accuracy, loss: e.loss }])),
    },
    p.history,
    new Set([ctx.stage]),
  );

  const firstModel = models[0];
  const report: ReportData = {
    format: REPORT_FORMAT,
    title: p.title,
    generated_at: new Date().toISOString(),
    run: {
      id: current.id,
      started_at: current.startedAt,
      command: current.command,
      wall_ms: Math.max(0, Date.now() - Date.parse(current.startedAt)),
      backends: trains.map((t) => ({
        stage: t.stage,
        ...(t.record?.backend ? { backend: t.record.backend } : {}),
        ...(t.record?.workers ? { workers: t.record.workers } : {}),
        ...(t.record?.versions ? { versions: t.record.versions } : {}),
      })),
    },
    stages,
    data,
    models,
    trainings,
    curves: curvesAll,
    evaluations,
    comparisons,
    augmentations,
    history,
    model_card: modelCard({
      architecture: firstModel ? describeArchitecture(firstModel.summary) : 'not among the report inputs',
      ...(firstModel?.params_total !== undefined ? { params_total: firstModel.params_total } : {}),
      ...(decode?.shape ? { input_shape: decode.shape } : {}),
      classes,
      ...(fetch ? { fetch } : {}),
      ...(decode ? { decode } : {}),
      evaluations: own,
      trainings,
    }),
  };

  // ---- charts
  const specs: [string, VegaLiteSpec][] = [];
  if (curvesAll.points.length) {
    specs.push(['curves-loss', learningCurveSpec(curvesAll.points, curvesAll.phases, 'loss')]);
    specs.push(['curves-accuracy', learningCurveSpec(curvesAll.points, curvesAll.phases, 'accuracy')]);
  }
  for (const e of evaluations) specs.push([`confusion-${e.stage}`, confusionSpec(e.confusion_matrix, e.classes)]);
  for (const c of comparisons) specs.push([`delta-${c.before}-${c.after}`, deltaSpec(c.classes, 'f1', c.before, c.after)]);
  if (history.rows.length > 1) specs.push(['history', historySpec(history.rows)]);
  ctx.progress.start('report charts', specs.length, 'chart');
  for (const [id, spec] of specs) {
    assets.svg[id] = await renderSvg(spec);
    ctx.progress.tick();
  }
  ctx.progress.done();

  // report.json is the data, not the page: mistakes name their test rows, without the pixels.
  await ctx.out.json('report.json', { ...report, evaluations: evaluations.map((e) => ({ ...e, mistakes: e.mistakes.map(({ image: _image, ...m }) => m) })) });
  await writeFile(ctx.out.path('report.md'), renderMarkdown(report));
  await writeFile(ctx.out.path('index.html'), renderHtml(report, assets));
  ctx.log.info(
    `${own.length} evaluation${own.length === 1 ? '' : 's'}${others.length ? ` (+ ${others.length} compared)` : ''}, ${curves.phases.length} train stage${curves.phases.length === 1 ? '' : 's'}, history of ${history.rows.length} run${history.rows.length === 1 ? '' : 's'}`,
  );
}
