// Batches of a dataset read ahead on another thread (prefetch-worker.ts), so a training step does
// not wait for the shards: the loop tells the prefetcher each epoch's order (`plan`), the thread
// fills a small ring of shared slots in that order, and `take` hands the training thread the batch
// it asks for. A request that is not the next planned batch (or a failed thread) gets `undefined`:
// the caller reads the rows itself, which also reports any error with its usual message.
import { Worker } from 'node:worker_threads';
import { controlCells, CTL_FAILED, CTL_GENERATION, slotBatch, slotGeneration, slotVersion, type PrefetchMessage } from './prefetch-protocol.js';

export const DEFAULT_PREFETCH_DEPTH = 3;
/** A batch the thread has not delivered in this long means the thread is gone. */
const STALL_MS = 60_000;

/** What a reader of batches asks of a prefetcher (a BatchPrefetcher, or a view of one). */
export interface PrefetchSource {
  plan(order: Int32Array, batchSize: number): void;
  take(rows: ArrayLike<number>): Float32Array | undefined;
}

export class BatchPrefetcher implements PrefetchSource {
  private readonly worker: Worker;
  private readonly control: Int32Array;
  private readonly slots: SharedArrayBuffer;
  private generation = 0;
  private order: Int32Array | undefined;
  private batchSize = 0;
  private next = 0;
  /** Batches handed over from the ring (the rest were read by the caller). */
  hits = 0;

  constructor(
    dir: string,
    index: Int32Array,
    table: Float32Array,
    private readonly rowElements: number,
    private readonly maxBatch: number,
    private readonly depth = DEFAULT_PREFETCH_DEPTH,
  ) {
    const control = new SharedArrayBuffer(controlCells(depth) * 4);
    this.control = new Int32Array(control);
    this.slots = new SharedArrayBuffer(depth * maxBatch * rowElements * 4);
    this.worker = new Worker(new URL('./prefetch-worker.js', import.meta.url));
    this.worker.unref(); // never keeps the process alive; close() ends it
    this.worker.on('message', () => {}); // failures are flagged in shared memory
    this.worker.on('error', () => Atomics.store(this.control, CTL_FAILED, 1));
    this.post({ type: 'init', dir, index, table, control, slots: this.slots, depth, slotFloats: maxBatch * rowElements });
  }

  /** The batches of an epoch, in the order training will ask for them. */
  plan(order: Int32Array, batchSize: number): void {
    if (batchSize > this.maxBatch) return;
    this.generation = (this.generation + 1) | 0;
    Atomics.store(this.control, CTL_GENERATION, this.generation);
    for (let slot = 0; slot < this.depth; slot++) Atomics.notify(this.control, slotVersion(slot));
    this.order = order;
    this.batchSize = batchSize;
    this.next = 0;
    this.post({ type: 'plan', generation: this.generation, order: order.slice(), batchSize });
  }

  /** The inputs of `rows` if they are the next planned batch (waiting for the thread if needed), else undefined. */
  take(rows: ArrayLike<number>): Float32Array | undefined {
    const order = this.order;
    if (!order || Atomics.load(this.control, CTL_FAILED)) return undefined;
    const s = this.next;
    const start = s * this.batchSize;
    const expected = order.subarray(start, Math.min(order.length, start + this.batchSize));
    if (expected.length === 0 || rows.length !== expected.length) return undefined;
    for (let i = 0; i < rows.length; i++) if (rows[i] !== expected[i]) return undefined;
    const slot = s % this.depth;
    const version = slotVersion(slot);
    // This thread cannot see the worker's events while it waits: a thread that died without
    // saying so is noticed by the time limit, and reading falls back to the caller for good.
    const giveUp = Date.now() + STALL_MS;
    for (;;) {
      if (Atomics.load(this.control, CTL_FAILED)) return undefined;
      const v = Atomics.load(this.control, version);
      if (v % 2 === 1 && Atomics.load(this.control, slotGeneration(slot)) === this.generation && Atomics.load(this.control, slotBatch(slot)) === s) break;
      if (Date.now() > giveUp) {
        Atomics.store(this.control, CTL_FAILED, 1);
        return undefined;
      }
      Atomics.wait(this.control, version, v, 1000);
    }
    const floats = rows.length * this.rowElements;
    const out = new Float32Array(floats);
    out.set(new Float32Array(this.slots, slot * this.maxBatch * this.rowElements * 4, floats));
    Atomics.add(this.control, version, 1); // empty
    Atomics.notify(this.control, version);
    this.next++;
    this.hits++;
    return out;
  }

  /**
   * The prefetcher seen from rows that are its positions `base`, `base + 1`…: e.g. one augmented
   * copy (positions copy·Ntr + i) read as training rows 0…Ntr−1.
   */
  from(base: number): PrefetchSource {
    if (base === 0) return this;
    const shift = (rows: ArrayLike<number>) => Int32Array.from(rows, (r) => r + base);
    return { plan: (order, batchSize) => this.plan(shift(order), batchSize), take: (rows) => this.take(shift(rows)) };
  }

  async close(): Promise<void> {
    this.order = undefined;
    Atomics.store(this.control, CTL_GENERATION, (this.generation + 1) | 0);
    for (let slot = 0; slot < this.depth; slot++) Atomics.notify(this.control, slotVersion(slot));
    await this.worker.terminate();
  }

  private post(message: PrefetchMessage): void {
    this.worker.postMessage(message);
  }
}
