// The official CIFAR-10 binary release (cifar-10-batches-bin/): data_batch_1.bin … data_batch_5.bin
// and test_batch.bin, each a run of 3073-byte records — 1 label byte, then the 32×32 red plane,
// green plane and blue plane (row-major) — plus batches.meta.txt with one class name per line.
import { join } from 'node:path';
import { DatasetError } from '../errors.js';
import type { SourceTree } from './source-tree.js';

export const CIFAR_SIDE = 32;
export const CIFAR_PLANE = CIFAR_SIDE * CIFAR_SIDE;
export const CIFAR_RECORD_BYTES = 1 + 3 * CIFAR_PLANE;

export interface CifarBatch {
  path: string;
  records: number;
}

export interface CifarBinaryDataset {
  classes: string[];
  train: CifarBatch[];
  test: CifarBatch[];
}

function batch(tree: SourceTree, path: string): CifarBatch {
  const size = tree.size(path);
  if (size === 0 || size % CIFAR_RECORD_BYTES !== 0) {
    throw new DatasetError(
      `CIFAR binary batch ${path}: ${size} bytes is not a whole number of ${CIFAR_RECORD_BYTES}-byte records (truncated or not a CIFAR-10 batch)`,
    );
  }
  return { path, records: size / CIFAR_RECORD_BYTES };
}

/** Lists and validates the batches (sizes) in `dir` of `tree` and reads the class names; no pixel data is read. */
export function scanCifarBinary(tree: SourceTree, dir: string): CifarBinaryDataset {
  const trainNames = (tree.list(dir) ?? [])
    .map((e) => /^data_batch_(\d+)\.bin$/.exec(e.name))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => m[0]);
  if (trainNames.length === 0) throw new DatasetError(`CIFAR binary: no data_batch_<n>.bin in ${dir}`);
  const testPath = join(dir, 'test_batch.bin');
  if (tree.kind(testPath) === undefined) throw new DatasetError(`CIFAR binary: missing test_batch.bin in ${dir}`);
  const metaPath = join(dir, 'batches.meta.txt');
  if (tree.kind(metaPath) === undefined) throw new DatasetError(`CIFAR binary: missing batches.meta.txt (class names) in ${dir}`);
  const classes = Buffer.from(tree.read(metaPath))
    .toString('utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (classes.length === 0 || classes.length > 256) {
    throw new DatasetError(`CIFAR binary: ${metaPath} must list 1 to 256 class names, one per line (found ${classes.length})`);
  }
  return { classes, train: trainNames.map((n) => batch(tree, join(dir, n))), test: [batch(tree, testPath)] };
}

/**
 * Converts `count` records from `records` (starting at record 0) to interleaved HWC pixels in
 * `pixels` and labels in `labels`; throws on a label outside the class list.
 */
export function unpackRecords(records: Uint8Array, count: number, numClasses: number, pixels: Uint8Array, labels: Int32Array, where: string): void {
  for (let r = 0; r < count; r++) {
    const rec = r * CIFAR_RECORD_BYTES;
    const label = records[rec]!;
    if (label >= numClasses) {
      throw new DatasetError(`CIFAR binary batch ${where}: record ${r} has label ${label}, but batches.meta.txt lists ${numClasses} classes`);
    }
    labels[r] = label;
    const red = rec + 1;
    const out = r * 3 * CIFAR_PLANE;
    for (let p = 0; p < CIFAR_PLANE; p++) {
      pixels[out + 3 * p] = records[red + p]!;
      pixels[out + 3 * p + 1] = records[red + CIFAR_PLANE + p]!;
      pixels[out + 3 * p + 2] = records[red + 2 * CIFAR_PLANE + p]!;
    }
  }
}
