// The train stage's `workers` param and how it resolves (tf-free: stages/train/ uses it to build
// the cache key on every command). More than one worker means data-parallel training on wasm
// (lib/model/data-parallel.ts); the count changes float rounding, so the resolved count is part of
// the stage's fingerprint.
import { availableParallelism } from 'node:os';
import { z } from 'zod';

export const WorkersParam = z
  .union([z.literal('auto'), z.int().min(1)])
  .default('auto')
  .describe(
    'training threads: auto = 2 on wasm with ≥ 2 cores, else 1; > 1 = data-parallel on wasm (each thread its own wasm instance, gradients averaged every step). The resolved count changes numerics slightly (dropout masks per shard), so a count > 1 is in the cache key; set 1 on a machine whose cores are busy',
  );
export type WorkersParam = z.output<typeof WorkersParam>;

/** Worker threads a train stage uses on `backend` (auto: 2 on wasm when there are ≥ 2 cores). */
export function resolveWorkers(param: WorkersParam, backend: string, cores: number = availableParallelism()): number {
  if (param !== 'auto') return param;
  return backend === 'wasm' && cores >= 2 ? 2 : 1;
}
