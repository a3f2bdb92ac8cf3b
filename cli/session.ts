// What a command starts from: the engine's session (engine/session.ts) or pipeline, with the
// built-in stage kinds. The engine runs the kinds it is handed and imports none: this is where the
// CLI hands it stages/index.ts. Loaded on demand like the engine, so `pipeline --help` stays quick.
import type { LoadOptions } from '../engine/config/load.js';
import type { KindRegistry } from '../engine/config/parse.js';
import type { Pipeline } from '../engine/config/pipeline.js';
import type { Session, SessionOptions } from '../engine/session.js';

export async function builtinKinds(): Promise<KindRegistry> {
  const { builtinKinds } = await import('../stages/index.js');
  return builtinKinds;
}

export async function openSession(configFile: string, options: Omit<SessionOptions, 'kinds'> = {}): Promise<Session> {
  const { openSession: openWithKinds } = await import('../engine/session.js');
  return openWithKinds(configFile, { ...options, kinds: await builtinKinds() });
}

export async function loadPipeline(configFile: string, options: Omit<LoadOptions, 'kinds'> = {}): Promise<Pipeline> {
  const { loadPipeline: loadWithKinds } = await import('../engine/config/load.js');
  return loadWithKinds(configFile, { ...options, kinds: await builtinKinds() });
}
