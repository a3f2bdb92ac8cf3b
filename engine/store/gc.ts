// Garbage collection: keep the results the current pipeline points at (refs of its stages) and those
// of the last N runs; delete every other manifest, view and object. Call with the store lock held.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno } from './fs-tree.js';
import type { StatCache } from './stat-cache.js';
import { forceRemove, type Store } from './store.js';

export interface GcOptions {
  /** Stage names of the current pipeline. */
  stages: Iterable<string>;
  /** Also keep what the last N runs used or produced. */
  keepRuns: number;
  dryRun: boolean;
  /** Results kept whatever else refers to them (the promoted models' train and evaluate results). */
  keepKeys?: Iterable<string>;
}

export interface GcReport {
  keptKeys: number;
  removedManifests: number;
  removedObjects: number;
  /** Sum of the removed objects' sizes. */
  freedBytes: number;
  removedViews: number;
  /** Refs (and stage links) of stages no longer in the pipeline. */
  removedRefs: string[];
  removedResumeDirs: number;
  prunedStatEntries: number;
}

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
}

export async function collectGarbage(store: Store, statCache: StatCache, options: GcOptions): Promise<GcReport> {
  const current = new Set(options.stages);
  const refs = await store.readRefs();
  const keep = new Set<string>(options.keepKeys ?? []);
  for (const [stage, ref] of refs) if (current.has(stage)) keep.add(ref.key);
  // Scheduled ticks that never started hold no results: they do not count among the last N runs.
  const runs = (await store.runs.list()).filter((r) => r.stages.length > 0);
  for (const r of options.keepRuns > 0 ? runs.slice(-options.keepRuns) : []) for (const s of r.stages) if (s.key) keep.add(s.key);

  const report: GcReport = {
    keptKeys: 0,
    removedManifests: 0,
    removedObjects: 0,
    freedBytes: 0,
    removedViews: 0,
    removedRefs: [],
    removedResumeDirs: 0,
    prunedStatEntries: 0,
  };
  const act = async (fn: () => Promise<unknown>) => {
    if (!options.dryRun) await fn();
  };

  const live = new Set<string>();
  for (const key of await store.manifestKeys()) {
    const m = keep.has(key) ? await store.readManifest(key) : null;
    if (m) {
      report.keptKeys++;
      for (const f of Object.values(m.files)) live.add(f.digest);
    } else {
      report.removedManifests++;
      await act(() => store.removeManifest(key));
    }
  }
  for (const o of await store.objects.list()) {
    if (live.has(o.digest)) continue;
    report.removedObjects++;
    report.freedBytes += o.size;
    await act(() => store.objects.remove(o.digest));
  }
  for (const key of await names(store.viewsDir)) {
    if (keep.has(key)) continue;
    report.removedViews++;
    await act(() => forceRemove(join(store.viewsDir, key)));
  }
  for (const stage of [...refs.keys()]) {
    if (current.has(stage)) continue;
    report.removedRefs.push(stage);
    refs.delete(stage);
  }
  if (report.removedRefs.length) await act(() => store.writeRefs(refs));
  for (const link of await names(store.stagesDir)) if (!current.has(link)) await act(() => forceRemove(join(store.stagesDir, link)));
  // resume/<stage>-<key prefix>: checkpoints of stages that are no longer in the pipeline.
  for (const dir of await names(store.resumeRoot)) {
    const stage = dir.slice(0, dir.lastIndexOf('-'));
    if (current.has(stage)) continue;
    report.removedResumeDirs++;
    await act(() => forceRemove(join(store.resumeRoot, dir)));
  }
  if (!options.dryRun) {
    await store.cleanTmp();
    report.prunedStatEntries = await statCache.prune();
    await statCache.save();
  }
  return report;
}
