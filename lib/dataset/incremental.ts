// What of a previous dataset a new one can keep (docs/datasets.md, "Incremental decode"): rows whose
// source path and digest are unchanged keep their pixels where they are; new and changed sources
// are decoded into new shards; a shard left less than half live is compacted (its live rows copied,
// not decoded) and a shard left with no live row is dropped.
import type { Dataset } from './format.js';

/** A source file of the new dataset, in logical order. */
export interface SourceRow {
  source: string;
  digest: string;
}

export interface IncrementalPlan {
  /** Per new row: the previous row whose pixels it keeps, or -1 to decode its source. */
  from: Int32Array;
  /** Previous shards kept as they are (their live rows stay in place). */
  keep: Set<number>;
  /** Previous shards whose live rows are copied into new shards. */
  compact: Set<number>;
  added: number;
  changed: number;
  removed: number;
  reused: number;
}

/** Below this live fraction a kept shard is rewritten: a long-growing folder's dataset stays under 2× its live bytes. */
export const COMPACT_BELOW = 0.5;

export function planIncremental(previous: Dataset | undefined, settings: string, current: readonly SourceRow[]): IncrementalPlan {
  const from = new Int32Array(current.length).fill(-1);
  const usable = previous !== undefined && previous.manifest.settings === settings;
  const before = new Map<string, number>();
  if (previous) previous.rows.source.forEach((source, row) => before.set(source, row));
  let added = 0;
  let changed = 0;
  const seen = new Set<string>();
  current.forEach((row, i) => {
    seen.add(row.source);
    const old = before.get(row.source);
    if (old === undefined) added++;
    else if (previous!.rows.digest[old] !== row.digest) changed++;
    else if (usable) from[i] = old;
  });
  let removed = 0;
  for (const source of before.keys()) if (!seen.has(source)) removed++;

  const keep = new Set<number>();
  const compact = new Set<number>();
  if (usable) {
    const live = new Array<number>(previous.manifest.shards.length).fill(0);
    for (const old of from) if (old >= 0) live[previous.rows.shard[old]!]!++;
    live.forEach((n, shard) => {
      if (n === 0) return;
      if (n >= COMPACT_BELOW * previous.manifest.shards[shard]!.rows) keep.add(shard);
      else compact.add(shard);
    });
  }
  const reused = from.reduce((n, old) => n + (old >= 0 ? 1 : 0), 0);
  return { from, keep, compact, added, changed, removed, reused };
}
