// The evaluate stage's work (loaded only when an evaluate stage runs: it pulls in TensorFlow.js).
import { type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
import { PipelineError, StageError } from '../../engine/errors.js';
import { engineErrorOf } from '../lib-errors.js';
import { initBackend } from '../../lib/tf/backend.js';
import * as tf from '@tensorflow/tfjs';
import { floatRows, type Rows } from '../../lib/model/data.js';
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
  const trained = trainInput(ctx);
  const norm = ctx.inputs.oneOfKind('normalize');
  const classes = await norm.readJson<string[]>('classes.json');
  const y = await norm.readTensor('test_y.npy');
  const rows = floatRows(await norm.readTensor('test_x.npy'), y, `${norm.stage}/test_x.npy`);
  if (rows.classes !== classes.length) throw new StageError(`${norm.stage}: ${classes.length} classes but test_y has ${rows.classes} columns`);

  const model = await loadModel(trained.path('model'));
  try {
    const passes = p.tta === 'flip' ? 2 : 1;
    ctx.progress.start(`evaluate ${trained.stage}`, rows.count * passes, 'img');
    const probs = await predictRows(model, rows, p.batch_size, {
      signal: ctx.signal,
      onBatch: (done) => ctx.progress.update(done),
    });
    const targets = y.data as Float32Array;
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
