// A per-class cap on a dataset's rows (decode's `max_per_class`): keeps the first N sources of each
// class in each split, in the dataset's own order, so a subset is deterministic and a larger cap
// keeps every row a smaller one kept (a quick demo or smoke run on part of a dataset).

/** The cap per split; a split without one keeps every row. */
export interface PerClassLimit {
  train?: number | undefined;
  test?: number | undefined;
}

/**
 * A predicate to call once per source, in order: true while that (split, class) is under its cap.
 * Without a limit every source is kept.
 */
export function perClassFilter(limit: PerClassLimit | undefined): (split: 'train' | 'test', label: number) => boolean {
  if (limit === undefined) return () => true;
  const counts = new Map<string, number>();
  return (split, label) => {
    const cap = limit[split];
    if (cap === undefined) return true;
    const key = `${split}/${label}`;
    const seen = counts.get(key) ?? 0;
    if (seen >= cap) return false;
    counts.set(key, seen + 1);
    return true;
  };
}
