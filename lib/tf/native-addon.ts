// Loads the native training kernels (native/dnnl-kernels.cc, built by native/build.mjs): oneDNN
// convolutions and matrix products, and OpenMP loops for the ops between them, that read and
// write the wasm backend's heap in place.
// PIPELINE_NATIVE_ADDON names another file (a missing one simulates a machine without the addon);
// PIPELINE_NATIVE=off hides it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions; tensors are Float32Array views (of the wasm heap), geometry an Int32Array of 17. */
export interface NativeAddon {
  conv2d(geometry: Int32Array, x: Float32Array, filter: Float32Array, bias: Float32Array | null, y: Float32Array, relu: boolean): void;
  conv2dBackpropInput(geometry: Int32Array, dy: Float32Array, filter: Float32Array, dx: Float32Array): void;
  conv2dBackpropFilter(geometry: Int32Array, x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  matMul(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    aBroadcast: boolean,
    bBroadcast: boolean,
    bias: Float32Array | null,
    relu: boolean,
  ): void;
  /** y = op(x) elementwise: 0 relu, 1 step (alpha where x <= 0), 2 floor. */
  unary(op: number, x: Float32Array, y: Float32Array, alpha: number): void;
  /** out = a op b: 0 add, 1 sub, 2 mul, 3 div; a shorter side repeats (a scalar, or the other's trailing dims). */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** out[j] = sum over r of x[r * cols + j]. */
  sumRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void;
  /** NHWC max pooling; geometry an Int32Array of 12 (lib/tf/kernels/native-ops.ts poolGeometry). */
  maxPool(geometry: Int32Array, x: Float32Array, y: Float32Array): void;
  maxPoolGrad(geometry: Int32Array, x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  info(): { version: string; threads: number; lastImpl: string };
}

/** Bumped when the native kernels' arithmetic changes (part of the train stage's cache key). */
export const NATIVE_KERNELS_VERSION = '2';

export type NativeLoad = { addon: NativeAddon; path: string } | { addon: undefined; reason: string };

const require = createRequire(import.meta.url);
let cached: NativeLoad | undefined;

/** The addon's default path: native/build/Release under the package root (found from this file, in lib/ or dist/lib/). */
function defaultPath(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'native', 'build.mjs'))) return join(dir, 'native', 'build', 'Release', 'dnnl_kernels.node');
    dir = dirname(dir);
  }
  return undefined;
}

/** Loads the addon once per process; `reason` says why not (one line, for the fallback message). */
export function loadNativeAddon(): NativeLoad {
  if (cached !== undefined) return cached;
  cached = load();
  return cached;
}

function load(): NativeLoad {
  if (process.env.PIPELINE_NATIVE === 'off') return { addon: undefined, reason: 'PIPELINE_NATIVE=off' };
  const path = process.env.PIPELINE_NATIVE_ADDON || defaultPath();
  if (path === undefined || !existsSync(path)) {
    return {
      addon: undefined,
      reason: `not built (${path ?? 'native/build/Release/dnnl_kernels.node'} missing: install libdnnl-dev and a C++ compiler, then npm run build)`,
    };
  }
  // oneDNN's OpenMP threads spin between kernels by default; on a machine shared with other jobs
  // (and between our kernels the wasm ops run on one thread) the spinning takes CPU from the work:
  // measured 1.6-1.8x fewer images per CPU-second. libgomp reads this when the addon loads it.
  process.env.OMP_WAIT_POLICY ??= 'passive';
  try {
    const addon = require(path) as NativeAddon;
    addon.info();
    return { addon, path };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { addon: undefined, reason: `${path} does not load: ${message}` };
  }
}

/** Forgets the loaded state, so a test can change PIPELINE_NATIVE_ADDON (the addon itself stays loaded). */
export function resetNativeAddonForTests(): void {
  cached = undefined;
}
