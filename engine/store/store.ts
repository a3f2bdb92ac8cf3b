// The artifact store under <pipeline root>/artifacts/ — see STORE_LAYOUT for what lives where.
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { hashFile } from './hash.js';
import { dirname, join } from 'node:path';
import { isErrno, isSyntaxError, randomSuffix, writeFileAtomic } from './fs-tree.js';
import { isManifest, type Manifest } from './manifest.js';
import { ObjectStore } from './objects.js';
import { RunLog } from './runs.js';
import { STORE_DIR } from './workspace-paths.js';

export { STORE_DIR };

export const STORE_LAYOUT = `\
artifacts/
  objects/ab/cdef…     immutable content-addressed files (sha256), mode 0444
  manifests/<key>.json one per cache key: key material + output tree (path → digest, size)
  refs.json            stage → its latest key (what status compares against)
  views/<key>/…        readable output tree of a key (hard links to objects)
  stages/<stage>       symlink to the stage's latest view (printed by \`pipeline show\`)
  runs/<id>.json       one record per \`pipeline run\`
  resume/<stage>-<key> checkpoints of an unfinished stage (deleted after its commit)
  state/stat-cache.json (inode, size, mtime) → digest, so unchanged files are not rehashed
  state/commands/<pgid>.json process groups of running commands (stopped by the next run if left over)
  tmp/                 outputs being written; cleaned at the start of each run (under the lock)
  lock, lock.json      the store lock and who holds it
`;

export interface Ref {
  key: string;
  /** When this stage last ran or was found cached with this key. */
  at: string;
}

export class Store {
  readonly dir: string;
  readonly objects: ObjectStore;
  readonly runs: RunLog;
  private refsWrite: Promise<void> = Promise.resolve();

  constructor(readonly root: string) {
    this.dir = join(root, STORE_DIR);
    this.objects = new ObjectStore(join(this.dir, 'objects'), join(this.dir, 'tmp'));
    this.runs = new RunLog(join(this.dir, 'runs'));
  }

  get manifestsDir(): string {
    return join(this.dir, 'manifests');
  }
  get viewsDir(): string {
    return join(this.dir, 'views');
  }
  get stagesDir(): string {
    return join(this.dir, 'stages');
  }
  get tmpDir(): string {
    return join(this.dir, 'tmp');
  }
  get resumeRoot(): string {
    return join(this.dir, 'resume');
  }
  get statCacheFile(): string {
    return join(this.dir, 'state', 'stat-cache.json');
  }
  /** Process groups of running commands (engine/run/command-groups.ts). */
  get commandsDir(): string {
    return join(this.dir, 'state', 'commands');
  }
  get refsFile(): string {
    return join(this.dir, 'refs.json');
  }

