// Whether @tensorflow/tfjs-node can run here, told without loading it (resolveBackend runs at plan
// time on every command). The package is an optional dependency whose install script downloads
// libtensorflow and builds or fetches its binding (lib/napi-v*/tfjs_binding.node). Offline that
// script fails and npm drops the package without a word; where npm skips the script (allowScripts
// does not name it and strict-allow-scripts is set, or a later npm that blocks unreviewed scripts)
// the package is installed without its binding and cannot load: that case is worth a line.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type TfjsNodeState = { state: 'missing' } | { state: 'unbuilt'; version: string } | { state: 'ready'; version: string };

/** How to get the binding of a package installed without it (the README's tfjs-node section). */
export const TFJS_NODE_REMEDY = 'npm install-scripts approve @tensorflow/tfjs-node, then npm rebuild @tensorflow/tfjs-node';

const require = createRequire(import.meta.url);

/** The state of the tfjs-node package in `dir` (its package.json's version, read by the caller). */
export function tfjsNodeStateIn(dir: string, version: string): TfjsNodeState {
  let napi: string[] = [];
  try {
    napi = readdirSync(join(dir, 'lib')).filter((d) => /^napi-v\d+$/.test(d));
  } catch {
    // no lib/: nothing was built
  }
  return napi.some((d) => existsSync(join(dir, 'lib', d, 'tfjs_binding.node'))) ? { state: 'ready', version } : { state: 'unbuilt', version };
}

export function tfjsNodeState(): TfjsNodeState {
  let manifest: string;
  try {
    manifest = require.resolve('@tensorflow/tfjs-node/package.json');
  } catch {
    return { state: 'missing' };
  }
  const { version } = require(manifest) as { version: string };
  return tfjsNodeStateIn(dirname(manifest), version);
}
