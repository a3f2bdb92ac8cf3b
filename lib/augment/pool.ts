// Drives the augment worker pool: chunks of (copy, rows) go out as tasks over shared buffers,
// results come back into a ring of output slots and are handed to `onChunk` strictly in order
// (copy 0 rows 0.., then copy 1 ...), so the caller can stream each copy to disk with bounded
// memory while the workers already compute the next chunks.
import type { Piscina } from 'piscina';
import type { AugmentTask } from './chunk.js';
import type { AugmentConfig } from './transform.js';
import { AugmentPoolError } from '../errors.js';

export interface AugmentSource {
  /** Decoded images, uint8 [N, H, W, C] from `byteOffset` (unused when `readRows` streams them). */
  images: SharedArrayBuffer;
  byteOffset: number;
  /**
   * Streams sources instead: writes the source images of training rows [first, first + count)
   * into `into`, in order. Memory then holds a ring of chunks, not the dataset.
   */
  readRows?(first: number, count: number, into: Uint8Array): void;
  /** int32 [Ntr] rows of `images` that form the training split. */
  index: SharedArrayBuffer;
  rows: number;
  height: number;
  width: number;
  channels: number;
}

export interface AugmentRun {
  config: AugmentConfig;
  seed: number;
  /** Copy indices to produce, in output order. */
  copies: number[];
  /** Training rows per task. */
  chunkSize: number;
  /** Output slots in the ring (tasks in flight at most); default 4 per pool thread. */
  slots?: number;
  signal?: AbortSignal;
  /**
   * Receives each finished chunk in order. `pixels` is a view into a reused slot: copy or write
   * it before the returned promise settles.
   */
  onChunk(copy: number, first: number, count: number, pixels: Uint8Array): Promise<void> | void;
}

interface Pending {
  copy: number;
  first: number;
  count: number;
  slot: number;
  done: Promise<unknown>;
}

/** Runs every (copy, chunk) task through `pool`; resolves when all chunks were handed over. */
export async function runAugmentPool(pool: Piscina, source: AugmentSource, run: AugmentRun): Promise<void> {
  const imageBytes = source.height * source.width * source.channels;
  const chunk = Math.max(1, Math.min(run.chunkSize, source.rows || 1));
  const threads = Math.max(1, pool.maxThreads);
  const slots = Math.max(1, run.slots ?? 4 * threads);
  const ring = new SharedArrayBuffer(slots * chunk * imageBytes);
  // Streamed sources: each output slot has a source slot holding its chunk's input images.
  const sourceRing = source.readRows ? new SharedArrayBuffer(slots * chunk * imageBytes) : undefined;

  // Our own controller: a failed task aborts its siblings too, not only an external abort.
  const controller = new AbortController();
  const onAbort = () => controller.abort(run.signal?.reason);
  if (run.signal?.aborted) onAbort();
  run.signal?.addEventListener('abort', onAbort, { once: true });

  const inFlight: Pending[] = [];
  let failure: unknown = null;
  const fail = (error: unknown) => {
    failure ??= error;
    controller.abort(failure);
  };

  const dispatch = (copy: number, first: number, slot: number): Pending => {
    const count = Math.min(chunk, source.rows - first);
    const slotBytes = slot * chunk * imageBytes;
    if (sourceRing) source.readRows!(first, count, new Uint8Array(sourceRing, slotBytes, count * imageBytes));
    const task: AugmentTask = {
      src: sourceRing ?? source.images,
      srcByteOffset: sourceRing ? slotBytes : source.byteOffset,
      ...(sourceRing ? { srcRowsFrom: first } : {}),
      index: source.index,
      out: ring,
      outByteOffset: slot * chunk * imageBytes,
      first,
      count,
      copy,
      seed: run.seed,
      height: source.height,
      width: source.width,
      channels: source.channels,
      config: run.config,
    };
    const done = pool.run(task, { signal: controller.signal });
    // Observed at once so a rejection is never "unhandled" while we wait on earlier chunks.
    done.catch(() => {});
    return { copy, first, count, slot, done };
  };

  // Hands the oldest in-flight chunk to the consumer, freeing its slot.
  const drainOne = async () => {
    const next = inFlight.shift()!;
    try {
      await next.done;
    } catch (error) {
      throw new AugmentPoolError(
        `copy ${next.copy}, rows ${next.first}..${next.first + next.count - 1}: ${(error as Error).message ?? error}`,
        next.copy,
        next.first,
        { cause: error },
      );
    }
    const pixels = new Uint8Array(ring, next.slot * chunk * imageBytes, next.count * imageBytes);
    await run.onChunk(next.copy, next.first, next.count, pixels);
  };

  try {
    let slot = 0;
    for (const copy of run.copies) {
      for (let first = 0; first < source.rows; first += chunk) {
        if (controller.signal.aborted) throw failure ?? controller.signal.reason;
        if (inFlight.length === slots) await drainOne();
        inFlight.push(dispatch(copy, first, slot));
        slot = (slot + 1) % slots;
      }
    }
    while (inFlight.length > 0) await drainOne();
  } catch (error) {
    fail(error);
    // Aborting made piscina terminate running tasks; wait for them so no worker still writes
    // into the ring when we return.
    await Promise.allSettled(inFlight.map((p) => p.done));
    throw failure;
  } finally {
    run.signal?.removeEventListener('abort', onAbort);
  }
}
