// Classification metrics from predicted probabilities: confusion matrix, per-class precision /
// recall / F1 (as sklearn's classification_report, 0 where undefined), most confident mistakes.
import { argmax } from './predict.js';

export interface ClassMetrics {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  /** Number of true examples of this class. */
  support: number;
}

export interface Mistake {
  /** Row index in the evaluated set (test_x / test_y). */
  index: number;
  true: number;
  true_class: string;
  predicted: number;
  predicted_class: string;
  /** Predicted probability of the (wrong) predicted class. */
  confidence: number;
  /** Predicted probability of the true class. */
  true_probability: number;
}

/** matrix[t][p]: rows with true class t predicted as p. */
export function confusionMatrix(labels: Int32Array, predicted: Int32Array, k: number): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predicted[i]!]!++;
  return m;
}

export function perClassMetrics(matrix: number[][], classes: readonly string[]): ClassMetrics[] {
  const k = matrix.length;
  return matrix.map((row, c) => {
    const tp = row[c]!;
    const support = row.reduce((a, b) => a + b, 0);
    let predictedAs = 0;
    for (let t = 0; t < k; t++) predictedAs += matrix[t]![c]!;
    const precision = predictedAs ? tp / predictedAs : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { class: classes[c] ?? String(c), precision, recall, f1, support };
  });
}

export function macroAverage(perClass: readonly ClassMetrics[]): { precision: number; recall: number; f1: number } {
  const mean = (f: (m: ClassMetrics) => number) => perClass.reduce((s, m) => s + f(m), 0) / Math.max(1, perClass.length);
  return { precision: mean((m) => m.precision), recall: mean((m) => m.recall), f1: mean((m) => m.f1) };
}

export function predictedLabels(probs: Float32Array, k: number): Int32Array {
  const n = probs.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = argmax(probs, i * k, k);
  return out;
}

/** The `count` wrong predictions with the highest predicted probability, most confident first. */
export function mostConfidentMistakes(probs: Float32Array, labels: Int32Array, k: number, classes: readonly string[], count: number): Mistake[] {
  const mistakes: Mistake[] = [];
  for (let i = 0; i < labels.length; i++) {
    const p = argmax(probs, i * k, k);
    const t = labels[i]!;
    if (p === t) continue;
    mistakes.push({
      index: i,
      true: t,
      true_class: classes[t] ?? String(t),
      predicted: p,
      predicted_class: classes[p] ?? String(p),
      confidence: probs[i * k + p]!,
      true_probability: probs[i * k + t]!,
    });
  }
  // Ties broken by index so the list is stable across runs.
  mistakes.sort((a, b) => b.confidence - a.confidence || a.index - b.index);
  return mistakes.slice(0, count);
}

/** A short fixed-width table of per-class metrics (for the log). */
export function formatClassTable(perClass: readonly ClassMetrics[]): string[] {
  const width = Math.max(5, ...perClass.map((m) => m.class.length));
  const lines = [`${'class'.padEnd(width)}  precision  recall  f1     support`];
  for (const m of perClass) {
    lines.push(
      `${m.class.padEnd(width)}  ${m.precision.toFixed(3).padStart(9)}  ${m.recall.toFixed(3).padStart(6)}  ${m.f1.toFixed(3)}  ${String(m.support).padStart(7)}`,
    );
  }
  return lines;
}
