// What of a previous dataset a new one can keep (docs/datasets.md, "Incremental decode"): rows whose
// source path and digest are unchanged keep their pixels where they are; new and changed sources
// are decoded into new shards; a shard left less than half live is compacted (its live rows copied,
// not decoded) and a shard left with no live row is dropped. The plan itself is lib/incremental.ts.
import { planReuse, type IncrementalPlan, type SourceRow } from '../incremental.js';
import type { Dataset } from './format.js';

export { COMPACT_BELOW, type IncrementalPlan, type SourceRow } from '../incremental.js';

export function planIncremental(previous: Dataset | undefined, settings: string, current: readonly SourceRow[]): IncrementalPlan {
  const layout = previous && {
    source: previous.rows.source,
    digest: previous.rows.digest,
    container: previous.rows.shard,
    capacity: previous.manifest.shards.map((s) => s.rows),
  };
  return planReuse(layout, previous?.manifest.settings === settings, current);
}
