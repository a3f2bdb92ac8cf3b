// Where a cmd stage's out really is, before anything there is deleted or written: the lexical check
// at load time cannot see symbolic links, so a parent directory that links out of the pipeline
// directory (`sub -> /elsewhere`) would make `outs: [sub/x]` delete /elsewhere/x.
import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { StageError } from '../errors.js';
import { isErrno } from '../store/fs-tree.js';
import { overlaps, STORE_DIR } from '../store/workspace-paths.js';

/** Paths no out may reach, even through links: the store and the git directory. */
const NOT_OWNED = [STORE_DIR, '.git'];

/**
 * The absolute path of `out` with its parent directories' links resolved, after checking that it
 * stays inside the pipeline directory and outside the store and .git. The out itself is not
 * followed: deleting a link deletes only the link.
 */
export async function ownedOutPath(root: string, out: string, stage: string): Promise<string> {
  const abs = resolve(root, out);
  const lexical = relative(root, abs);
  if (lexical === '' || lexical.startsWith('..') || isAbsolute(lexical)) throw new StageError(`stage ${stage}: out ${out} is outside the pipeline directory`);
  const realRoot = await realpath(root);
  const parent = await realpathOfExisting(dirname(abs));
  const real = join(parent, basename(abs));
  const rel = relative(realRoot, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new StageError(
      `stage ${stage}: out ${out} resolves to ${real}, outside the pipeline directory (through a symbolic link); refusing to delete or write it`,
    );
  }
  const relPosix = rel.split(sep).join('/');
  const forbidden = NOT_OWNED.find((p) => overlaps(relPosix, p));
  if (forbidden !== undefined)
    throw new StageError(`stage ${stage}: out ${out} resolves to ${relPosix}, inside ${forbidden}/ (through a symbolic link); refusing to delete or write it`);
  // The same place, spelled under `root` as callers know it (the stat cache keys paths by root).
  return resolve(root, rel);
}

/** realpath of the deepest existing ancestor, with the missing rest appended. */
async function realpathOfExisting(path: string): Promise<string> {
  const missing: string[] = [];
  let p = path;
  for (;;) {
    try {
      return join(await realpath(p), ...missing);
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENOTDIR') || dirname(p) === p) throw err;
      missing.unshift(basename(p));
      p = dirname(p);
    }
  }
}
