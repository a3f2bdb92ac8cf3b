// Pure assembly of report data from upstream records: learning curves joined across `init_from`,
// per-class deltas between evaluations, and the model card. No I/O here (see run.ts).
import { describeKept, phaseOutcome } from './hyperparameters.js';
import type { ClassDelta, Comparison, CurvePoint, Curves, EpochRow, Evaluation, ModelCard, Phase, Source, TrainingInfo } from './model.js';
import type { ClassMetricsRecord, DecodeRecord, FetchRecord, HistoryRecord, TrainRecord } from './records.js';

export interface TrainCurveInput {
  stage: string;
  /** The train stage it started from, if any (`init_from`). */
  init_from?: string;
  history: HistoryRecord;
  source: Source;
  /** A train stage of another pipeline in this store (report `compare_with`). */
  compared?: boolean;
  /** Its train.json: the best epoch, early stopping and the weights kept. */
  record?: TrainRecord;
}

/**
 * Learning curves of every train stage on one epoch axis: a stage that starts from another
 * continues its parent's epochs (phase 2 of the default pipeline is epochs 21–40). A parent that
 * is not among the inputs starts the child at epoch 1, but the child still names it.
 */
export function joinCurves(trains: readonly TrainCurveInput[]): Curves {
  const byStage = new Map(trains.map((t) => [t.stage, t]));
  const offsets = new Map<string, number>();
  const offsetOf = (t: TrainCurveInput, seen: Set<string>): number => {
    const known = offsets.get(t.stage);
    if (known !== undefined) return known;
    const parent = t.init_from ? byStage.get(t.init_from) : undefined;
    // `seen` guards against a malformed cycle in hand-written records; the engine's DAG has none.
    const offset = parent && !seen.has(parent.stage) ? offsetOf(parent, seen.add(t.stage)) + epochCount(parent.history) : 0;
    offsets.set(t.stage, offset);
    return offset;
  };

  const points: CurvePoint[] = [];
  const phases: Phase[] = [];
  const epochs: EpochRow[] = [];
  for (const t of trains) {
    const offset = offsetOf(t, new Set());
    const h = t.history;
    const n = epochCount(h);
    const series: [CurvePoint['metric'], CurvePoint['split'], (number | null)[] | undefined][] = [
      ['loss', 'training', h.loss],
      ['loss', 'validation', h.val_loss],
      ['accuracy', 'training', h.acc],
      ['accuracy', 'validation', h.val_acc],
    ];
    const finite = (values: (number | null)[] | undefined, i: number) => {
      const v = values?.[i];
      return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    };
    for (let i = 0; i < n; i++) {
      const stageEpoch = h.epoch[i] ?? i + 1;
      for (const [metric, split, values] of series) {
        const value = finite(values, i);
        if (value !== undefined) {
          points.push({ stage: t.stage, epoch: offset + stageEpoch, stage_epoch: stageEpoch, metric, split, value, ...(t.compared ? { compared: true } : {}) });
        }
      }
      const row: EpochRow = { stage: t.stage, epoch: offset + stageEpoch, stage_epoch: stageEpoch };
      for (const k of ['loss', 'acc', 'val_loss', 'val_acc', 'lr', 'seconds'] as const) {
        const v = finite(h[k], i);
        if (v !== undefined) row[k] = v;
      }
      epochs.push(t.compared ? { ...row, compared: true } : row);
    }
    const outcome = phaseOutcome(t.record, h);
    if (n > 0)
      phases.push({
        stage: t.stage,
        ...(t.init_from ? { parent: t.init_from } : {}),
        first: offset + 1,
        last: offset + n,
        ...(t.compared ? { compared: true } : {}),
        ...(outcome ? { outcome } : {}),
      });
  }
  phases.sort((a, b) => a.first - b.first || a.stage.localeCompare(b.stage));
  return { points, phases, epochs, sources: trains.map((t) => t.source) };
}

