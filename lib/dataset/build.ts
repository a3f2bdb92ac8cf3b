// Builds a dataset directory in logical order, keeping what a previous dataset already holds
// (incremental.ts) and asking the caller to decode only the sources it does not. The caller's
// decoder runs a chunk ahead of the writer, so decoding (on worker threads) and writing overlap.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SourceDecodeError } from '../errors.js';
import {
  DATASET_FORMAT,
  DATASET_VERSION,
  MANIFEST_FILE,
  ROWS_FILE,
  rowsToJson,
  type DatasetManifest,
  type DatasetSplit,
  type RowTable,
  type ShardInfo,
} from './format.js';
import { planIncremental, type IncrementalPlan, type SourceRow } from './incremental.js';
import type { DatasetReader } from './reader.js';
import { ShardWriter, DEFAULT_SHARD_BYTES } from './writer.js';

export interface LabeledSource extends SourceRow {
  split: DatasetSplit;
  label: number;
}

/**
 * Pixels for each requested source (by index into `sources`), or a reason it cannot be decoded.
 * The build is done with a chunk's rows before it requests the chunk after next (it decodes one
 * chunk ahead of the one it writes), so a decoder may hand out two buffers in turn.
 */
export type DecodeChunk = (indices: number[]) => Promise<Array<Uint8Array | DecodeFailure>>;

/** Why a source has no row: `reason` for people, `code` for the caller to tell kinds of failure apart. */
export interface DecodeFailure {
  failed: string;
  code?: string;
}

export interface BuildOptions {
  /** The dataset directory to write (created by the caller; shards go to `dir/shards/`). */
  dir: string;
  shape: [number, number, number];
  classes: string[];
  /** What turns a source into a row (decoder versions, size, resize...): equal text, equal pixels. */
  settings: string;
  /** Every source in logical order: train rows first, then test rows. */
  sources: LabeledSource[];
  decode: DecodeChunk;
  /** A failed source is skipped (and listed) instead of failing the build. */
  skipFailed: boolean;
  previous?: DatasetReader;
  /** Puts a previous shard file (a path inside `previous.dir`) into `dir` under the same name, without copying its bytes. */
  carry(previousDir: string, file: string): Promise<void>;
  maxShardBytes?: number;
  /** Sources per decode request. */
  chunk?: number;
  signal?: AbortSignal;
  onRows?(done: number): void;
}

export interface BuildResult {
  manifest: DatasetManifest;
  plan: Omit<IncrementalPlan, 'from' | 'keep' | 'compact'> & { kept: number; compacted: number; decoded: number; copied: number };
  skipped: Array<{ source: string; reason: string; code?: string }>;
}

