// The sharded uint8 dataset (docs/datasets.md): what `dataset.json` and `rows.json` hold, and
// checking them when read. Rows are in logical order (train rows, then test rows; within a split
// by class, then source path); where a row's pixels live is its (shard, slot).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetError } from '../errors.js';

export const DATASET_FORMAT = 'uint8-shards';
export const DATASET_VERSION = 1;
export const MANIFEST_FILE = 'dataset.json';
export const ROWS_FILE = 'rows.json';
export const SHARDS_DIR = 'shards';
/** The name a stage gives its dataset output (decode writes it; normalize carries it on). */
export const DATASET_DIR = 'dataset';

export const DATASET_SPLITS = ['train', 'test'] as const;
export type DatasetSplit = (typeof DATASET_SPLITS)[number];

export interface ShardInfo {
  /** sha256 of the settings and the (source, digest) list the shard was written with. */
  id: string;
  /** Path inside the dataset directory: `shards/<id>.npy`. */
  file: string;
  /** Rows (slots) in the file, live or not. */
  rows: number;
}

export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: typeof DATASET_VERSION;
  /** [height, width, channels] of every row. */
  shape: [number, number, number];
  classes: string[];
  /** Rows per split: train rows are [0, train), test rows [train, train + test). */
  splits: Record<DatasetSplit, number>;
  shards: ShardInfo[];
  /**
   * What turns a source file into a row (decoder, size, resize...): a row can be reused only by a
   * dataset made with equal settings. Canonical JSON, compared as text.
   */
  settings: string;
}

/** One entry per row, columns of equal length (JSON arrays: rows.json stays readable by anything). */
export interface RowTable {
  label: Int32Array;
  shard: Int32Array;
  slot: Int32Array;
  /** crc32 of the row's bytes. */
  crc: Uint32Array;
  /** Source path (relative to the source root, `/`-separated) and its content digest. */
  source: string[];
  digest: string[];
}

export interface Dataset {
  manifest: DatasetManifest;
  rows: RowTable;
}

export function rowBytesOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row range [start, end) of a split in logical order. */
export function splitRange(manifest: DatasetManifest, split: DatasetSplit): [number, number] {
  return split === 'train' ? [0, manifest.splits.train] : [manifest.splits.train, manifest.splits.train + manifest.splits.test];
}

export function rowsToJson(rows: RowTable): Record<string, unknown> {
  return {
    label: Array.from(rows.label),
    shard: Array.from(rows.shard),
    slot: Array.from(rows.slot),
    crc: Array.from(rows.crc),
    source: rows.source,
    digest: rows.digest,
  };
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** Reads and checks a dataset directory's manifest and row table (not the shards' bytes). */
export async function readDataset(dir: string): Promise<Dataset> {
  const where = (file: string) => join(dir, file);
  let manifest: DatasetManifest;
  let raw: Record<string, unknown>;
  try {
    manifest = JSON.parse(await readFile(where(MANIFEST_FILE), 'utf8')) as DatasetManifest;
    raw = JSON.parse(await readFile(where(ROWS_FILE), 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new DatasetError(`${dir}: not a readable dataset (${(err as Error).message})`, { cause: err });
  }
  checkManifest(manifest, where(MANIFEST_FILE));
  const rows = parseRows(raw, manifest, where(ROWS_FILE));
  return { manifest, rows };
}

function checkManifest(m: DatasetManifest, where: string): void {
  const bad = (what: string) => new DatasetError(`${where}: ${what}`);
  if (m?.format !== DATASET_FORMAT) throw bad(`format is ${JSON.stringify(m?.format)}, expected ${DATASET_FORMAT}`);
  if (m.version !== DATASET_VERSION) throw bad(`version ${m.version} is not supported (this build reads ${DATASET_VERSION})`);
  if (!Array.isArray(m.shape) || m.shape.length !== 3 || !m.shape.every((v) => isInt(v, 1, 1 << 16))) throw bad('shape must be [height, width, channels]');
  if (!Array.isArray(m.classes) || m.classes.length === 0 || !m.classes.every((c) => typeof c === 'string')) throw bad('classes must be a non-empty list');
  if (!isInt(m.splits?.train, 0, 2 ** 31) || !isInt(m.splits?.test, 0, 2 ** 31)) throw bad('splits must give train and test row counts');
  if (!Array.isArray(m.shards)) throw bad('shards must be a list');
  for (const s of m.shards) {
    if (typeof s?.id !== 'string' || !/^[0-9a-f]{16,64}$/.test(s.id) || s.file !== `${SHARDS_DIR}/${s.id}.npy` || !isInt(s.rows, 1, 2 ** 31)) {
      throw bad(`bad shard entry ${JSON.stringify(s)}`);
    }
  }
  if (typeof m.settings !== 'string') throw bad('settings must be a string');
}

function parseRows(raw: Record<string, unknown>, m: DatasetManifest, where: string): RowTable {
  const n = m.splits.train + m.splits.test;
  const column = (name: string): unknown[] => {
    const v = raw[name];
    if (!Array.isArray(v) || v.length !== n) throw new DatasetError(`${where}: column ${name} must have ${n} entries`);
    return v;
  };
  const ints = (name: string, max: (i: number) => number): Int32Array => {
    const values = column(name);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (!isInt(v, 0, max(i) - 1)) throw new DatasetError(`${where}: row ${i}: ${name} ${JSON.stringify(v)} is out of range`);
      out[i] = v;
    }
    return out;
  };
  const label = ints('label', () => m.classes.length);
  const shard = ints('shard', () => m.shards.length);
  const slot = ints('slot', (i) => m.shards[shard[i]!]!.rows);
  const crcValues = column('crc');
  const crc = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const v = crcValues[i];
    if (!isInt(v, 0, 0xffffffff)) throw new DatasetError(`${where}: row ${i}: crc ${JSON.stringify(v)} is not a crc32`);
    crc[i] = v;
  }
  const strings = (name: string): string[] => {
    const values = column(name);
    if (!values.every((v) => typeof v === 'string')) throw new DatasetError(`${where}: column ${name} must hold strings`);
    return values as string[];
  };
  return { label, shard, slot, crc, source: strings('source'), digest: strings('digest') };
}
