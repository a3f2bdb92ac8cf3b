// Images for the report, as PNG data URIs (the HTML opens offline, everything inlined): test images
// of the mistakes grid, read row by row from the dataset (or, from results made before datasets
// were sharded, decode's uint8 tensor, or normalize's float inputs through the inverted normalization).
import { readFile } from 'node:fs/promises';
import { encodePng } from '../augment/preview.js';
import { readNpyRows, type NdArray } from '../npy.js';
import { DatasetReader } from '../dataset/reader.js';
import { splitRange } from '../dataset/format.js';
import type { NormalizationRecord } from './records.js';

export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;
}

export async function fileDataUri(path: string): Promise<string> {
  return pngDataUri(await readFile(path));
}

/** An HWC row (uint8, or float inverted through `normalization`) as 8-bit pixels. */
export function toPixels(row: NdArray, normalization?: NormalizationRecord): Uint8Array {
  if (row.dtype === 'uint8') return row.data as Uint8Array;
  const c = row.shape[row.shape.length - 1] ?? 1;
  const scale = normalization?.scale ?? 1 / 255;
  const mean = normalization?.mean ?? [];
  const std = normalization?.std ?? [];
  const out = new Uint8Array(row.data.length);
  for (let i = 0; i < row.data.length; i++) {
    const ch = i % c;
    const x = row.data[i]! * (std[ch] ?? 1) + (mean[ch] ?? 0);
    out[i] = Math.max(0, Math.min(255, Math.round(x / scale)));
  }
  return out;
}

/** PNG data URIs of test rows `indices` (0 = the first test row) of a sharded dataset. */
export async function datasetTestImages(dir: string, indices: readonly number[]): Promise<string[]> {
  if (indices.length === 0) return [];
  const reader = await DatasetReader.open(dir);
  try {
    const [start, end] = splitRange(reader.manifest, 'test');
    const [height, width, channels] = reader.manifest.shape;
    const uris: string[] = [];
    for (const i of indices) {
      if (!Number.isInteger(i) || i < 0 || start + i >= end) throw new Error(`${dir}: test row ${i} out of range (${end - start} rows)`);
      uris.push(pngDataUri(await encodePng({ height, width, channels, data: reader.readRows([start + i]) })));
    }
    return uris;
  } finally {
    reader.close();
  }
}

/** PNG data URIs of rows `indices` of an N×H×W×C tensor file. */
export async function rowImages(path: string, indices: readonly number[], normalization?: NormalizationRecord): Promise<string[]> {
  if (indices.length === 0) return [];
  const { shape, rows } = await readNpyRows(path, indices);
  if (shape.length !== 4) throw new Error(`${path}: expected N×H×W×C images, got [${shape.join(', ')}]`);
  const [, height, width, channels] = shape as [number, number, number, number];
  const uris: string[] = [];
  for (const row of rows) uris.push(pngDataUri(await encodePng({ height, width, channels, data: toPixels(row, normalization) })));
  return uris;
}
