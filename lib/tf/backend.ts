// Training backend selection: tfjs-node where it loads, else native (wasm with oneDNN kernels),
// else wasm, else cpu. All model code imports `@tensorflow/tfjs`; this module only picks and
// initialises the backend. TensorFlow.js is imported on demand: resolveBackend() runs at plan
// time on every command.
import { createRequire } from 'node:module';
import { WASM_TRAINING_KERNELS_VERSION } from './kernels/version.js';
import { loadNativeAddon, NATIVE_KERNELS_VERSION } from './native-addon.js';
import { TFJS_NODE_REMEDY, tfjsNodeState } from './tfjs-node.js';

export type BackendPreference = 'auto' | 'tensorflow' | 'native' | 'wasm' | 'cpu';
export type BackendName = 'tensorflow' | 'native' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  /** Package versions that change numerical results (part of the train stage's cache key). */
  versions: Record<string, string>;
  /** Set by initBackend on wasm and native: whether the SIMD binary runs, and the kernels we registered. */
  wasm?: { simd: boolean; kernels: string[] };
  /** Set by initBackend on native: the kernels oneDNN runs and its threads. */
  native?: { kernels: string[]; threads: number };
  /** Why `auto` did not pick a faster backend (one line each, for the log), e.g. the addon is not built. */
  fallbacks?: string[];
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string | undefined {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** Cheap (no tf load; loads the native addon once): which backend `pref` resolves to here, and its versions. */
export function resolveBackend(pref: BackendPreference): BackendInfo {
  const core = packageVersion('@tensorflow/tfjs-core') ?? 'unknown';
  const tfjsNode = tfjsNodeState();
  // Installed without its binding, it cannot load: auto does not plan on it.
  const node = tfjsNode.state === 'ready' ? tfjsNode.version : undefined;
  const wasm = packageVersion('@tensorflow/tfjs-backend-wasm');
  const native = pref === 'auto' || pref === 'native' ? loadNativeAddon() : undefined;
  const name: BackendName = pref !== 'auto' ? pref : node ? 'tensorflow' : wasm && native?.addon ? 'native' : wasm ? 'wasm' : 'cpu';
  const versions: Record<string, string> = { '@tensorflow/tfjs-core': core };
  if (name === 'tensorflow') versions['@tensorflow/tfjs-node'] = node ?? 'missing';
  if (name === 'wasm' || name === 'native') {
    versions['@tensorflow/tfjs-backend-wasm'] = wasm ?? 'missing';
    versions['wasm-training-kernels'] = WASM_TRAINING_KERNELS_VERSION;
  }
  if (name === 'native') {
    versions['native-kernels'] = NATIVE_KERNELS_VERSION;
    versions.onednn = native?.addon?.info().version ?? 'missing';
  }
  return { name, versions };
}

/** Loads and activates the backend; `auto` falls back from tensorflow to native to wasm to cpu when loading fails. */
export async function initBackend(pref: BackendPreference): Promise<BackendInfo> {
  const tf = await import('@tensorflow/tfjs');
  const order: BackendName[] = pref === 'auto' ? ['tensorflow', 'native', 'wasm', 'cpu'] : [pref];
  const fallbacks: string[] = [];
  let lastError: unknown;
  for (const name of order) {
    try {
      if (name === 'tensorflow') {
        const node = tfjsNodeState();
        if (node.state !== 'ready') {
          const why =
            node.state === 'missing'
              ? '@tensorflow/tfjs-node is not installed (optional: see the README, "tfjs-node")'
              : `@tensorflow/tfjs-node ${node.version} is installed without its native library (its install script did not run): ${TFJS_NODE_REMEDY}`;
          lastError = new Error(why);
          // Missing is the common case and says nothing new; installed but unusable does.
          if (node.state === 'unbuilt') fallbacks.push(`${why}; using the next backend`);
          continue;
        }
        await import('@tensorflow/tfjs-node' as string);
      }
      if (name === 'native') {
        const load = loadNativeAddon();
        if (load.addon === undefined) throw new Error(`native backend unavailable: ${load.reason}`);
      }
      if (name === 'wasm' || name === 'native') await import('@tensorflow/tfjs-backend-wasm');
      const tfName = name === 'native' ? 'wasm' : name;
      if (await tf.setBackend(tfName)) {
        await tf.ready();
        const info = resolveBackend(name);
        if (name === 'wasm' || name === 'native') await installKernels(info, name === 'native');
        if (fallbacks.length > 0) info.fallbacks = fallbacks;
        return info;
      }
    } catch (err) {
      lastError = err;
      // A native addon that does not load is worth a line.
      if (name === 'native') fallbacks.push(`${err instanceof Error ? err.message : String(err)}; using the next backend`);
    }
  }
  throw new Error(`no usable tfjs backend for '${pref}': ${lastError instanceof Error ? lastError.message : String(lastError)}`);
}

/** Our wasm training kernels, and on native the oneDNN ones over them (kernel registration is process-wide). */
async function installKernels(info: BackendInfo, native: boolean): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  // Stock wasm cannot train a conv net (no Conv2DBackpropFilter) and its transposed
  // matmuls and conv input gradient are scalar loops: install our kernels.
  const { registerWasmTrainingKernels } = await import('./kernels/register.js');
  const { installNativeKernels, uninstallNativeKernels } = await import('./kernels/native.js');
  uninstallNativeKernels();
  const kernels = registerWasmTrainingKernels();
  info.wasm = { simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')), kernels };
  if (native) {
    const load = loadNativeAddon();
    if (load.addon === undefined) throw new Error(`native backend unavailable: ${load.reason}`);
    info.native = { kernels: installNativeKernels(load.addon), threads: load.addon.info().threads };
  }
}
