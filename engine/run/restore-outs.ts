// Puts a cmd stage's committed outs back into the workspace (copies, writable): on a cache hit, or
// a result pulled from the remote. A half-restored out is removed, never left behind.
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { DiskFullError } from '../errors.js';
import type { StatCache } from '../store/stat-cache.js';
import { filesUnder, type Manifest } from '../store/manifest.js';
import type { Store } from '../store/store.js';
import { failedForSpace } from './disk-full.js';
import { ownedOutPath } from './owned-paths.js';

export async function restoreOuts(store: Store, statCache: StatCache, root: string, m: Manifest, outs: readonly string[], signal: AbortSignal): Promise<void> {
  for (const out of outs) {
    const abs = await ownedOutPath(root, out, m.stage);
    await rm(abs, { recursive: true, force: true });
    // Paths below the out are inside what we just made, so no link can redirect them.
    const under = (p: string) => join(abs, relative(out, p));
    try {
      for (const d of m.dirs) if (d === out || d.startsWith(out + '/')) await mkdir(under(d), { recursive: true });
      for (const [rel, f] of filesUnder(m, out)) {
        const dest = under(rel);
        await mkdir(dirname(dest), { recursive: true });
        await store.objects.copyOut(f.digest, dest, signal);
        await statCache.remember(dest, f.digest);
      }
    } catch (err) {
      if (!failedForSpace(err)) throw err;
      // A half-restored out is worse than none: the next run restores it whole.
      await rm(abs, { recursive: true, force: true });
      throw new DiskFullError(
        `stage ${m.stage}: no space left on device while restoring ${out} from the store (the disk holding ${root} is full); removed the partial copy`,
        { cause: err },
      );
    }
  }
}
