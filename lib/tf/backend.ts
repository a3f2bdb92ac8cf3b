// Training backend selection: tfjs-node where it loads, else wasm, else cpu.
// All model code imports `@tensorflow/tfjs`; this module only picks and initialises the backend.
// TensorFlow.js is imported on demand: resolveBackend() runs at plan time on every command.
import { createRequire } from 'node:module';
import { WASM_TRAINING_KERNELS_VERSION } from './kernels/version.js';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  /** Package versions that change numerical results (part of the train stage's cache key). */
  versions: Record<string, string>;
  /** Set by initBackend on wasm: whether the SIMD binary runs, and the kernels we registered. */
  wasm?: { simd: boolean; kernels: string[] };
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string | undefined {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** Cheap (no tf load): which backend `pref` resolves to on this machine, and its versions. */
export function resolveBackend(pref: BackendPreference): BackendInfo {
  const core = packageVersion('@tensorflow/tfjs-core') ?? 'unknown';
  const node = packageVersion('@tensorflow/tfjs-node');
  const wasm = packageVersion('@tensorflow/tfjs-backend-wasm');
  const name: BackendName = pref !== 'auto' ? pref : node ? 'tensorflow' : wasm ? 'wasm' : 'cpu';
  const versions: Record<string, string> = { '@tensorflow/tfjs-core': core };
  if (name === 'tensorflow') versions['@tensorflow/tfjs-node'] = node ?? 'missing';
  if (name === 'wasm') {
    versions['@tensorflow/tfjs-backend-wasm'] = wasm ?? 'missing';
    versions['wasm-training-kernels'] = WASM_TRAINING_KERNELS_VERSION;
  }
  return { name, versions };
}

/** Loads and activates the backend; `auto` falls back from tensorflow to wasm to cpu when loading fails. */
export async function initBackend(pref: BackendPreference): Promise<BackendInfo> {
  const tf = await import('@tensorflow/tfjs');
  const order: BackendName[] = pref === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [pref];
  let lastError: unknown;
  for (const name of order) {
    try {
      if (name === 'tensorflow') await import('@tensorflow/tfjs-node' as string);
      if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
      if (await tf.setBackend(name)) {
        await tf.ready();
        const info = resolveBackend(name);
        if (name === 'wasm') {
          // Stock wasm cannot train a conv net (no Conv2DBackpropFilter) and its transposed
          // matmuls and conv input gradient are scalar loops: install our kernels.
          const { registerWasmTrainingKernels } = await import('./kernels/register.js');
          const kernels = registerWasmTrainingKernels();
          info.wasm = { simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')), kernels };
        }
        return info;
      }
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`no usable tfjs backend for '${pref}': ${String(lastError)}`);
}
