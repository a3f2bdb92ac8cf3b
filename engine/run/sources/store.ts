// The first source: a result committed in the local store under the stage's key. Its objects are
// checked before downstream stages read them (never a corrupt one): bad objects are dropped and
// the stage is decided again, to be produced by the sources after this one. When the store has no
// sound result, this is where the key to produce it under is settled.
import { CorruptObjectError, StageError } from '../../errors.js';
import { resolveStage } from '../../plan/facts.js';
import { describeReasons } from '../../plan/reasons.js';
import { isErrno } from '../../store/fs-tree.js';
import type { Manifest } from '../../store/manifest.js';
import type { StageReport } from '../execute-options.js';
import type { Execution } from '../execution.js';
import type { ResultSource, StageRequest } from './result-source.js';

export const storeSource: ResultSource = {
  name: 'store',
  produces: false,
  async tryProvide(stage, x) {
    if (stage.decision.action === 'cached') {
      const cached = await fromStore(stage, x);
      if (cached) return cached;
    }
    settleKey(stage, x);
    return undefined;
  },
};

/** The stored result, sound and linked; undefined after dropping a corrupt one (the stage is decided anew). */
async function fromStore(stage: StageRequest, x: Execution): Promise<StageReport | undefined> {
  const { name } = stage;
  if (stage.decision.action !== 'cached') return undefined;
  const decision = stage.decision;
  const m = decision.stored.manifest;
  let bad = await unsoundObjects(m, x);
  if (bad.length === 0) {
    try {
      const toRestore = x.experiment ? [] : decision.restore;
      if (toRestore.length) await x.restore(m, toRestore);
      // A commit interrupted between its view and its manifest can leave a view of other bytes.
      if ((await x.store.viewMismatches(m, false)).length) await x.store.rebuildView(m);
      await x.finishRef(name, m);
      const restored = toRestore.length ? toRestore : undefined;
      return { stage: name, outcome: 'cached', durationMs: Date.now() - stage.t0, key: m.key, manifest: m, restored };
    } catch (err) {
      if (!(err instanceof CorruptObjectError)) throw err;
      bad = [err.digest];
    }
  }
  // Drop the bad objects and the view linking them; the stage runs again (output missing).
  for (const d of bad) await x.store.objects.remove(d);
  await x.store.removeView(m.key);
  const missing = Object.entries(m.files)
    .filter(([, f]) => bad.includes(f.digest))
    .map(([p]) => p);
  x.opts.facts.stored.set(m.key, { ...decision.stored, missingObjects: missing, corrupt: true });
  stage.decision = await resolveStage(x.stageEnv, x.opts.facts, name, upstreamDigests(stage), { force: x.opts.force });
  if (stage.decision.action === 'cached') throw new StageError(`stage ${name}: stored outputs are corrupt and could not be recomputed`);
  return undefined;
}

export function upstreamDigests(stage: Pick<StageRequest, 'ups'>): Map<string, string> {
  return new Map(stage.ups.map((u) => [u.stage, u.manifest!.outputsDigest] as const));
}

/** The key the stage is produced under; an error when it cannot be computed, or (a worker's run) is not the coordinator's. */
function settleKey(stage: StageRequest, x: Execution): void {
  const { name, decision } = stage;
  const reason = describeReasons(decision.reasons);
  const failed = decision.reasons.find((r) => r.type === 'fingerprint-failed');
  if (failed || !decision.key || !decision.material) throw new StageError(`stage ${name}: ${reason || 'cannot compute its cache key'}`);
  const { key, material } = decision;
  const job = x.opts.workerJob;
  if (job && job.stage === name && job.key !== key) {
    throw new StageError(
      `stage ${name}: this checkout computes cache key ${key.slice(0, 12)} where the coordinator has ${job.key.slice(0, 12)}: its code, pipeline file or params differ`,
    );
  }
  stage.produce = { key, material, reason };
}

/**
 * Objects of a stored result whose content is not what its manifest says (or that are gone): a
 * stat when the stat cache vouches for the object, else a hash (recorded, so only once).
 */
async function unsoundObjects(m: Manifest, x: Execution): Promise<string[]> {
  const bad: string[] = [];
  for (const digest of new Set(Object.values(m.files).map((f) => f.digest))) {
    try {
      const actual = await x.env.statCache.digestFile(x.store.objects.path(digest), { trustRecent: true, signal: x.signal });
      if (actual.digest !== digest) bad.push(digest);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      bad.push(digest);
    }
  }
  return bad;
}
