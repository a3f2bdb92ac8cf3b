// The read-only run history a stage sees as `ctx.runs` (engine/contract.ts): the current run's
// finished stages, earlier run records, committed results by key and why two keys differ.
import { readFile } from 'node:fs/promises';
import type { Provenance, RunHistory, RunStageSummary, RunSummary, StoredStageResult } from '../contract.js';
import { StageError } from '../errors.js';
import type { Manifest } from '../store/manifest.js';
import { explain } from '../plan/plan.js';
import { describeReason } from '../plan/reasons.js';
import type { Store } from '../store/store.js';

export interface CurrentRun {
  id: string;
  startedAt: string;
  command: readonly string[];
  /** The schedule entry that started it, if any. */
  scheduled?: string;
  /** A sweep experiment's values (`train.batch_size=128`). */
  experiment?: string;
}

export function provenanceOf(m: Manifest): Provenance {
  return {
    key: m.key,
    outputsDigest: m.outputsDigest,
    ...(m.material.version !== undefined ? { version: m.material.version } : {}),
    ...(m.material.fingerprint ? { fingerprint: m.material.fingerprint } : {}),
    createdAt: m.createdAt,
    durationMs: m.durationMs,
    runId: m.runId,
  };
}

/** A stored result read straight from its objects (no view is built: the history is read-only). */
function storedResult(store: Store, m: Manifest): StoredStageResult {
  const has = (name: string) => name in m.files;
  return {
    stage: m.stage,
    kind: m.kind,
    params: m.params,
    provenance: provenanceOf(m),
    has,
    async readJson<T>(name: string): Promise<T> {
      const f = m.files[name];
      if (!f) throw new StageError(`result ${m.key.slice(0, 12)} of ${m.stage} has no file ${name}`);
      return JSON.parse(await readFile(store.objects.path(f.digest), 'utf8')) as T;
    },
  };
}

export function runHistory(store: Store, current: CurrentRun, finished: () => readonly RunStageSummary[]): RunHistory {
  const manifests = new Map<string, Promise<Manifest | null>>();
  const manifest = (key: string) => {
    let m = manifests.get(key);
    if (!m) {
      m = store.readManifest(key).catch(() => null);
      manifests.set(key, m);
    }
    return m;
  };
  return {
    current: (): RunSummary => ({ ...current, outcome: 'running', stages: [...finished()] }),
    async earlier() {
      const records = await store.runs.list();
      return records
        .filter((r) => r.id !== current.id)
        .map((r) => ({
          id: r.id,
          command: r.command,
          startedAt: r.startedAt,
          finishedAt: r.finishedAt,
          durationMs: r.durationMs,
          outcome: r.outcome,
          stages: r.stages.map((s) => ({ stage: s.stage, outcome: s.outcome, key: s.key, durationMs: s.durationMs })),
          ...(r.trigger ? { scheduled: r.trigger.entry } : {}),
          ...(r.experiment ? { experiment: experimentText(r.experiment.assignments) } : {}),
          ...(r.promotion ? { promotion: { decision: r.promotion.decision, reason: r.promotion.reason } } : {}),
        }));
    },
    async result(key) {
      const m = await manifest(key);
      return m ? storedResult(store, m) : undefined;
    },
    async changes(oldKey, newKey) {
      const [a, b] = await Promise.all([manifest(oldKey), manifest(newKey)]);
      if (!a || !b) return [];
      return explain(a.material, b.material, [], { old: a.params, new: b.params }).map((r) => ({
        what: r.type === 'input' ? 'inputs' : r.type === 'params' || r.type === 'runtime' ? r.type : 'code',
        text: describeReason(r),
      }));
    },
  };
}

/** `train.optimizer.lr=0.001 train.batch_size=64`: a sweep experiment's values, as the report shows them. */
export function experimentText(assignments: Readonly<Record<string, string>>): string {
  return Object.entries(assignments)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}
