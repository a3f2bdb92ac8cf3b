// The `backend` param of the stages that run TensorFlow.js (train, evaluate): tf-free, so reading
// pipeline.yaml does not load tfjs. lib/tf/backend.ts resolves it.
import { z } from 'zod';

/** The tfjs backends a stage (or `--backend`) can name. */
export const BACKEND_NAMES = ['auto', 'tensorflow', 'native', 'wasm', 'cpu'] as const;

export const BackendParam = z
  .enum(BACKEND_NAMES)
  .default('auto')
  .describe(
    'tfjs backend: auto = tfjs-node (tensorflow) where it loads, else native (oneDNN kernels on wasm), else wasm, else cpu (slow); also --backend. The backend and package versions are in the cache key',
  );
