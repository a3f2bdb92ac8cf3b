// Why `status` calls a stage stale when nothing was edited: its latest result was made by a run
// with --set/--unset/--backend (a plain status plans pipeline.yaml as written), or an interrupted
// run left a checkpoint that the stage's next run resumes from.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Plan } from '../plan/plan.js';
import type { Reason } from '../plan/reasons.js';
import { isErrno } from '../store/fs-tree.js';
import type { RunOverrides, RunRecord } from '../store/runs.js';
import type { Store } from '../store/store.js';

type OverridesReason = Extract<Reason, { type: 'overrides' }>;

/**
 * The stale stages of `plan` whose latest result (`refs`) was made by a run with other overrides
 * than `current`, and that planning with that run's overrides (`planWith`) finds up to date: the
 * overrides are the whole difference. `planWith` returns undefined when those overrides no longer
 * apply (a stage or param since removed).
 */
export async function staleByOverrides(
  store: Store,
  plan: Plan,
  refs: ReadonlyMap<string, string>,
  current: RunOverrides,
  planWith: (overrides: RunOverrides) => Promise<Plan | undefined>,
): Promise<Map<string, OverridesReason>> {
  const found = new Map<string, OverridesReason>();
  const stale = plan.stages.filter((p) => !(p.action === 'cached' && p.reasons.length === 0) && refs.has(p.stage)).map((p) => p.stage);
  if (stale.length === 0) return found;
  const records = (await store.runs.list()).reverse();
  // Run id → the stages whose latest result it made.
  const byRun = new Map<string, { record: RunRecord; overrides: RunOverrides; stages: string[] }>();
  for (const stage of stale) {
    const record = madeBy(records, stage, refs.get(stage)!);
    if (!record?.overrides || sameOverrides(record.overrides, current)) continue;
    const entry = byRun.get(record.id) ?? { record, overrides: record.overrides, stages: [] };
    entry.stages.push(stage);
    byRun.set(record.id, entry);
  }
  for (const { record, overrides, stages } of byRun.values()) {
    let other: Plan | undefined;
    try {
      other = await planWith(overrides);
    } catch {
      other = undefined; // overrides that no longer validate explain nothing
    }
    for (const stage of stages) {
      const p = other?.stages.find((s) => s.stage === stage);
      if (p?.action === 'cached' && p.reasons.length === 0 && p.key === refs.get(stage)) {
        found.set(stage, { type: 'overrides', run: record.id, ...overrides });
      }
    }
  }
  return found;
}

/** The newest run (not a sweep's experiment, which leaves refs alone) that made or reused `key` for `stage`. */
function madeBy(newestFirst: readonly RunRecord[], stage: string, key: string): RunRecord | undefined {
  return newestFirst.find((r) => !r.experiment && r.stages.some((s) => s.stage === stage && s.key === key && (s.outcome === 'ran' || s.outcome === 'cached')));
}

function sameOverrides(a: RunOverrides, b: RunOverrides): boolean {
  const same = (x: readonly string[], y: readonly string[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.set, b.set) && same(a.unset, b.unset) && a.backend === b.backend;
}

/**
 * A checkpoint an interrupted run of `stage` left (a non-empty resume directory): for the key it
 * plans (`key`, when known), which its next run resumes from, or for another key (other inputs or params).
 */
export async function waitingCheckpoint(store: Store, stage: string, key: string | undefined): Promise<Extract<Reason, { type: 'resumable' }> | undefined> {
  let names: string[];
  try {
    names = await readdir(store.resumeRoot);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  const own = key === undefined ? undefined : store.resumeDir(stage, key);
  const pattern = new RegExp(`^${stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[0-9a-f]{16}$`);
  let other: string | undefined;
  for (const name of names.filter((n) => pattern.test(n)).sort()) {
    const dir = join(store.resumeRoot, name);
    if (!(await holdsFiles(dir))) continue;
    if (dir === own) return { type: 'resumable', dir: `resume/${name}`, sameKey: true };
    other ??= `resume/${name}`;
  }
  return other === undefined ? undefined : { type: 'resumable', dir: other, sameKey: false };
}

async function holdsFiles(dir: string): Promise<boolean> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.some((e) => e.isFile());
  } catch {
    return false;
  }
}