function epochCount(h: HistoryRecord): number {
  return Math.max(h.epoch?.length ?? 0, h.loss?.length ?? 0);
}

/** Per-class precision/recall/F1 of `after` minus `before`, matched by class name. */
export function classDeltas(before: readonly ClassMetricsRecord[], after: readonly ClassMetricsRecord[]): ClassDelta[] {
  const old = new Map(before.map((m) => [m.class, m]));
  const out: ClassDelta[] = [];
  for (const b of after) {
    const a = old.get(b.class);
    if (!a) continue;
    const pick = (m: ClassMetricsRecord) => ({ precision: m.precision, recall: m.recall, f1: m.f1 });
    out.push({
      class: b.class,
      before: pick(a),
      after: pick(b),
      delta: { precision: b.precision - a.precision, recall: b.recall - a.recall, f1: b.f1 - a.f1 },
    });
  }
  return out;
}

/**
 * Which evaluations to show side by side: each evaluation against the nearest evaluated ancestor
 * of its model (train_aug → init_from train → evaluate), so phase 2 reads against phase 1. When no
 * model descends from another, every later evaluation is compared with the first.
 */
export function comparePairs(evaluations: readonly Evaluation[], parents: ReadonlyMap<string, string | undefined>): [Evaluation, Evaluation][] {
  const byModel = new Map<string, Evaluation>();
  for (const e of evaluations) if (!byModel.has(e.model_stage)) byModel.set(e.model_stage, e);
  const pairs: [Evaluation, Evaluation][] = [];
  for (const e of evaluations) {
    const seen = new Set<string>([e.model_stage]);
    let model = parents.get(e.model_stage);
    while (model && !seen.has(model)) {
      const ancestor = byModel.get(model);
      if (ancestor && ancestor !== e) {
        pairs.push([ancestor, e]);
        break;
      }
      seen.add(model);
      model = parents.get(model);
    }
  }
  if (pairs.length === 0 && evaluations.length > 1) for (const e of evaluations.slice(1)) pairs.push([evaluations[0]!, e]);
  return pairs;
}

export function compare(before: Evaluation, after: Evaluation): Comparison {
  const classes = classDeltas(before.per_class, after.per_class);
  return {
    before: before.stage,
    after: after.stage,
    accuracy: { before: before.accuracy, after: after.accuracy, delta: after.accuracy - before.accuracy },
    loss: { before: before.loss, after: after.loss, delta: after.loss - before.loss },
    classes,
    hurt: classes
      .filter((c) => c.delta.f1 < 0)
      .sort((a, b) => a.delta.f1 - b.delta.f1)
      .map((c) => c.class),
  };
}

/** The classes a model is weakest on (lowest F1), for the model card's limitations. */
export function weakestClasses(perClass: readonly ClassMetricsRecord[], count = 3): ClassMetricsRecord[] {
  return [...perClass].sort((a, b) => a.f1 - b.f1 || a.class.localeCompare(b.class)).slice(0, count);
}

