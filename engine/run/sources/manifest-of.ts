// The manifest of a result computed here: what the store records of it under its key.
import { MANIFEST_FORMAT, outputsDigestOf, type Manifest } from '../../store/manifest.js';
import type { KeyMaterial } from '../../store/cache-key.js';

export interface ComputedResult {
  stage: string;
  kind: string;
  key: string;
  material: KeyMaterial;
  params: Record<string, unknown>;
  entries: string[];
  tree: { files: Manifest['files']; dirs: string[] };
  started: number;
  runId: string;
  worker: string | undefined;
}

export function manifestOf(r: ComputedResult): Manifest {
  return {
    format: MANIFEST_FORMAT,
    key: r.key,
    stage: r.stage,
    kind: r.kind,
    material: r.material,
    params: r.params,
    entries: r.entries,
    dirs: r.tree.dirs,
    files: r.tree.files,
    outputsDigest: outputsDigestOf(r.tree.files),
    createdAt: new Date(r.started).toISOString(),
    durationMs: Date.now() - r.started,
    runId: r.runId,
    ...(r.worker ? { worker: r.worker } : {}),
  };
}