  async exists(): Promise<boolean> {
    try {
      return (await stat(this.dir)).isDirectory();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /** Creates the store directories (only commands that write call this, after validation). */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await Promise.all(
      [this.manifestsDir, this.viewsDir, this.stagesDir, this.tmpDir, this.resumeRoot, this.runs.dir, this.objects.dir, dirname(this.statCacheFile)].map((d) =>
        mkdir(d, { recursive: true }),
      ),
    );
  }

  // ---- manifests

  manifestPath(key: string): string {
    return join(this.manifestsDir, `${key}.json`);
  }

  async readManifest(key: string): Promise<Manifest | null> {
    let text: string;
    try {
      text = await readFile(this.manifestPath(key), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
    try {
      const parsed: unknown = JSON.parse(text);
      return isManifest(parsed) && parsed.key === key ? parsed : null;
    } catch {
      return null; // unreadable → treated as absent, so the stage reruns and rewrites it
    }
  }

  /** The commit point of a stage: objects and view are in place before this rename. */
  async writeManifest(m: Manifest): Promise<void> {
    await writeFileAtomic(this.manifestPath(m.key), JSON.stringify(m, null, 2) + '\n');
  }

  async manifestKeys(): Promise<string[]> {
    try {
      return (await readdir(this.manifestsDir)).filter((n) => /^[0-9a-f]{64}\.json$/.test(n)).map((n) => n.slice(0, -5));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
  }

  async removeManifest(key: string): Promise<void> {
    await rm(this.manifestPath(key), { force: true });
  }

  // ---- refs: stage → latest key

  async readRefs(): Promise<Map<string, Ref>> {
    try {
      const parsed = JSON.parse(await readFile(this.refsFile, 'utf8')) as Record<string, Ref>;
      return new Map(Object.entries(parsed));
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isSyntaxError(err)) return new Map();
      throw err;
    }
  }

  /** Writes refs; calls are serialized so the last write wins in call order. */
  writeRefs(refs: ReadonlyMap<string, Ref>): Promise<void> {
    const data = JSON.stringify(Object.fromEntries([...refs].sort(([a], [b]) => (a < b ? -1 : 1))), null, 2) + '\n';
    this.refsWrite = this.refsWrite.then(() => writeFileAtomic(this.refsFile, data));
    return this.refsWrite;
  }

  // ---- readable views

  viewPath(key: string): string {
    return join(this.viewsDir, key);
  }

  stageLinkPath(stage: string): string {
    return join(this.stagesDir, stage);
  }

  /** Makes sure views/<key> exists (hard links to the manifest's objects); returns its path. */
  async ensureView(m: Manifest): Promise<string> {
    const view = this.viewPath(m.key);
    try {
      await stat(view);
      return view;
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    return this.buildView(m);
  }

  /** Builds views/<key> afresh (after a commit: a forced rerun may have produced other bytes). */
  async rebuildView(m: Manifest): Promise<string> {
    await this.removeView(m.key);
    return this.buildView(m);
  }

  async removeView(key: string): Promise<void> {
    const view = this.viewPath(key);
    const trash = join(this.tmpDir, `trash-${randomSuffix()}`);
    await mkdir(this.tmpDir, { recursive: true });
    try {
      await rename(view, trash); // atomic: readers see the old view or none
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    await forceRemove(trash);
  }

  private async buildView(m: Manifest): Promise<string> {
    const view = this.viewPath(m.key);
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = await mkdtemp(join(this.tmpDir, 'view-'));
    try {
      for (const d of m.dirs) await mkdir(join(tmp, d), { recursive: true });
      for (const [rel, f] of Object.entries(m.files)) {
        const dest = join(tmp, rel);
        await mkdir(dirname(dest), { recursive: true });
        await this.objects.linkOut(f.digest, dest);
      }
      await mkdir(this.viewsDir, { recursive: true });
      await rename(tmp, view);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      // Another stage with the same key built it first: fine.
      if (!isErrno(err, 'ENOTEMPTY', 'EEXIST')) throw err;
    }
    return view;
  }

  /**
   * Files of `m`'s view that are not its objects: a hard link to another inode, a missing file, or (for
   * a copy, when links were impossible) other content (`rehashCopies`; else only its size is checked).
   * No view at all is fine: it is built when needed.
   */
  async viewMismatches(m: Manifest, rehashCopies = true): Promise<string[]> {
    const view = this.viewPath(m.key);
    try {
      await stat(view);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const bad: string[] = [];
    for (const [rel, f] of Object.entries(m.files)) {
      let shown;
      try {
        shown = await lstat(join(view, rel));
      } catch (err) {
        if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
        bad.push(rel);
        continue;
      }
      let object;
      try {
        object = await stat(this.objects.path(f.digest));
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
        continue; // reported as a missing object
      }
      if (shown.ino === object.ino && shown.dev === object.dev) continue;
      if (!shown.isFile() || shown.size !== f.size || (rehashCopies && (await hashFile(join(view, rel))).digest !== f.digest)) bad.push(rel);
    }
    return bad;
  }

  /** Points artifacts/stages/<stage> at views/<key> (atomically replacing the previous link). */
  async linkStage(stage: string, key: string): Promise<void> {
    const link = this.stageLinkPath(stage);
    const target = join('..', 'views', key);
    try {
      if ((await readlink(link)) === target) return;
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'EINVAL')) throw err;
    }
    await mkdir(this.stagesDir, { recursive: true });
    const tmp = `${link}.tmp-${randomSuffix()}`;
    await symlink(target, tmp);
    await rename(tmp, link);
  }

  async stageLinkTarget(stage: string): Promise<string | undefined> {
    try {
      return await readlink(this.stageLinkPath(stage));
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'EINVAL')) return undefined;
      throw err;
    }
  }

  // ---- temp and resume dirs

  /** A fresh directory under tmp/ (same file system as objects/, so commits are renames). */
  async makeTmpDir(label: string): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    return mkdtemp(join(this.tmpDir, `${label.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  }

  /** Removes everything under tmp/ — only with the lock held, when no other run can be writing. */
  async cleanTmp(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0;
      throw err;
    }
    await Promise.all(names.map((n) => forceRemove(join(this.tmpDir, n))));
    return names.length;
  }

  resumeDir(stage: string, key: string): string {
    return join(this.resumeRoot, `${stage}-${key.slice(0, 16)}`);
  }
}

/** rm -rf that also handles read-only files (objects in flight are 0444, but rm needs only the dir's write bit). */
export async function forceRemove(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 2 });
}