export interface ModelCardInput {
  architecture: string;
  params_total?: number;
  input_shape?: number[];
  classes: string[];
  fetch?: FetchRecord;
  decode?: DecodeRecord;
  evaluations: readonly Evaluation[];
  /** The report's train stages: the card takes the counts and kept epoch of the one it describes. */
  trainings?: readonly TrainingInfo[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * A model card in the spirit of Mitchell et al. (2019): what it is, what it is for, where it fails.
 * It describes the last evaluated model as its train stage kept it (best or last epoch), with the
 * images that train stage trained on (the training split less the validation images).
 */
export function modelCard(input: ModelCardInput): ModelCard {
  const final = input.evaluations[input.evaluations.length - 1];
  const training = final ? input.trainings?.find((t) => t.stage === final.model_stage) : undefined;
  const shape = input.input_shape?.length ? `${input.input_shape.join('×')} images` : "images of the training data's size";
  const splitTotal = input.decode?.counts?.train?.total;
  const testTotal = final?.count ?? input.decode?.counts?.test?.total;
  const n = (x: number) => x.toLocaleString('en-US');
  const trainedOn =
    training?.train_count !== undefined
      ? `trained on ${n(training.train_count)} images${training.val_count ? ` (${n(training.val_count)} more held out for validation)` : ''}`
      : splitTotal !== undefined
        ? `${n(splitTotal)} images in the training split (training and validation)`
        : undefined;
  const k = input.classes.length;
  const data = [
    input.fetch?.source ? `source ${input.fetch.source}` : undefined,
    trainedOn,
    testTotal !== undefined ? `${n(testTotal)} test images` : undefined,
    k ? `${k} classes (${input.classes.join(', ')})` : undefined,
  ]
    .filter(Boolean)
    .join('; ');

  const limitations = [
    `Inputs are ${shape}; anything else is resized to that, losing detail. It has seen only these ${k || 'few'} classes and assigns every input to one of them, with no "none of these" answer.`,
  ];
  if (final) {
    const better = input.evaluations.filter((e) => e.accuracy > final.accuracy).sort((a, b) => b.accuracy - a.accuracy)[0];
    if (better) {
      limitations.push(
        `It is not the best model of this report: ${better.model_stage} (${better.stage}) scored higher on the test images, accuracy ${pct(better.accuracy)} against ${pct(final.accuracy)}. This card describes the last one, ${final.model_stage}.`,
      );
    }
    const weak = weakestClasses(final.per_class);
    limitations.push(
      `Measured on ${final.count.toLocaleString('en-US')} test images (${final.stage}): accuracy ${pct(final.accuracy)}, so about ${Math.round((1 - final.accuracy) * 100)} in 100 predictions are wrong.`,
    );
    if (weak.length) {
      limitations.push(
        `Weakest classes: ${weak.map((w) => `${w.class} (F1 ${w.f1.toFixed(3)}, recall ${w.recall.toFixed(3)})`).join(', ')}. Errors are not spread evenly: check the confusion matrix before trusting a prediction of these.`,
      );
    }
    const top = final.mistakes[0];
    if (top) {
      limitations.push(
        `High confidence does not mean correct: the most confident mistake predicted "${top.predicted_class}" with probability ${top.confidence.toFixed(3)} for an image of class "${top.true_class}". The probabilities are not calibrated.`,
      );
    }
  }
  limitations.push(
    'The test images come from the same source and era as the training images: accuracy on photographs from other cameras, places or times will be lower.',
  );

  const kept = training?.outcome ? describeKept(training.outcome) : undefined;
  const stopped = training?.outcome?.stopped_after;
  return {
    name: final ? `${final.model_stage} (evaluated by ${final.stage})` : 'no evaluated model',
    ...(kept ? { weights: `${kept}${stopped !== undefined ? `; training stopped early after epoch ${stopped}` : ''}` } : {}),
    architecture: input.architecture,
    ...(input.params_total !== undefined ? { params_total: input.params_total } : {}),
    data: data || 'not among the report inputs',
    metrics: input.evaluations.map((e) => ({ stage: e.stage, accuracy: e.accuracy, loss: e.loss })),
    intended_use: [
      'Teaching, benchmarking and comparing training recipes on small labelled image sets.',
      'A baseline for a retraining pipeline: the numbers above are what a change must beat.',
    ],
    limitations,
    ethics: [
      'This is a small image classifier for coarse object categories. It is not fit for recognising, identifying or tracking people, for facial recognition, or for any decision about a person (access, employment, credit, policing, health).',
      'Image datasets collected from the web can contain people photographed without their consent; their labels reflect the choices and biases of whoever labelled them. Per-class errors above show the model treats categories unequally; for images of people such gaps become unequal treatment of groups.',
      'Before using a model like this on new images, measure it on data from the population it will see, per class (and per group where people are involved), and keep a person in the loop for any consequential use.',
    ],
  };
}
