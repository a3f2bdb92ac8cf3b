// Local fetch sources: `file://` URLs and paths (relative to the pipeline root), files or directories.
import { copyFile, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FetchError, InterruptedError } from '../errors.js';

const HTTP_URL = /^https?:\/\//i;
const FILE_URL = /^file:\/\//i;
/** Anything with a `scheme://` prefix other than http(s) and file is not a source we can read. */
const OTHER_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

export function isHttpUrl(url: string): boolean {
  return HTTP_URL.test(url);
}

/** Matches `http(s)://`, `file://` and plain paths: the sources fetch supports (also in the params schema). */
export const SUPPORTED_SOURCE = /^(?:https?:\/\/|file:\/\/|(?![A-Za-z][A-Za-z0-9+.-]*:\/\/))/i;

/** The absolute local path that `url` names, or null for http(s) URLs. */
export function localSourcePath(url: string, root: string): string | null {
  if (isHttpUrl(url)) return null;
  if (FILE_URL.test(url)) return fileURLToPath(url);
  if (OTHER_SCHEME.test(url)) throw new FetchError(`unsupported source "${url}": expected http(s)://, file:// or a local path`);
  return isAbsolute(url) ? url : resolve(root, url);
}

export async function localSourceType(path: string): Promise<'file' | 'directory'> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new FetchError(`local source not found: ${path}`);
  }
  if (info.isFile()) return 'file';
  if (info.isDirectory()) return 'directory';
  throw new FetchError(`local source is neither a file nor a directory: ${path}`);
}

/**
 * Copies a directory tree as plain files: symlinks are followed (the copy must stand alone in the
 * store), loops are an error, special files are skipped. Returns the number of files copied.
 */
export async function copyDirectory(src: string, dest: string, signal: AbortSignal): Promise<number> {
  return copyTree(src, dest, signal, new Set());
}

async function copyTree(src: string, dest: string, signal: AbortSignal, ancestors: Set<string>): Promise<number> {
  const real = await realpath(src);
  if (ancestors.has(real)) throw new FetchError(`symlink loop in local source at ${src}`);
  ancestors.add(real);
  await mkdir(dest, { recursive: true });
  let files = 0;
  for (const entry of await readdir(src, { withFileTypes: true })) {
    if (signal.aborted) throw new InterruptedError('fetch interrupted');
    const from = join(src, entry.name);
    const to = join(dest, entry.name);
    let info: { isFile(): boolean; isDirectory(): boolean } = entry;
    if (entry.isSymbolicLink()) {
      try {
        info = await stat(from);
      } catch {
        throw new FetchError(`broken symlink in local source: ${from}`);
      }
    }
    if (info.isDirectory()) files += await copyTree(from, to, signal, ancestors);
    else if (info.isFile()) {
      await copyFile(from, to);
      files++;
    }
  }
  ancestors.delete(real);
  return files;
}
