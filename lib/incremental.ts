// What of a previous append-only layout a new one can keep (docs/datasets.md): items whose source
// path and digest are unchanged keep their place in the container (a dataset shard, a pack) that
// holds them; new and changed sources go to new containers; a container left less than half live
// is compacted (its live items copied, not recomputed) and one left with nothing live is dropped.
// Shared by decode's datasets (lib/dataset/incremental.ts) and fetch's packs (lib/fetch/pack-directory.ts).

/** A source of the new layout, in its order. */
export interface SourceRow {
  source: string;
  digest: string;
}

/** The previous layout: one entry per item, and how much each container holds. */
export interface PreviousLayout {
  source: readonly string[];
  digest: readonly string[];
  /** The container of each item. */
  container: ArrayLike<number>;
  /** Each item's share of its container (rows, bytes); 1 when absent. */
  weight?: ArrayLike<number>;
  /** Total weight per container, live or not. */
  capacity: readonly number[];
}

export interface IncrementalPlan {
  /** Per new item: the previous item it keeps, or -1 to compute its source afresh. */
  from: Int32Array;
  /** Previous containers kept as they are (their live items stay in place). */
  keep: Set<number>;
  /** Previous containers whose live items are copied into new containers. */
  compact: Set<number>;
  added: number;
  changed: number;
  removed: number;
  reused: number;
}

/** Below this live fraction a kept container is rewritten: a long-growing source's layout stays under 2× its live bytes. */
export const COMPACT_BELOW = 0.5;

/**
 * `usable`: whether previous items may be kept at all (e.g. the same decode settings); the counts
 * of added, changed and removed sources are given either way.
 */
export function planReuse(previous: PreviousLayout | undefined, usable: boolean, current: readonly SourceRow[]): IncrementalPlan {
  const from = new Int32Array(current.length).fill(-1);
  const before = new Map<string, number>();
  if (previous) previous.source.forEach((source, i) => before.set(source, i));
  let added = 0;
  let changed = 0;
  const seen = new Set<string>();
  current.forEach((row, i) => {
    seen.add(row.source);
    const old = before.get(row.source);
    if (old === undefined) added++;
    else if (previous!.digest[old] !== row.digest) changed++;
    else if (usable) from[i] = old;
  });
  let removed = 0;
  for (const source of before.keys()) if (!seen.has(source)) removed++;

  const keep = new Set<number>();
  const compact = new Set<number>();
  if (previous && usable) {
    const live = new Array<number>(previous.capacity.length).fill(0);
    for (const old of from) if (old >= 0) live[previous.container[old]!]! += previous.weight?.[old] ?? 1;
    const items = new Array<number>(previous.capacity.length).fill(0);
    for (const old of from) if (old >= 0) items[previous.container[old]!]!++;
    live.forEach((n, c) => {
      if (items[c] === 0) return;
      if (n >= COMPACT_BELOW * previous.capacity[c]!) keep.add(c);
      else compact.add(c);
    });
  }
  const reused = from.reduce((n, old) => n + (old >= 0 ? 1 : 0), 0);
  return { from, keep, compact, added, changed, removed, reused };
}
