// Verification: rehash every object and compare with its name; find objects that manifests
// reference but the store lacks, manifests that cannot be read, and readable views (and stage
// links) that do not show what their manifest says. With `fix`, corrupt objects are deleted, every
// result that lacks one of its objects (removed here, or gone before) is deleted with them, and every
// result computed from a corrupt object (transitively) is invalidated, so those stages are recomputed:
// a `verify` right after `verify --fix` finds nothing wrong.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFile } from './hash.js';
import type { ProgressReporter } from '../contract.js';
import type { Manifest } from './manifest.js';
import type { Store } from './store.js';

export interface CorruptObject {
  digest: string;
  actual: string;
  /** `stage:path` of every manifest entry that uses it. */
  usedBy: string[];
}

export interface VerifyReport {
  checkedObjects: number;
  checkedBytes: number;
  corrupt: CorruptObject[];
  missing: { digest: string; usedBy: string[] }[];
  /** Manifest files that do not parse (deleted with `fix`: a run treats them as absent and rewrites them). */
  badManifests: string[];
  /** Results that lack objects (corrupt or missing): deleted with `fix`, so their stages run again. */
  incomplete: { stage: string; key: string; corrupt: string[]; missing: string[] }[];
  /** Corrupt objects deleted (with `fix`), so the stages that made them run again. */
  removed: number;
  /** Results computed (directly or not) from a corrupt object: invalidated with `fix` (manifest deleted). */
  invalidated: { stage: string; key: string }[];
  /** Views whose files differ from their manifest's objects (rebuilt with `fix`). */
  badViews: { stage: string; key: string; paths: string[] }[];
  /** artifacts/stages/<stage> links that do not point at the stage's latest result (relinked with `fix`). */
  badLinks: { stage: string; key: string }[];
}

export async function verifyStore(store: Store, options: { fix?: boolean; progress?: ProgressReporter; signal?: AbortSignal } = {}): Promise<VerifyReport> {
  const usedBy = new Map<string, string[]>();
  const keysUsing = new Map<string, Set<string>>();
  const badManifests: string[] = [];
  const manifests: Manifest[] = [];
  for (const key of await store.manifestKeys()) {
    const m = await store.readManifest(key);
    if (!m) {
      badManifests.push(store.manifestPath(key));
      continue;
    }
    manifests.push(m);
    for (const [path, f] of Object.entries(m.files)) {
      usedBy.set(f.digest, [...(usedBy.get(f.digest) ?? []), `${m.stage}:${path}`]);
      keysUsing.set(f.digest, (keysUsing.get(f.digest) ?? new Set()).add(key));
    }
  }
  const objects = await store.objects.list();
  const total = objects.reduce((n, o) => n + o.size, 0);
  options.progress?.start('verify', total, 'B');
  const report: VerifyReport = {
    checkedObjects: 0,
    checkedBytes: 0,
    corrupt: [],
    missing: [],
    badManifests,
    incomplete: [],
    removed: 0,
    invalidated: [],
    badViews: [],
    badLinks: [],
  };
  const present = new Set<string>();
  for (const o of objects) {
    options.signal?.throwIfAborted();
    present.add(o.digest);
    const { digest } = await hashFile(store.objects.path(o.digest), options.signal);
    report.checkedObjects++;
    report.checkedBytes += o.size;
    options.progress?.tick(o.size);
    if (digest !== o.digest) {
      report.corrupt.push({ digest: o.digest, actual: digest, usedBy: usedBy.get(o.digest) ?? [] });
      if (options.fix) {
        // Views hard-link the same bytes: drop them too; the next run rebuilds what it needs.
        for (const key of keysUsing.get(o.digest) ?? []) await store.removeView(key);
        await store.objects.remove(o.digest);
        report.removed++;
      }
    }
  }
  options.progress?.done();
  for (const [digest, users] of usedBy) if (!present.has(digest)) report.missing.push({ digest, usedBy: users });

  // Whatever was computed from a corrupt object may be wrong too, even with a correct key.
  const corrupt = new Set(report.corrupt.map((c) => c.digest));
  report.invalidated = downstreamOf(manifests, (m) => Object.values(m.files).some((f) => corrupt.has(f.digest))).map((m) => ({ stage: m.stage, key: m.key }));
  const invalid = new Set(report.invalidated.map((i) => i.key));
  // The results holding a corrupt or missing object cannot be used as they are (a run recomputes them).
  const missing = new Set(report.missing.map((m) => m.digest));
  for (const m of manifests) {
    if (invalid.has(m.key)) continue;
    const lacking = (bad: ReadonlySet<string>) => Object.keys(m.files).filter((p) => bad.has(m.files[p]!.digest));
    const [corruptPaths, missingPaths] = [lacking(corrupt), lacking(missing)];
    if (corruptPaths.length + missingPaths.length === 0) continue;
    report.incomplete.push({ stage: m.stage, key: m.key, corrupt: corruptPaths, missing: missingPaths });
    invalid.add(m.key);
  }
  if (options.fix) {
    for (const key of invalid) {
      await store.removeView(key);
      await store.removeManifest(key);
    }
    for (const file of badManifests) await rm(file, { force: true });
  }

  for (const m of manifests) {
    if (invalid.has(m.key)) continue;
    const paths = await store.viewMismatches(m);
    if (paths.length === 0) continue;
    report.badViews.push({ stage: m.stage, key: m.key, paths });
    if (options.fix) await store.rebuildView(m);
  }
  const byKey = new Map(manifests.map((m) => [m.key, m]));
  for (const [stage, ref] of await store.readRefs()) {
    const target = await store.stageLinkTarget(stage);
    if (target === undefined || !byKey.has(ref.key) || invalid.has(ref.key)) continue;
    if (target !== join('..', 'views', ref.key)) {
      report.badLinks.push({ stage, key: ref.key });
      if (options.fix) await store.linkStage(stage, ref.key);
    }
  }
  return report;
}

/** Manifests whose inputs (transitively) came from a manifest matching `tainted`. */
function downstreamOf(manifests: readonly Manifest[], tainted: (m: Manifest) => boolean): Manifest[] {
  const bad = new Set(manifests.filter(tainted).map((m) => `${m.stage}\0${m.outputsDigest}`));
  const found = new Map<string, Manifest>();
  for (let grew = true; grew;) {
    grew = false;
    for (const m of manifests) {
      if (found.has(m.key)) continue;
      if (Object.entries(m.material.inputs).some(([stage, digest]) => bad.has(`${stage}\0${digest}`))) {
        found.set(m.key, m);
        bad.add(`${m.stage}\0${m.outputsDigest}`);
        grew = true;
      }
    }
  }
  return [...found.values()];
}
