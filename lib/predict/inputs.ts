// What `pipeline predict PATHS…` classifies: each path is an image file (any name: the decoder goes
// by the bytes), a folder (its .jpg/.jpeg/.png files, recursively, hidden ones aside, sorted by code
// unit so the order does not depend on the locale), or an archive (.tar, .tar.gz/.tgz, .zip, or a
// file that sniffs as one), unpacked safely (lib/fetch/extract.ts: no path escapes, no bombs) into
// a temporary directory this module creates and removes.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { archiveFormatFromName, extractArchive, sniffArchiveFormat, type ArchiveFormat } from '../fetch/extract.js';
import { FetchError, InterruptedError, PredictInputError } from '../errors.js';

const IMAGE_EXTENSION = /\.(jpe?g|png)$/i;

/** One image to classify. */
export interface ImageInput {
  /** Where its bytes are (an unpacked archive entry lives in the temporary directory). */
  path: string;
  /** How the output names it: the path as given, a folder's file under it, `archive.zip:inner/path.png`. */
  name: string;
}

/** A path that yielded no image: an archive that could not be unpacked. */
export interface InputFailure {
  name: string;
  reason: string;
}

/** Inputs and failures in the order of the paths given; `dispose` removes the unpacked archives. */
export interface ImageInputs {
  /** In order: an image to classify, or a failure to report in its place. */
  items: Array<ImageInput | InputFailure>;
  /** Files in folders and archives that are not JPEG or PNG by name (and hidden files): not classified. */
  ignored: number;
  dispose(): Promise<void>;
}

export const isFailure = (item: ImageInput | InputFailure): item is InputFailure => 'reason' in item;

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Image files under `dir`, recursively; symlinked directories are not followed (no loops). */
async function walk(dir: string, shownAs: (rel: string) => string, counts: { ignored: number }, signal?: AbortSignal): Promise<ImageInput[]> {
  const out: ImageInput[] = [];
  const visit = async (rel: string): Promise<void> => {
    if (signal?.aborted) throw new InterruptedError('predict interrupted');
    const entries = (await readdir(join(dir, rel), { withFileTypes: true })).sort((a, b) => byCodeUnit(a.name, b.name));
    for (const e of entries) {
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.name.startsWith('.')) {
        counts.ignored++;
        continue;
      }
      if (e.isDirectory()) {
        await visit(child);
        continue;
      }
      const isFile = e.isFile() || (e.isSymbolicLink() && (await stat(join(dir, child)).catch(() => undefined))?.isFile() === true);
      if (isFile && IMAGE_EXTENSION.test(e.name)) out.push({ path: join(dir, child), name: shownAs(child) });
      else counts.ignored++;
    }
  };
  await visit('');
  return out;
}

async function archiveFormat(path: string): Promise<ArchiveFormat | null> {
  const byName = archiveFormatFromName(path);
  if (byName) return byName;
  // An image by name is an image (a corrupt one is reported by the decoder); anything else may be an archive.
  return IMAGE_EXTENSION.test(path) ? null : sniffArchiveFormat(path);
}

/** The given paths as images to classify (see the top of this file). Throws PredictInputError for a path that does not exist. */
export async function imageInputs(paths: readonly string[], options: { signal?: AbortSignal } = {}): Promise<ImageInputs> {
  let temp: string | undefined;
  const counts = { ignored: 0 };
  const items: Array<ImageInput | InputFailure> = [];
  const dispose = async () => {
    if (temp) await rm(temp, { recursive: true, force: true });
    temp = undefined;
  };
  try {
    for (const [i, given] of paths.entries()) {
      const info = await stat(given).catch((err: NodeJS.ErrnoException) => {
        throw new PredictInputError(`${given}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
      });
      const shown = given.replace(/\/+$/, '') || given;
      if (info.isDirectory()) {
        items.push(...(await walk(given, (rel) => posix.join(shown, rel), counts, options.signal)));
        continue;
      }
      if (!info.isFile()) throw new PredictInputError(`${given}: not a file or directory`);
      const format = await archiveFormat(given);
      if (!format) {
        items.push({ path: given, name: given });
        continue;
      }
      temp ??= await mkdtemp(join(tmpdir(), 'pipeline-predict-'));
      const dest = join(temp, String(i));
      try {
        await extractArchive(given, format, dest, { label: given, ...(options.signal ? { signal: options.signal } : {}) });
      } catch (err) {
        const code = ((err as { cause?: NodeJS.ErrnoException }).cause ?? {}).code;
        if (!(err instanceof FetchError) || code === 'ENOSPC' || code === 'EDQUOT') throw err;
        // An archive that is unsafe or broken yields nothing, not part of its entries.
        await rm(dest, { recursive: true, force: true });
        items.push({ name: given, reason: `cannot unpack the archive: ${err.message}` });
        continue;
      }
      items.push(...(await walk(dest, (rel) => `${given}:${rel}`, counts, options.signal)));
    }
  } catch (err) {
    await dispose();
    throw err;
  }
  return { items, ignored: counts.ignored, dispose };
}
