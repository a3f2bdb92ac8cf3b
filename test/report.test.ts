// The report stage's data assembly (pure functions on small fixtures), its history across runs,
// chart specs and rendering, and whole reports built by the stage over fixture upstream outputs.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyChange, RunHistory, RunSummary, StoredStageResult } from '../engine/contract.js';
import { classDeltas, compare, comparePairs, joinCurves, modelCard, weakestClasses } from '../lib/report/assemble.js';
import { confusionSpec, deltaSpec, learningCurveSpec } from '../lib/report/charts.js';
import { collectHistory, describeChanges } from '../stages/report/history.js';
import { epochRange, esc } from '../lib/report/html.js';
import { describeOutcome, trainingInfo } from '../lib/report/hyperparameters.js';
import { toPixels } from '../lib/report/images.js';
import type { Evaluation, ReportData } from '../lib/report/model.js';
import { describeArchitecture } from '../stages/report/run.js';
import { renderSvg } from '../lib/report/svg.js';
import { reportStage } from '../stages/report/report.js';
import { decodePng } from '../lib/images/png.js';
import { fakeRunHistory, runStage } from './helpers/stage-context.js';
import { FIXTURE_CLASSES, PHASE1_PREDICTIONS, PHASE2_PREDICTIONS, TEST_LABELS, matrixOf, pixel, reportFixture, SIDE } from './helpers/report-fixtures.js';

const history = (epochs: number, base: number) => ({
  epoch: Array.from({ length: epochs }, (_, i) => i + 1),
  loss: Array.from({ length: epochs }, (_, i) => base - i * 0.1),
  acc: Array.from({ length: epochs }, (_, i) => 0.2 + i * 0.1),
  val_loss: Array.from({ length: epochs }, (_, i) => base - i * 0.05),
  val_acc: Array.from({ length: epochs }, (_, i) => 0.25 + i * 0.1),
});
const src = (stage: string) => ({ stage, key: `k-${stage}`, file: 'history.json' });

describe('learning curves joined across init_from', () => {
  test('a stage started from another continues its epoch axis; chains add up', () => {
    const curves = joinCurves([
      { stage: 'train', history: history(20, 2), source: src('train') },
      { stage: 'train_aug', init_from: 'train', history: history(20, 1), source: src('train_aug') },
      { stage: 'finetune', init_from: 'train_aug', history: history(5, 0.8), source: src('finetune') },
    ]);
    expect(curves.phases).toEqual([
      { stage: 'train', first: 1, last: 20 },
      { stage: 'train_aug', parent: 'train', first: 21, last: 40 },
      { stage: 'finetune', parent: 'train_aug', first: 41, last: 45 },
    ]);
    const aug = curves.points.filter((p) => p.stage === 'train_aug' && p.metric === 'loss' && p.split === 'training');
    expect(aug.map((p) => p.epoch)).toEqual(Array.from({ length: 20 }, (_, i) => 21 + i));
    expect(aug[0]).toMatchObject({ stage_epoch: 1, value: 1 });
    // 4 series (loss/acc × training/validation) per epoch.
    expect(curves.points).toHaveLength(4 * 45);
  });

  test('children listed before their parent still continue it; a parent that is not an input starts at 1', () => {
    const curves = joinCurves([
      { stage: 'b', init_from: 'a', history: history(2, 1), source: src('b') },
      { stage: 'a', history: history(3, 2), source: src('a') },
      { stage: 'c', init_from: 'elsewhere', history: history(2, 1), source: src('c') },
    ]);
    expect(curves.phases.find((p) => p.stage === 'b')).toEqual({ stage: 'b', parent: 'a', first: 4, last: 5 });
    expect(curves.phases.find((p) => p.stage === 'c')).toEqual({ stage: 'c', parent: 'elsewhere', first: 1, last: 2 });
  });

  test('per-epoch rows carry the learning rate and seconds; a phase carries what its train.json says about the best epoch', () => {
    const h = { ...history(3, 2), lr: [0.01, 0.005, null], seconds: [2, 1.5, 1.25] };
    const record = {
      epochs: 5,
      epochs_trained: 3,
      best: { monitor: 'val_loss', mode: 'min', min_delta: 0, epoch: 2, value: 1.95 },
      early_stopping: { patience: 1, stopped_after_epoch: 3 },
      kept_weights: 'best' as const,
      kept_epoch: 2,
    };
    const curves = joinCurves([{ stage: 't', history: h, source: src('t'), record }]);
    expect(curves.epochs[0]).toEqual({ stage: 't', epoch: 1, stage_epoch: 1, loss: 2, acc: 0.2, val_loss: 2, val_acc: 0.25, lr: 0.01, seconds: 2 });
    expect(curves.epochs[2]).not.toHaveProperty('lr'); // not recorded: left out, not 0
    expect(curves.phases[0]!.outcome).toEqual({
      epochs: 5,
      trained: 3,
      best: { monitor: 'val_loss', mode: 'min', epoch: 2, value: 1.95 },
      stopped_after: 3,
      kept: { weights: 'best', epoch: 2 },
    });
    expect(describeOutcome(curves.phases[0]!.outcome)).toBe(
      'best val_loss 1.9500 at epoch 2; stopped early after epoch 3; model: epoch 2 of 3 trained (the best by val_loss, 1.9500)',
    );
    // A train.json from before best epochs were recorded: the epochs it trained, nothing invented.
    expect(joinCurves([{ stage: 't', history: h, source: src('t'), record: { epochs: 3 } }]).phases[0]!.outcome).toEqual({ epochs: 3, trained: 3 });
  });

  test('epochs without a measurement (no validation set) leave gaps, not zeros', () => {
    const h = { epoch: [1, 2], loss: [1, 0.9], acc: [0.1, 0.2], val_loss: [null, null], val_acc: [null, null] };
    const curves = joinCurves([{ stage: 't', history: h, source: src('t') }]);
    expect(curves.points.filter((p) => p.split === 'validation')).toEqual([]);
    expect(curves.points).toHaveLength(4);
  });
});

