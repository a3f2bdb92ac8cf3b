// Shared memory between a BatchPrefetcher (prefetch.ts) and its thread (prefetch-worker.ts).
// A ring of `depth` slots, each holding one batch of model inputs (float32). Per slot three Int32
// cells: a version (odd: filled, even: empty), the plan generation and the batch number it holds.
// The thread fills batch s into slot s % depth once the slot is empty (or holds a stale plan's
// batch); the training thread waits for the batch it needs, copies it out and empties the slot.

export const CTL_GENERATION = 0;
/** Set by the thread when it failed: the reader falls back to reading (and reports the error itself). */
export const CTL_FAILED = 1;
const CTL_SLOTS = 2;

export const slotVersion = (slot: number) => CTL_SLOTS + 3 * slot;
export const slotGeneration = (slot: number) => CTL_SLOTS + 3 * slot + 1;
export const slotBatch = (slot: number) => CTL_SLOTS + 3 * slot + 2;
export const controlCells = (depth: number) => CTL_SLOTS + 3 * depth;

export interface PrefetchInit {
  type: 'init';
  dir: string;
  /** Dataset row of each position the plans refer to. */
  index: Int32Array;
  table: Float32Array;
  control: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  depth: number;
  /** Floats per slot (largest batch × row elements). */
  slotFloats: number;
}

/** An epoch's batches: batch s is positions order[s·batchSize … (s+1)·batchSize). */
export interface PrefetchPlan {
  type: 'plan';
  generation: number;
  order: Int32Array;
  batchSize: number;
}

export type PrefetchMessage = PrefetchInit | PrefetchPlan | { type: 'stop' };
