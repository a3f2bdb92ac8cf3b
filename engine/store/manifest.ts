// A manifest records one committed stage result: the key and its material (so `status` can say
// what changed), and the output tree as relative path → object digest. Writing it is the commit point.
import type { KeyMaterial } from './cache-key.js';
import { hashValue } from './hash.js';

export const MANIFEST_FORMAT = 1;

export interface OutputFile {
  digest: string;
  size: number;
}

export interface Manifest {
  format: number;
  key: string;
  /** Stage that produced it (another stage with the same key would share it). */
  stage: string;
  kind: string;
  material: KeyMaterial;
  /** Resolved params the stage ran with (what downstream stages see as `params`). */
  params: Record<string, unknown>;
  /** Top-level output entries: declared outputs of a kind, or a cmd stage's outs. */
  entries: string[];
  /** Directories in the tree (relative paths), so empty ones come back on restore. */
  dirs: string[];
  /** Every file: relative path (`/`-separated) → object. */
  files: Record<string, OutputFile>;
  /** Digest of the listing (path → object digest): what downstream keys are built from. */
  outputsDigest: string;
  createdAt: string;
  durationMs: number;
  runId: string;
  /** The queue worker that computed it, when one did (`pipeline worker --name`): who gets the credit in `runs`. */
  worker?: string;
}

export function outputsDigestOf(files: Record<string, OutputFile>): string {
  return hashValue(
    Object.keys(files)
      .sort()
      .map((p) => [p, files[p]!.digest]),
  );
}

export function totalSize(m: Manifest): number {
  let n = 0;
  for (const f of Object.values(m.files)) n += f.size;
  return n;
}

/** Files of the manifest at or below a top-level entry. */
export function filesUnder(m: Manifest, entry: string): [string, OutputFile][] {
  return Object.entries(m.files).filter(([p]) => p === entry || p.startsWith(entry + '/'));
}

export function isManifest(v: unknown): v is Manifest {
  const m = v as Manifest;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.format === MANIFEST_FORMAT &&
    typeof m.key === 'string' &&
    typeof m.files === 'object' &&
    Array.isArray(m.entries) &&
    typeof m.material === 'object'
  );
}