function evaluation(stage: string, model: string, predicted: number[]): Evaluation {
  const matrix = matrixOf(TEST_LABELS, predicted, 3);
  const per_class = FIXTURE_CLASSES.map((c, i) => {
    const tp = matrix[i]![i]!;
    const support = matrix[i]!.reduce((a, b) => a + b, 0);
    const pred = matrix.reduce((a, r) => a + r[i]!, 0);
    const precision = pred ? tp / pred : 0;
    const recall = tp / support;
    return { class: c, precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0, support };
  });
  const accuracy = predicted.filter((p, i) => p === TEST_LABELS[i]).length / TEST_LABELS.length;
  return {
    stage,
    model_stage: model,
    count: 12,
    loss: 1 - accuracy,
    accuracy,
    classes: FIXTURE_CLASSES,
    per_class,
    confusion_matrix: matrix,
    mistakes: [],
    source_ref: { stage, key: `k-${stage}`, file: 'metrics.json' },
  };
}

describe('per-class deltas between evaluations', () => {
  const before = evaluation('evaluate', 'train', PHASE1_PREDICTIONS);
  const after = evaluation('evaluate_aug', 'train_aug', PHASE2_PREDICTIONS);

  test('deltas per class, matched by name, and the hurt classes worst first', () => {
    const c = compare(before, after);
    expect(c.accuracy.before).toBeCloseTo(9 / 12);
    expect(c.accuracy.after).toBeCloseTo(10 / 12);
    const byClass = Object.fromEntries(c.classes.map((d) => [d.class, d]));
    expect(byClass.cat!.before.f1).toBeCloseTo(2 / 3);
    expect(byClass.cat!.after.f1).toBeCloseTo(1);
    expect(byClass.dog!.delta.f1).toBeCloseTo(2 / 3 - 0.75);
    expect(byClass.ship!.delta.f1).toBeCloseTo(0.8 - 6 / 7);
    expect(byClass.ship!.delta.recall).toBeCloseTo(0.25);
    // dog lost 0.083 F1, ship 0.057: dog first. cat improved: not hurt.
    expect(c.hurt).toEqual(['dog', 'ship']);
  });

  test('classes missing on one side are left out, not compared with zero', () => {
    const d = classDeltas(before.per_class.slice(0, 2), after.per_class);
    expect(d.map((x) => x.class)).toEqual(['cat', 'dog']);
  });

  test('pairs follow model lineage (train_aug ← train), else compare with the first evaluation', () => {
    const parents = new Map<string, string | undefined>([
      ['train', undefined],
      ['train_aug', 'train'],
    ]);
    expect(comparePairs([before, after], parents).map(([a, b]) => [a.stage, b.stage])).toEqual([['evaluate', 'evaluate_aug']]);
    // Grandparent evaluated, parent not: still paired with the nearest evaluated ancestor.
    const ft = evaluation('evaluate_ft', 'finetune', PHASE2_PREDICTIONS);
    const withFt = new Map(parents).set('finetune', 'train_aug');
    expect(comparePairs([before, ft], withFt).map(([a, b]) => [a.stage, b.stage])).toEqual([['evaluate', 'evaluate_ft']]);
    // Unrelated models: each later one against the first.
    const other = evaluation('evaluate_b', 'model_b', PHASE2_PREDICTIONS);
    expect(comparePairs([before, other], new Map()).map(([a, b]) => [a.stage, b.stage])).toEqual([['evaluate', 'evaluate_b']]);
    expect(comparePairs([before], parents)).toEqual([]);
  });

  test("the model card describes the model as its train stage kept it, with train.json's counts, and names a better model", () => {
    const record = {
      train_count: 40000,
      val_count: 10000,
      epochs: 20,
      epochs_trained: 12,
      best: { monitor: 'val_loss', mode: 'min', epoch: 7, value: 0.8123 },
      early_stopping: { patience: 5, stopped_after_epoch: 12 },
      kept_weights: 'best' as const,
      kept_epoch: 7,
    };
    const trainings = [trainingInfo('train_aug', {}, record, undefined)];
    const decode = { counts: { train: { total: 50000, per_class: {} }, test: { total: 10000, per_class: {} } } };
    const card = modelCard({ architecture: 'cnn', classes: FIXTURE_CLASSES, decode, evaluations: [before, after], trainings });
    expect(card.name).toBe('train_aug (evaluated by evaluate_aug)');
    expect(card.data).toContain('trained on 40,000 images (10,000 more held out for validation); 12 test images');
    expect(card.data).not.toContain('50,000');
    expect(card.weights).toBe('epoch 7 of 12 trained (the best by val_loss, 0.8123); training stopped early after epoch 12');
    expect(card.limitations.join(' ')).not.toMatch(/not the best model/);
    // Without a train.json for it, the training split is named for what it is.
    expect(modelCard({ architecture: 'cnn', classes: FIXTURE_CLASSES, decode, evaluations: [before, after] }).data).toContain(
      '50,000 images in the training split (training and validation)',
    );
    // The last model evaluated worse than an earlier one: the card says so.
    const worse = modelCard({ architecture: 'cnn', classes: FIXTURE_CLASSES, decode, evaluations: [after, before], trainings });
    expect(worse.name).toBe('train (evaluated by evaluate)');
    expect(worse.weights).toBeUndefined();
    expect(worse.limitations.join(' ')).toContain(
      'It is not the best model of this report: train_aug (evaluate_aug) scored higher on the test images, accuracy 83.3% against 75.0%. This card describes the last one, train.',
    );
  });

  test('the model card names the weakest classes measured and says what the model is not for', () => {
    const card = modelCard({ architecture: 'cnn', classes: FIXTURE_CLASSES, input_shape: [32, 32, 3], evaluations: [before, after] });
    expect(weakestClasses(after.per_class).map((c) => c.class)).toEqual(['dog', 'ship', 'cat']);
    expect(card.limitations.join(' ')).toMatch(/Weakest classes: dog \(F1 0\.667/);
    expect(card.limitations.join(' ')).toMatch(/32×32×3/);
    expect(card.ethics.join(' ')).toMatch(/not fit for .*facial recognition/);
    expect(card.metrics).toEqual([
      { stage: 'evaluate', accuracy: before.accuracy, loss: before.loss },
      { stage: 'evaluate_aug', accuracy: after.accuracy, loss: after.loss },
    ]);
  });
});

describe('history across runs', () => {
  const run = (id: string, stages: [string, string][], outcome: RunSummary['outcome'] = 'ok'): RunSummary => ({
    id,
    command: ['run'],
    startedAt: `2026-01-0${id.slice(-1)}T00:00:00.000Z`,
    outcome,
    stages: stages.map(([stage, key]) => ({ stage, outcome: 'ran', key, durationMs: 1 })),
  });
  const accuracyOf: Record<string, number> = { e1: 0.5, e2: 0.6 };
  const result = (key: string): StoredStageResult | undefined =>
    key in accuracyOf
      ? {
          stage: 'evaluate',
          kind: 'evaluate',
          params: {},
          provenance: { key, outputsDigest: 'd', createdAt: '', durationMs: 0, runId: '' },
          has: (n) => n === 'metrics.json',
          readJson: async <T>() => ({ test_accuracy: accuracyOf[key], test_loss: 1 - accuracyOf[key]! }) as T,
        }
      : undefined;
  const changes: Record<string, KeyChange[]> = {
    'f1>f2': [{ what: 'runtime', text: 'runtime changed: validators.etag "a" → "b"' }],
    'd1>d2': [{ what: 'inputs', text: 'input changed: stage fetch (f1 → f2)' }],
    'e1>e2': [{ what: 'inputs', text: 'input changed: stage decode (d1 → d2)' }],
    'e2>e3': [{ what: 'params', text: 'params changed: top_mistakes 20 → 5' }],
  };
  const runs = (earlier: RunSummary[]): RunHistory =>
    fakeRunHistory({
      earlier: async () => earlier,
      result: async (key) => result(key),
      changes: async (a, b) => changes[`${a}>${b}`] ?? [],
    });

  test('metrics of earlier runs by key, what changed between them, the current run last', async () => {
    const earlier = [
      {
        ...run('r1', [
          ['fetch', 'f1'],
          ['decode', 'd1'],
          ['evaluate', 'e1'],
        ]),
        scheduled: 'nightly',
        promotion: { decision: 'promoted', reason: 'no current model' },
      },
      run('r2', [['fetch', 'f1']]), // ran no evaluate stage: not a history row
      {
        ...run('r3', [
          ['fetch', 'f2'],
          ['decode', 'd2'],
          ['evaluate', 'e2'],
        ]),
        experiment: 'train.batch_size=64',
      },
    ];
    const current = run(
      'r4',
      [
        ['fetch', 'f2'],
        ['decode', 'd2'],
        ['evaluate', 'e3'],
      ],
      'running',
    );
    const h = await collectHistory(runs(earlier), ['evaluate'], { run: current, metrics: { evaluate: { key: 'e3', accuracy: 0.7, loss: 0.3 } } }, 10);
    expect(h.covers).toEqual(['r1', 'r3', 'r4']);
    expect(h.omitted).toBe(1);
    expect(h.rows.map((r) => r.metrics.evaluate?.accuracy)).toEqual([0.5, 0.6, 0.7]);
    expect(h.rows[0]!.changes).toEqual([]);
    expect(h.rows[0]).toMatchObject({ scheduled: 'nightly', promotion: { decision: 'promoted', reason: 'no current model' } });
    expect(h.rows[1]).toMatchObject({ experiment: 'train.batch_size=64' }); // a sweep's experiment says which
    // New data at fetch explains decode and evaluate: one line plus the downstream stages.
    expect(h.rows[1]!.changes).toEqual(['fetch: runtime changed: validators.etag "a" → "b"', 'downstream (inputs changed): decode, evaluate']);
    expect(h.rows[2]!.changes).toEqual(['evaluate: params changed: top_mistakes 20 → 5']);
    expect(h.rows[2]!.current).toBe(true);
  });

  test('the limit keeps the latest runs; a result gone from the store shows as gone, not as zero', async () => {
    const earlier = [run('r1', [['evaluate', 'e1']]), run('r2', [['evaluate', 'gone']]), run('r3', [['evaluate', 'e2']])];
    const current = run('r4', [['evaluate', 'e2']], 'running');
    const h = await collectHistory(runs(earlier), ['evaluate'], { run: current, metrics: { evaluate: { key: 'e2', accuracy: 0.6, loss: 0.4 } } }, 2);
    expect(h.covers).toEqual(['r2', 'r3', 'r4']);
    expect(h.omitted).toBe(1);
    expect(h.rows[0]!.metrics.evaluate).toBeUndefined();
    expect(h.rows[1]!.changes).toEqual(['evaluate: result gone → e2 (earlier result no longer in the store)']);
    expect(h.rows[2]!.changes).toEqual([]);
    const none = await collectHistory(runs(earlier), ['evaluate'], { run: current, metrics: {} }, 0);
    expect(none.covers).toEqual(['r4']);
    expect(none.omitted).toBe(3);
  });

  test('runs that found everything cached fold into the row they repeat', async () => {
    const earlier = [run('r1', [['evaluate', 'e1']]), run('r2', [['evaluate', 'e1']]), run('r3', [['evaluate', 'e1']])];
    const current = run('r4', [['evaluate', 'e1']], 'running');
    const h = await collectHistory(runs(earlier), ['evaluate'], { run: current, metrics: { evaluate: { key: 'e1', accuracy: 0.5, loss: 0.5 } } }, 10);
    expect(h.rows.map((r) => [r.run_id, r.repeated])).toEqual([
      ['r1', ['r2', 'r3']],
      ['r4', []],
    ]);
    expect(h.covers).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(h.rows[1]!.changes).toEqual([]);
  });

  test("the report's own stage makes no row and no change line", async () => {
    const earlier = [
      run('r1', [
        ['evaluate', 'e1'],
        ['report', 'p1'],
      ]),
      run('r2', [
        ['evaluate', 'e1'],
        ['report', 'p2'],
      ]),
    ];
    const current = run('r3', [['evaluate', 'e1']], 'running');
    const h = await collectHistory(
      runs(earlier),
      ['evaluate'],
      { run: current, metrics: { evaluate: { key: 'e1', accuracy: 0.5, loss: 0.5 } } },
      10,
      new Set(['report']),
    );
    expect(h.rows.map((r) => [r.run_id, r.repeated, r.changes])).toEqual([
      ['r1', ['r2'], []],
      ['r3', [], []],
    ]);
  });

  test('a stage the previous run did not run is compared with its last key, not called new', async () => {
    // r3 ran only evaluate (a subset, or another pipeline's run in between); r1, beyond the
    // limit, is the last run that had train.
    const earlier = [
      run('r1', [
        ['fetch', 'f1'],
        ['train', 't1'],
        ['evaluate', 'e1'],
      ]),
      run('r2', [
        ['fetch', 'f1'],
        ['evaluate', 'e2'],
      ]),
      run('r3', [['evaluate', 'e2']]),
    ];
    const current = run(
      'r4',
      [
        ['fetch', 'f1'],
        ['train', 't1'],
        ['evaluate', 'e3'],
        ['lint', 'l1'],
      ],
      'running',
    );
    const h = await collectHistory(runs(earlier), ['evaluate'], { run: current, metrics: { evaluate: { key: 'e3', accuracy: 0.7, loss: 0.3 } } }, 2);
    expect(h.rows.map((r) => r.run_id)).toEqual(['r2', 'r3', 'r4']);
    expect(h.rows[1]!.changes).toEqual([]);
    expect(h.rows[2]!.changes).toEqual(['evaluate: params changed: top_mistakes 20 → 5', 'lint: new in this run']);
  });

  test('only input changes (a dep file changed): those lines are kept', async () => {
    const lines = await describeChanges(
      runs([]),
      new Map([['decode', 'd1']]),
      new Map([
        ['decode', 'd2'],
        ['new_stage', 'x'],
      ]),
    );
    expect(lines).toEqual(['decode: input changed: stage fetch (f1 → f2)', 'new_stage: new in this run']);
  });
});

describe('charts', () => {
  test('the confusion heatmap has one cell per (true, predicted) pair with its count', async () => {
    const m = matrixOf(TEST_LABELS, PHASE1_PREDICTIONS, 3);
    const spec = confusionSpec(m, FIXTURE_CLASSES) as { data: { values: { true: string; predicted: string; count: number }[] } };
    expect(spec.data.values).toHaveLength(9);
    expect(spec.data.values.find((v) => v.true === 'cat' && v.predicted === 'dog')!.count).toBe(1);
    const svg = await renderSvg(spec);
    const cells = [...svg.matchAll(/aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="rect mark"/g)].map((x) => x[1]);
    expect(cells).toHaveLength(9);
    expect(cells).toContain('true cat, predicted dog: 1');
  });

  test('learning curves mark where a continued stage starts; deltas colour losses apart from gains', () => {
    const curves = joinCurves([
      { stage: 'train', history: history(3, 2), source: src('train') },
      { stage: 'train_aug', init_from: 'train', history: history(2, 1), source: src('train_aug') },
    ]);
    const spec = learningCurveSpec(curves.points, curves.phases, 'loss') as { layer: { data?: { values: { epoch: number; text: string }[] } }[] };
    const rules = spec.layer.find((l) => l.data)!.data!.values;
    expect(rules).toEqual([{ epoch: 3.5, text: 'train_aug →' }]);
    const c = compare(evaluation('a', 'm', PHASE1_PREDICTIONS), evaluation('b', 'n', PHASE2_PREDICTIONS));
    const d = deltaSpec(c.classes, 'f1', 'a', 'b') as { data: { values: { class: string; sign: string }[] } };
    expect(Object.fromEntries(d.data.values.map((v) => [v.class, v.sign]))).toEqual({ cat: 'better', dog: 'worse', ship: 'worse' });
  });
});

describe('learning curve marks', () => {
  test('one colour per stage and split; a one-epoch phase gets a visible mark and says "epoch 4"; the best epoch is ringed', async () => {
    const record = { epochs_trained: 3, best: { monitor: 'val_loss', mode: 'min', epoch: 2, value: 1.95 }, kept_weights: 'best' as const, kept_epoch: 2 };
    const curves = joinCurves([
      { stage: 'train', history: history(3, 2), source: src('train'), record },
      { stage: 'train_aug', init_from: 'train', history: history(1, 1), source: src('train_aug') },
    ]);
    type Layer = { mark: { shape?: string }; transform?: unknown; data?: { values: { epoch: number; value: number; label: string }[] } };
    const spec = learningCurveSpec(curves.points, curves.phases, 'loss') as {
      layer: (Layer & { encoding: { color?: { scale: { domain: string[]; range: string[] } } } })[];
      data: { values: { stage: string; epoch: number; single: boolean }[] };
    };
    const scale = spec.layer[0]!.encoding.color!.scale;
    expect(scale.domain).toEqual(['train · training', 'train · validation', 'train_aug · training', 'train_aug · validation']);
    expect(new Set(scale.range).size).toBe(4);
    expect(spec.data.values.filter((v) => v.single).map((v) => [v.stage, v.epoch])).toEqual([
      ['train_aug', 4],
      ['train_aug', 4],
    ]);
    expect(spec.layer.find((l) => l.mark.shape === 'diamond')!.transform).toEqual([{ filter: 'datum.single' }]);
    expect(spec.layer.find((l) => l.mark.shape === 'circle')!.data!.values).toEqual([
      { epoch: 2, value: 1.95, label: 'train: best val_loss 1.9500 at its epoch 2 (weights kept)' },
    ]);
    expect(epochRange(curves.phases[1]!)).toBe('epoch 4');
    expect(epochRange(curves.phases[0]!)).toBe('epochs 1–3');
    // val_loss is not drawn in the accuracy chart: no ring there.
    const accuracy = learningCurveSpec(curves.points, curves.phases, 'accuracy') as { layer: Layer[] };
    expect(accuracy.layer.some((l) => l.mark.shape === 'circle')).toBe(false);
    const svg = await renderSvg(spec);
    expect(svg).toContain('aria-label="train: best val_loss 1.9500 at its epoch 2 (weights kept)"');
    expect(svg).toContain('aria-label="train_aug epoch 1 (overall 4): validation loss 1.0000"');
  });
});

describe('small pieces', () => {
  test('HTML escaping covers markup and attribute quotes', () => {
    expect(esc(`<script>"x" & 'y'</script>`)).toBe('&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;');
  });

  test('standardized floats invert to the original pixels', () => {
    const mean = [0.5, 0.4, 0.3];
    const std = [0.2, 0.25, 0.3];
    const original = Uint8Array.from([0, 17, 255, 128, 64, 3]);
    const data = Float32Array.from(original, (v, i) => (v / 255 - mean[i % 3]!) / std[i % 3]!);
    expect([...toPixels({ dtype: 'float32', shape: [1, 2, 3], data }, { scale: 1 / 255, mean, std })]).toEqual([...original]);
  });

  test('architecture in words from a Keras summary', () => {
    const summary =
      'Layer (type)   Output Shape\nconv2d_1 (Conv2D)            (None, 32, 32, 32)        896\nactivation_1 (Activation)    (None, 32, 32, 32)        0\ndense_1 (Dense)              (None, 10)                5130\n';
    expect(describeArchitecture(summary)).toBe('sequential network: 1 Conv2D, 1 Dense layers (first layer output 32×32×32)');
  });
});

describe('the report stage over upstream outputs', () => {
  let full: Awaited<ReturnType<typeof reportFixture>>;
  let single: Awaited<ReturnType<typeof reportFixture>>;
  const outDirs: string[] = [];
  beforeAll(async () => {
    full = await reportFixture('full');
    single = await reportFixture('single');
  });
  afterAll(async () => {
    for (const d of [full?.root, single?.root, ...outDirs]) if (d) await rm(d, { recursive: true, force: true });
  });

  test('the default pipeline shape: every section, the phases compared, provenance for every figure', async () => {
    const run = await runStage(reportStage, { title: 'Fixture <report>', mistakes: 2 }, full.inputs, {
      runs: fakeRunHistory({
        current: () => ({
          id: 'run-now',
          command: ['run'],
          startedAt: new Date(Date.now() - 5000).toISOString(),
          outcome: 'running',
          stages: [
            { stage: 'train', outcome: 'ran', key: 'key-of-train', durationMs: 1200 },
            { stage: 'evaluate', outcome: 'cached', key: 'key-of-evaluate', durationMs: 3 },
          ],
        }),
      }),
    });
    outDirs.push(run.outDir);
    const data = JSON.parse(await readFile(join(run.outDir, 'report.json'), 'utf8')) as ReportData;
    expect(data.title).toBe('Fixture <report>');
    expect(data.curves.phases.map((p) => [p.stage, p.first, p.last])).toEqual([
      ['train', 1, 3],
      ['train_aug', 4, 6],
    ]);
    expect(data.comparisons.map((c) => [c.before, c.after, c.hurt])).toEqual([['evaluate', 'evaluate_aug', ['dog', 'ship']]]);
    expect(data.evaluations.map((e) => e.mistakes.map((m) => m.index))).toEqual([
      [3, 7],
      [7, 6],
    ]);
    // report.json is data: no embedded pixels.
    expect(JSON.stringify(data)).not.toMatch(/data:image/);
    expect(data.data.decode?.skipped_corrupt).toBe(1);
    // The data section says what changed since the previous decode (a growing folder's retrain).
    expect(await readFile(join(run.outDir, 'index.html'), 'utf8')).toContain(
      '70 images added, 2 changed, 1 removed since the previous decode (72 decoded, 6,998 kept as they were)',
    );
    expect(await readFile(join(run.outDir, 'report.md'), 'utf8')).toContain('70 images added, 2 changed, 1 removed since the previous decode');
    expect(data.run.wall_ms).toBeGreaterThanOrEqual(5000);
    // Outcomes in this run where the record has them, `input` where it does not.
    const outcome = Object.fromEntries(data.stages.map((s) => [s.stage, s.outcome]));
    expect(outcome).toMatchObject({ train: 'ran', evaluate: 'cached', fetch: 'input' });
    // Provenance: every input with its key and outputs digest; figures name the file digest.
    expect(data.stages.map((s) => s.stage).sort()).toEqual(Object.keys(full.inputs).sort());
    for (const s of data.stages) expect(s).toMatchObject({ key: `key-of-${s.stage}`, outputs_digest: `digest-of-${s.stage}` });
    expect(data.evaluations[0]!.source_ref).toEqual({
      stage: 'evaluate',
      key: 'key-of-evaluate',
      file: 'metrics.json',
      digest: 'sha256-of-evaluate/metrics.json',
    });
    expect(data.curves.sources.map((s) => s.digest)).toEqual(['sha256-of-train/history.json', 'sha256-of-train_aug/history.json']);
    expect(data.history.covers).toEqual(['run-now']);

    const html = await readFile(join(run.outDir, 'index.html'), 'utf8');
    expect(html).toContain('<title>Fixture &lt;report&gt;</title>');
    expect(html).not.toMatch(/<script|https?:\/\/(?!vega\.github\.io|www\.w3\.org|127\.0\.0\.1)/);
    for (const id of [
      'run',
      'data',
      'model',
      'curves',
      'compare-evaluate-evaluate_aug',
      'eval-evaluate',
      'eval-evaluate_aug',
      'augment',
      'history',
      'model-card',
      'provenance',
    ]) {
      expect(html).toContain(`id="${id}"`);
    }
    expect(html).toMatch(/2 of 3 classes got worse<\/b> \(F1\): dog, ship/);
    expect(html).toContain('sha256:sha256-of-e'); // a figure caption names its file digest

    // The mistakes grid shows the test rows' own pixels (from decode's uint8 tensor).
    const firstMistake = /<figure class="mistake" data-index="3"><img src="data:image\/png;base64,([^"]+)"/.exec(html);
    const png = decodePng(Buffer.from(firstMistake![1]!, 'base64'));
    expect([png.width, png.height]).toEqual([SIDE, SIDE]);
    expect([png.data[0], png.data[1], png.data[2]]).toEqual([pixel(3, 0, 0, 0), pixel(3, 0, 0, 1), pixel(3, 0, 0, 2)]);

    const md = await readFile(join(run.outDir, 'report.md'), 'utf8');
    expect(md).toContain('- **evaluate_aug** (train_aug): Test accuracy **0.8333**');
    expect(md).toContain('**2 of 3 classes got worse (F1): dog, ship.**');
    expect(md).toMatch(/\| cat \| 3 \| 1 \| 0 \|/); // confusion matrix row

    // Hyperparameters: a visible table, one column per train stage.
    const hp = Object.fromEntries(data.trainings.map((t) => [t.stage, Object.fromEntries(t.hyperparameters.map((h) => [h.name, h.value]))]));
    expect(hp.train).toMatchObject({
      optimizer: 'rmsprop (rho 0.9, epsilon 1e-7)',
      'learning rate': '0.001',
      'lr schedule': 'constant',
      'batch size': '4 (6 steps per epoch)',
      epochs: '3',
      'weight decay': '0',
      augmentation: 'none',
      'starts from': 'random initialization',
      'training images': '24 (+ 6 held out for validation)',
      'time per epoch': '1.5 s (16 images/s)',
      'best epoch rule': 'val_loss (min), no early stopping, last epoch kept',
    });
    expect(hp.train_aug).toMatchObject({
      'learning rate': '0.001 (0.001 at epoch 1 → 0.00025 at epoch 3)',
      'lr schedule': 'step (step_epochs 1, gamma 0.5)',
      epochs: '3 of 5 (stopped early)',
      augmentation: 'copies of augment (2 copies), one per epoch',
      'starts from': "train's weights",
      'best epoch rule': 'val_loss (min), patience 2, restore_best',
      outcome: 'best val_loss 0.9000 at epoch 1; stopped early after epoch 3; model: epoch 1 of 3 trained (the best by val_loss, 0.9000)',
    });
    expect(html).toContain('<section id="training"><h2>Training</h2>');
    expect(html).toMatch(/<table class="hyperparameters"><thead><tr><th>hyperparameter<\/th><th><b>train<\/b><\/th><th><b>train_aug<\/b><\/th>/);
    expect(html).toContain('<a href="#training">Training</a>');
    expect(md).toContain('| optimizer | rmsprop (rho 0.9, epsilon 1e-7) | rmsprop (rho 0.9, epsilon 1e-7) |');
    // Per-epoch learning rate and seconds; the best epoch, kept weights and the stop are marked.
    expect(html).toContain('<th>lr</th><th>seconds</th>');
    expect(html).toContain(
      '<td>train_aug</td><td>4</td><td>1.2000</td><td>0.3500</td><td>0.9000</td><td>0.3300</td><td>0.001</td><td>1.5</td><td>best val_loss, weights kept</td>',
    );
    expect(html).toContain('<td>0.00025</td><td>1.5</td><td>stopped early</td>');
    expect(md).toContain('| train_aug | 6 | 0.4000 | 0.4500 | 1.1000 | 0.4300 | 0.00025 | 1.5 |');
    expect(html).toContain(
      '<b>train_aug</b>: epochs 4–6, continuing from train — in its own epochs: best val_loss 0.9000 at epoch 1; stopped early after epoch 3; model: epoch 1 of 3 trained (the best by val_loss, 0.9000)</li>',
    );
    // The model card: train.json's counts (not the 30 of the training split), the kept epoch.
    expect(data.model_card.data).toContain('trained on 24 images (6 more held out for validation); 12 test images');
    expect(data.model_card.weights).toBe('epoch 1 of 3 trained (the best by val_loss, 0.9000); training stopped early after epoch 3');
    expect(html).toContain('<dt>Weights</dt><dd>epoch 1 of 3 trained (the best by val_loss, 0.9000); training stopped early after epoch 3</dd>');
    expect(md).toContain('- **Weights:** epoch 1 of 3 trained');
    // The augmentation grid: labelled columns, the copies training used, the preview-only variant.
    expect(data.augmentations[0]).toMatchObject({ copies: 2, variants: 3, used_by: [{ stage: 'train_aug', epochs: 3, copies_used: 2 }] });
    expect(html).toContain('<b>train_aug</b> trained 3 epochs on all 2 copies, each reused in turn (epoch e trains on copy (e − 1) mod 2).');
    expect(html).toContain(
      '<th>original</th><th>copy 0<br><span class="muted">trained on</span></th><th>copy 1<br><span class="muted">trained on</span></th><th>variant 2<br><span class="muted">preview only</span></th>',
    );
    expect(html).toContain('alt="training image 0, variant 2 (preview only)"');
    expect(html).toContain('the 1 <i>variant</i> column beyond the 2 copies is a further draw of the same transform');
    expect(md).toContain('train_aug trained 3 epochs on 2 of them; preview variant 2 is in no copy (preview only)');
    // Anchors are not hidden under the pinned menu; wide tables scroll in their own box.
    expect(html).toContain('main [id]{scroll-margin-top:64px}');
    expect(html).not.toMatch(/<table(?![^>]*>)/);
    expect(html.match(/<div class="scroll"><table/g)!.length).toBe(html.match(/<table/g)!.length);
  });

  test('a single train stage without fetch, decode or augment still reports; images come from normalize', async () => {
    const run = await runStage(reportStage, { mistakes: 5 }, single.inputs);
    outDirs.push(run.outDir);
    const data = JSON.parse(await readFile(join(run.outDir, 'report.json'), 'utf8')) as ReportData;
    expect(data.title).toBe('Training report');
    expect(data.comparisons).toEqual([]);
    expect(data.augmentations).toEqual([]);
    expect(data.curves.phases.map(({ outcome: _o, ...p }) => p)).toEqual([{ stage: 'train', first: 1, last: 1 }]);
    expect(await readFile(join(run.outDir, 'index.html'), 'utf8')).toContain('<li><b>train</b>: epoch 1 — best val_loss');
    const html = await readFile(join(run.outDir, 'index.html'), 'utf8');
    expect(html).not.toContain('id="augment"');
    const img = /<figure class="mistake" data-index="3"><img src="data:image\/png;base64,([^"]+)"/.exec(html);
    const png = decodePng(Buffer.from(img![1]!, 'base64'));
    // Recovered from standardized floats: the same bytes decode would have given.
    expect([png.data[0], png.data[1], png.data[2]]).toEqual([pixel(3, 0, 0, 0), pixel(3, 0, 0, 1), pixel(3, 0, 0, 2)]);
  });

  test('no inputs at all: a clear error naming needs:', async () => {
    await expect(runStage(reportStage, {}, {})).rejects.toThrow(/report report: no inputs; list the stages it reports on in needs:/);
  });
});
