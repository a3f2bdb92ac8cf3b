// What a command starts from: the engine's session (engine/session.ts) or pipeline, with the
// built-in stage kinds. The engine runs the kinds it is handed and imports none: this is where the
// CLI hands it stages/index.ts.
import type { LoadOptions } from '../engine/config/load.js';
import type { Pipeline } from '../engine/config/pipeline.js';
import type { Session, SessionOptions } from '../engine/session.js';
import { builtinKinds as kinds } from '../stages/index.js';
import { openSession as openWithKinds } from '../engine/session.js';
import { loadPipeline as loadWithKinds } from '../engine/config/load.js';

export async function openSession(configFile: string, options: Omit<SessionOptions, 'kinds'> = {}): Promise<Session> {
  return openWithKinds(configFile, { ...options, kinds });
}

export async function loadPipeline(configFile: string, options: Omit<LoadOptions, 'kinds'> = {}): Promise<Pipeline> {
  return loadWithKinds(configFile, { ...options, kinds });
}
