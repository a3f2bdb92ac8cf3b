// Verification: rehash every object and compare with its name; find objects that manifests
// reference but the store lacks, and manifests that cannot be read.
import { hashFile } from './hash.js';
import type { ProgressReporter } from './contract.js';
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
  /** Manifest files that do not parse. */
  badManifests: string[];
  /** Corrupt objects deleted (with `fix`), so the stages that made them run again. */
  removed: number;
}

export async function verifyStore(store: Store, options: { fix?: boolean; progress?: ProgressReporter; signal?: AbortSignal } = {}): Promise<VerifyReport> {
  const usedBy = new Map<string, string[]>();
  const keysUsing = new Map<string, Set<string>>();
  const badManifests: string[] = [];
  for (const key of await store.manifestKeys()) {
    const m = await store.readManifest(key);
    if (!m) {
      badManifests.push(store.manifestPath(key));
      continue;
    }
    for (const [path, f] of Object.entries(m.files)) {
      usedBy.set(f.digest, [...(usedBy.get(f.digest) ?? []), `${m.stage}:${path}`]);
      keysUsing.set(f.digest, (keysUsing.get(f.digest) ?? new Set()).add(key));
    }
  }
  const objects = await store.objects.list();
  const total = objects.reduce((n, o) => n + o.size, 0);
  options.progress?.start('verify', total, 'B');
  const report: VerifyReport = { checkedObjects: 0, checkedBytes: 0, corrupt: [], missing: [], badManifests, removed: 0 };
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
  return report;
}
