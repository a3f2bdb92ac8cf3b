// Workspace paths in `deps:` and `outs:`: relative to the pipeline root, normalized, never escaping it.
import { posix, win32 } from 'node:path';

/** The store lives here; no command may claim it as an output. */
export const STORE_DIR = 'artifacts';

export type NormalizedPath = { ok: true; path: string } | { ok: false; message: string };

/** `./data//x/` → `data/x`; rejects absolute paths, `..` escaping the root, and the root itself. */
export function normalizeWorkspacePath(raw: string): NormalizedPath {
  if (raw.trim() === '') return { ok: false, message: 'is empty' };
  if (posix.isAbsolute(raw) || win32.isAbsolute(raw)) return { ok: false, message: 'is absolute (paths are relative to the pipeline directory)' };
  const path = posix.normalize(raw.replaceAll('\\', '/')).replace(/\/+$/, '');
  if (path === '..' || path.startsWith('../')) return { ok: false, message: 'escapes the pipeline directory' };
  if (path === '.' || path === '') return { ok: false, message: 'is the whole pipeline directory' };
  return { ok: true, path };
}

/** Whether `inner` is `outer` or lies under it (both normalized). */
export function isSameOrInside(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer + '/');
}

/** Whether either path contains the other: they name overlapping parts of the workspace. */
export function overlaps(a: string, b: string): boolean {
  return isSameOrInside(a, b) || isSameOrInside(b, a);
}
