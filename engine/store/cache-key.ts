// The cache key: sha256 of the canonical JSON of everything that determines a stage's outputs.
// Same material → same key → the stage is skipped and its committed outputs reused.
import { canonicalJson, hashValue } from './hash.js';

/** Bump when the key material's meaning changes: every stage then reruns once. */
export const KEY_FORMAT = 1;

export interface KeyMaterial {
  format: number;
  /** Kind name, or `cmd`. */
  kind: string;
  /** Kind implementation version (kind stages). */
  version?: number;
  /** Shell command text after substitution (cmd stages). */
  cmd?: string;
  /** Declared outs (cmd stages): changing where outputs go reruns the command. */
  outs?: string[];
  /** Content digests of the stage's own deps (cmd stages; deps produced by upstream stages are covered by `inputs`); null = missing. */
  deps?: Record<string, string | null>;
  /** `kind.cacheParams(params)` or the resolved params. */
  params: unknown;
  /** Upstream stage name → digest of that stage's committed outputs listing (not its key). */
  inputs: Record<string, string>;
  /** Runtime facts from `kind.fingerprint()` (backend, package versions, a remote's ETag...). */
  fingerprint?: Record<string, unknown>;
}

export function cacheKey(material: KeyMaterial): string {
  return hashValue(material);
}

export interface ValueChange {
  /** Dotted path inside the compared value, e.g. `lr` or `model.0.filters`. */
  path: string;
  old: unknown;
  new: unknown;
}

/** Leaf-level differences between two JSON values (object members by name, arrays by index). */
export function diffValues(a: unknown, b: unknown, prefix = ''): ValueChange[] {
  if (canonicalJson(a) === canonicalJson(b)) return [];
  const bothObjects = isPlainObject(a) && isPlainObject(b);
  const bothArrays = Array.isArray(a) && Array.isArray(b) && a.length === b.length;
  if (!bothObjects && !bothArrays) return [{ path: prefix || '(value)', old: a, new: b }];
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  const keys = [...new Set([...ka, ...kb])].sort();
  const out: ValueChange[] = [];
  for (const k of keys) {
    const path = prefix ? `${prefix}.${k}` : k;
    out.push(...diffValues((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path));
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
