// What every store command starts from: the validated pipeline, its store, the stat cache and the
// stage kinds it was handed. Opening a session writes nothing (validation comes before any write).
import { setMaxListeners } from 'node:events';
import type { StageKind } from './contract.js';
import type { FactsEnv } from './plan/facts.js';
import type { Pipeline } from './config/pipeline.js';
import { isErrno } from './store/fs-tree.js';
import { StatCache } from './store/stat-cache.js';
import { Store } from './store/store.js';

export interface Session {
  pipeline: Pipeline;
  store: Store;
  statCache: StatCache;
  kinds: ReadonlyMap<string, StageKind>;
  env(signal: AbortSignal): FactsEnv;
}

export interface SessionOptions {
  sets?: readonly string[];
  /** The stage kinds the pipeline may use (the CLI passes the built-in registry, stages/index.ts). */
  kinds: ReadonlyMap<string, StageKind>;
  /** `--backend`: sets the `backend` param of every stage whose kind has one (train, evaluate). */
  backend?: string;
  /** Another session of the same workspace whose store and stat cache this one shares (a sweep's experiments). */
  reuse?: Session;
}

export async function openSession(configFile: string, options: SessionOptions): Promise<Session> {
  const { loadPipeline } = await import('./config/load.js');
  const { kinds } = options;
  let pipeline = await loadPipeline(configFile, { sets: options.sets, kinds });
  if (options.backend !== undefined) {
    const backend = options.backend;
    const extra = [...pipeline.stages.values()]
      .filter((stage) => kindHasParam(kinds.get(stage.kind), 'backend'))
      .map((stage) => `${stage.name}.backend=${backend}`);
    // Explicit --set wins over --backend, so it goes last.
    if (extra.length > 0) pipeline = await loadPipeline(configFile, { sets: [...extra, ...(options.sets ?? [])], kinds });
  }
  if (options.reuse) {
    const { store, statCache } = options.reuse;
    return { pipeline, store, statCache, kinds, env: (signal) => (setMaxListeners(0, signal), { pipeline, store, statCache, kinds, signal }) };
  }
  const store = new Store(pipeline.root);
  const statCache = await StatCache.load(store.statCacheFile, pipeline.root);
  // Objects we write are vouched for by their stat, so checking them later costs a stat, not a hash.
  store.objects.onPlaced = (path, digest) => statCache.remember(path, digest);
  store.objects.isSound = async (path, digest) => {
    try {
      return (await statCache.digestFile(path, { trustRecent: true })).digest === digest;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  };
  return {
    pipeline,
    store,
    statCache,
    kinds,
    env: (signal) => {
      // Every file being hashed listens to the run's signal: thousands at once in a large pipeline.
      setMaxListeners(0, signal);
      return { pipeline, store, statCache, kinds, signal };
    },
  };
}

function kindHasParam(kind: StageKind | undefined, name: string): boolean {
  const shape = (kind?.params as { shape?: Record<string, unknown> } | undefined)?.shape;
  return shape !== undefined && name in shape;
}
