// What every store command starts from: the validated pipeline, its store, the stat cache and the
// stage kinds. Opening a session writes nothing (validation comes before any write).
import type { StageKind } from './contract.js';
import type { FactsEnv } from './facts.js';
import type { Pipeline } from './pipeline.js';
import { StatCache } from './stat-cache.js';
import { Store } from './store.js';

export interface Session {
  pipeline: Pipeline;
  store: Store;
  statCache: StatCache;
  kinds: ReadonlyMap<string, StageKind>;
  env(signal: AbortSignal): FactsEnv;
}

export async function openSession(configFile: string, options: { sets?: readonly string[]; kinds?: ReadonlyMap<string, StageKind> } = {}): Promise<Session> {
  const { loadPipeline } = await import('./config.js');
  const kinds = options.kinds ?? (await import('../stages/index.js')).builtinKinds;
  const pipeline = await loadPipeline(configFile, { sets: options.sets, kinds });
  const store = new Store(pipeline.root);
  const statCache = await StatCache.load(store.statCacheFile, pipeline.root);
  return {
    pipeline,
    store,
    statCache,
    kinds,
    env: (signal) => ({ pipeline, store, statCache, kinds, signal }),
  };
}
