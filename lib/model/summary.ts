// A text summary in the format of Keras 2's Sequential `model.summary()` (65 columns; layer,
// output shape and parameter count per layer; totals), so it can be compared with the notebook's.
import type * as tf from '@tensorflow/tfjs';

const WIDTH = 65;
const COLUMNS = [29, 55, 65];

function row(cells: string[]): string {
  let line = '';
  cells.forEach((cell, i) => {
    // As Keras: the last character of a (possibly truncated) column becomes the separating space.
    if (i > 0) line = line.slice(0, -1) + ' ';
    line += cell;
    line = line.slice(0, COLUMNS[i]).padEnd(COLUMNS[i]!);
  });
  return line.trimEnd();
}

function shapeText(shape: tf.Shape | tf.Shape[]): string {
  const one = (s: tf.Shape) => `(${s.map((d) => (d == null ? 'None' : String(d))).join(', ')}${s.length === 1 ? ',' : ''})`;
  return Array.isArray(shape[0]) ? (shape as tf.Shape[]).map(one).join(', ') : one(shape as tf.Shape);
}

export const formatCount = (n: number): string => n.toLocaleString('en-US');

export interface ParamCounts {
  total: number;
  trainable: number;
  nonTrainable: number;
}

export function paramCounts(model: tf.LayersModel): ParamCounts {
  const size = (ws: tf.LayerVariable[]) => ws.reduce((sum, w) => sum + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
  const trainable = size(model.trainableWeights);
  const nonTrainable = size(model.nonTrainableWeights);
  return { total: trainable + nonTrainable, trainable, nonTrainable };
}

export function modelSummary(model: tf.LayersModel): string {
  const lines = ['_'.repeat(WIDTH), row(['Layer (type)', 'Output Shape', 'Param #']), '='.repeat(WIDTH)];
  model.layers.forEach((layer, i) => {
    lines.push(row([`${layer.name} (${layer.getClassName()})`, shapeText(layer.outputShape), String(layer.countParams())]));
    lines.push(i === model.layers.length - 1 ? '='.repeat(WIDTH) : '_'.repeat(WIDTH));
  });
  const counts = paramCounts(model);
  lines.push(`Total params: ${formatCount(counts.total)}`);
  lines.push(`Trainable params: ${formatCount(counts.trainable)}`);
  lines.push(`Non-trainable params: ${formatCount(counts.nonTrainable)}`);
  lines.push('_'.repeat(WIDTH));
  return lines.join('\n') + '\n';
}