export async function buildDataset(o: BuildOptions): Promise<BuildResult> {
  o.signal?.throwIfAborted();
  const settings = o.settings;
  const prev = o.previous;
  const plan = planIncremental(prev ? { manifest: prev.manifest, rows: prev.rows } : undefined, settings, o.sources);
  const writer = new ShardWriter(o.dir, o.shape, settings, o.maxShardBytes ?? DEFAULT_SHARD_BYTES);

  const shards: ShardInfo[] = [];
  const shardIndex = new Map<string, number>(); // shard id or writer placeholder → index in `shards`
  for (const s of [...plan.keep].sort((a, b) => a - b)) {
    const info = prev!.manifest.shards[s]!;
    await o.carry(prev!.dir, info.file);
    shardIndex.set(`prev-${s}`, shards.length);
    shards.push(info);
  }
  const n = o.sources.length;
  const out = { label: new Int32Array(n), shardKey: new Array<string>(n), slot: new Int32Array(n), crc: new Uint32Array(n), keep: new Uint8Array(n) };
  const skipped: BuildResult['skipped'] = [];
  let decoded = 0;
  let copied = 0;
  const chunk = o.chunk ?? 500;
  const pending = (start: number) => {
    const indices: number[] = [];
    for (let i = start; i < Math.min(n, start + chunk); i++) if (plan.from[i]! < 0) indices.push(i);
    const result = indices.length > 0 ? o.decode(indices) : Promise.resolve([]);
    result.catch(() => {}); // a chunk decoded ahead may fail after the build already failed: awaited below otherwise
    return { indices, result };
  };
  try {
    let next = pending(0);
    for (let start = 0; start < n; start += chunk) {
      const current = next;
      if (start + chunk < n) next = pending(start + chunk); // decode ahead while this chunk is written
      const pixels = await current.result;
      o.signal?.throwIfAborted();
      const byIndex = new Map(current.indices.map((i, k) => [i, pixels[k]!]));
      for (let i = start; i < Math.min(n, start + chunk); i++) {
        const src = o.sources[i]!;
        out.label[i] = src.label;
        const old = plan.from[i]!;
        let row: Uint8Array;
        if (old >= 0 && plan.keep.has(prev!.rows.shard[old]!)) {
          out.shardKey[i] = `prev-${prev!.rows.shard[old]!}`;
          out.slot[i] = prev!.rows.slot[old]!;
          out.crc[i] = prev!.rows.crc[old]!;
          out.keep[i] = 1;
          continue;
        } else if (old >= 0) {
          row = prev!.readRows([old]); // compacted: checked bytes, copied
          copied++;
        } else {
          const got = byIndex.get(i)!;
          if (!(got instanceof Uint8Array)) {
            if (!o.skipFailed) throw new SourceDecodeError(src.source, got.failed, got.code);
            skipped.push({ source: src.source, reason: got.failed, ...(got.code ? { code: got.code } : {}) });
            continue;
          }
          row = got;
          decoded++;
        }
        const w = await writer.append(row, src.source, src.digest);
        out.shardKey[i] = w.shard;
        out.slot[i] = w.slot;
        out.crc[i] = w.crc;
        out.keep[i] = 1;
      }
      o.onRows?.(Math.min(n, start + chunk));
    }
  } catch (err) {
    await writer.abort();
    throw err;
  }
  const written = await writer.finish();
  for (const [placeholder, id] of written.ids) shardIndex.set(placeholder, shards.length + written.shards.findIndex((s) => s.id === id));
  shards.push(...written.shards);

  const rows = assembleRows(o.sources, out, shardIndex);
  const splits = { train: 0, test: 0 };
  o.sources.forEach((s, i) => {
    if (out.keep[i]) splits[s.split]++;
  });
  const manifest: DatasetManifest = { format: DATASET_FORMAT, version: DATASET_VERSION, shape: o.shape, classes: o.classes, splits, shards, settings };
  await writeFile(join(o.dir, MANIFEST_FILE), JSON.stringify(manifest, null, 1) + '\n');
  await writeFile(join(o.dir, ROWS_FILE), JSON.stringify(rowsToJson(rows)) + '\n');
  const { added, changed, removed, reused } = plan;
  return {
    manifest,
    plan: { added, changed, removed, reused, kept: plan.keep.size, compacted: plan.compact.size, decoded, copied },
    skipped,
  };
}

function assembleRows(
  sources: LabeledSource[],
  out: { label: Int32Array; shardKey: string[]; slot: Int32Array; crc: Uint32Array; keep: Uint8Array },
  shardIndex: Map<string, number>,
): RowTable {
  const live: number[] = [];
  out.keep.forEach((k, i) => {
    if (k) live.push(i);
  });
  return {
    label: Int32Array.from(live, (i) => out.label[i]!),
    shard: Int32Array.from(live, (i) => shardIndex.get(out.shardKey[i]!)!),
    slot: Int32Array.from(live, (i) => out.slot[i]!),
    crc: Uint32Array.from(live, (i) => out.crc[i]!),
    source: live.map((i) => sources[i]!.source),
    digest: live.map((i) => sources[i]!.digest),
  };
}
