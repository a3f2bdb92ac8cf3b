// predict's rows as text: CSV (a header, then one line per image: file, the top-k classes and
// their probabilities, most probable first, and an error column that is empty unless the image
// was skipped) or JSON lines ({"file", "top": [{"class", "probability"}…]} or {"file", "error"}).
// Probabilities are written with 6 significant digits.
import type { PredictionRow } from './predict.js';

export type OutputFormat = 'csv' | 'jsonl';
export const OUTPUT_FORMATS = ['csv', 'jsonl'] as const;

const probability = (p: number) => Number(p.toPrecision(6));

/** RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function csvHeader(topK: number): string {
  const cols = ['file'];
  for (let i = 1; i <= topK; i++) cols.push(`class_${i}`, `probability_${i}`);
  cols.push('error');
  return cols.join(',') + '\n';
}

export function csvLine(row: PredictionRow, topK: number): string {
  const cols = [csvField(row.file)];
  const top = 'top' in row ? row.top : [];
  for (let i = 0; i < topK; i++) {
    const t = top[i];
    cols.push(t ? csvField(t.class) : '', t ? String(probability(t.probability)) : '');
  }
  cols.push('error' in row ? csvField(row.error) : '');
  return cols.join(',') + '\n';
}

export function jsonLine(row: PredictionRow): string {
  if ('error' in row) return JSON.stringify({ file: row.file, error: row.error }) + '\n';
  return JSON.stringify({ file: row.file, top: row.top.map((t) => ({ class: t.class, probability: probability(t.probability) })) }) + '\n';
}

/** The text of a format: its header (CSV) and a line per row. */
export function formatter(format: OutputFormat, topK: number): { header: string; line(row: PredictionRow): string } {
  return format === 'csv' ? { header: csvHeader(topK), line: (row) => csvLine(row, topK) } : { header: '', line: jsonLine };
}
