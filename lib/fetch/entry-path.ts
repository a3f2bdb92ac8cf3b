// The path rules an archive entry and a pack entry share: relative, no `..`, no NUL. Checked on
// names an archive announces (extract.ts, before anything is written) and on the paths of a pack's
// index when it is read (pack.ts), so a hand-edited index cannot point outside its tree either.
import { posix } from 'node:path';

const ABSOLUTE = /^([A-Za-z]:)?[\\/]|^[A-Za-z]:/;

/** Why `name` may not name a file below an output directory, or null when it may. */
export function unsafePathReason(name: string): string | null {
  if (name.includes('\0')) return 'NUL byte in path';
  if (ABSOLUTE.test(name)) return 'absolute path';
  if (name.split(/[\\/]/).includes('..')) return "path contains '..'";
  return null;
}

/** `name` as a relative path without `.` segments, doubled or trailing slashes ('' for the root itself). */
export function normalizeEntryPath(name: string): string {
  const normalized = posix.normalize(name).replace(/\/+$/, '');
  return normalized === '.' ? '' : normalized.replace(/^\.\//, '');
}

/**
 * Whether `path` is a safe relative path already in normal form, naming something below the root
 * (what normalizeEntryPath gives for a name unsafePathReason accepts). Checked per entry of a pack
 * index, so without normalising.
 */
export function isCleanEntryPath(path: string): boolean {
  if (path === '' || path.includes('\0') || ABSOLUTE.test(path)) return false;
  for (const part of path.split('/'))
    if (part === '' || part === '.' || part === '..' || (part.includes('\\') && part.split('\\').includes('..'))) return false;
  return true;
}
