// The `backend` param of the stages that run TensorFlow.js (train, evaluate): tf-free, so reading
// pipeline.yaml does not load tfjs. lib/tf/backend.ts resolves it.
import { z } from 'zod';

export const BackendParam = z
  .enum(['auto', 'tensorflow', 'wasm', 'cpu'])
  .default('auto')
  .describe('tfjs backend: auto = tfjs-node where it loads, else wasm, else cpu');
