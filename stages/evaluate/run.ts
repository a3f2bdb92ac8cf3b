// The evaluate stage's work (loaded only when an evaluate stage runs: it pulls in TensorFlow.js).
import { type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
import { PipelineError, StageError } from '../../engine/errors.js';
import { engineErrorOf } from '../lib-errors.js';
import { initBackend } from '../../lib/tf/backend.js';
import * as tf from '@tensorflow/tfjs';
import { datasetRows, oneHotOf, pixelTable, type Normalization, type Rows } from '../../lib/model/data.js';
import type { DatasetReader } from '../../lib/dataset/reader.js';
import { openUpstreamDataset } from '../dataset-input.js';
import { DATASET_DIR, splitRange } from '../../lib/dataset/format.js';
import { loadModel } from '../../lib/model/io.js';
import { confusionMatrix, formatClassTable, macroAverage, mostConfidentMistakes, perClassMetrics, predictedLabels } from '../../lib/model/metrics.js';
import { labelsOf, lossAndAccuracy, predictRows } from '../../lib/model/predict.js';
import type { EvaluateParams } from './params.js';

/** The same rows with every image mirrored left-right (NHWC: the width axis). */
function mirroredRows(rows: Rows): Rows {
  return { ...rows, inputs: (r) => tf.tidy(() => tf.reverse(rows.inputs(r), 2)) };
}

function trainInput(ctx: StageContext<EvaluateParams>): UpstreamArtifacts {
  if (ctx.params.model) return ctx.inputs.stage(ctx.params.model);
  return ctx.inputs.oneOfKind('train');
}

export async function runEvaluate(ctx: StageContext<EvaluateParams>): Promise<void> {
  const p = ctx.params;
  const backend = await initBackend(p.backend);
  for (const line of backend.fallbacks ?? []) ctx.log.warn(line);
  const trained = trainInput(ctx);
  const norm = ctx.inputs.oneOfKind('normalize');
  const reader = await openUpstreamDataset(norm);
  try {
    await evaluateOn(ctx, backend, trained, norm, reader);
  } finally {
    reader.close();
  }
}

/** The test split, read from the dataset batch by batch through normalize's formula. */
async function testRows(norm: UpstreamArtifacts, reader: DatasetReader): Promise<{ rows: Rows; targets: Float32Array }> {
  const [start, end] = splitRange(reader.manifest, 'test');
  const index = Int32Array.from({ length: end - start }, (_, i) => start + i);
  const table = pixelTable(await norm.readJson<Normalization>('normalization.json'), reader.manifest.shape[2]);
  return { rows: datasetRows(reader, index, table, `${norm.stage}/${DATASET_DIR}`), targets: oneHotOf(reader, index) };
}

async function evaluateOn(
  ctx: StageContext<EvaluateParams>,
  backend: Awaited<ReturnType<typeof initBackend>>,
  trained: UpstreamArtifacts,
  norm: UpstreamArtifacts,
  reader: DatasetReader,
): Promise<void> {
  const p = ctx.params;
  const classes = reader.manifest.classes;
  const { rows, targets } = await testRows(norm, reader);
  const model = await loadModel(trained.path('model'));
  try {
    const passes = p.tta === 'flip' ? 2 : 1;
    ctx.progress.start(`evaluate ${trained.stage}`, rows.count * passes, 'img');
    const probs = await predictRows(model, rows, p.batch_size, {
      signal: ctx.signal,
      onBatch: (done) => ctx.progress.update(done),
    });
    const k = rows.classes;
    const plain = p.tta ? lossAndAccuracy(probs, targets, k) : undefined;
    if (p.tta === 'flip') {
      const mirrored = await predictRows(model, mirroredRows(rows), p.batch_size, {
        signal: ctx.signal,
        onBatch: (done) => ctx.progress.update(rows.count + done),
      });
      for (let i = 0; i < probs.length; i++) probs[i] = (probs[i]! + mirrored[i]!) / 2;
    }
    ctx.progress.done();
    const { loss, accuracy } = lossAndAccuracy(probs, targets, k);
    const labels = labelsOf(targets, k);
    const predicted = predictedLabels(probs, k);
    const matrix = confusionMatrix(labels, predicted, k);
    const perClass = perClassMetrics(matrix, classes);
    const mistakes = mostConfidentMistakes(probs, labels, k, classes, p.top_mistakes);

    await ctx.out.json('metrics.json', {
      model_stage: trained.stage,
      backend: backend.name,
      versions: backend.versions,
      count: rows.count,
      test_loss: loss,
      test_accuracy: accuracy,
      classes,
      per_class: perClass,
      macro_avg: macroAverage(perClass),
      confusion_matrix: matrix,
      most_confident_mistakes: mistakes,
      ...(p.tta && plain ? { tta: p.tta, without_tta: { test_loss: plain.loss, test_accuracy: plain.accuracy } } : {}),
    });

    const ttaNote = plain ? ` (tta ${p.tta}; without: Test score ${plain.loss.toFixed(4)}, Test accuracy ${plain.accuracy.toFixed(4)})` : '';
    ctx.log.info(`${trained.stage} on ${rows.count} test images: Test score ${loss.toFixed(4)}, Test accuracy ${accuracy.toFixed(4)}${ttaNote}`);
    for (const line of formatClassTable(perClass)) ctx.log.info(line);
    if (mistakes.length) {
      const top = mistakes.slice(0, 5).map((m) => `#${m.index} ${m.true_class}→${m.predicted_class} (${m.confidence.toFixed(3)})`);
      ctx.log.info(`most confident mistakes: ${top.join(', ')}`);
    }
  } catch (err) {
    const translated = engineErrorOf(err);
    if (translated instanceof PipelineError) throw translated;
    throw new StageError(`evaluate ${ctx.stage}: ${(err as Error).message}`, { cause: err });
  } finally {
    model.dispose();
  }
}
