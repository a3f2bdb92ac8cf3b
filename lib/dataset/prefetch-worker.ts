// The prefetch thread: reads the batches of the current plan from the shards, maps pixels to
// model inputs through the table, and fills the ring (prefetch-protocol.ts) ahead of training.
import { parentPort } from 'node:worker_threads';
import { DatasetReader } from './reader.js';
import { PixelMapper } from './pixel-map.js';
import {
  CTL_FAILED,
  CTL_GENERATION,
  slotBatch,
  slotGeneration,
  slotVersion,
  type PrefetchInit,
  type PrefetchMessage,
  type PrefetchPlan,
} from './prefetch-protocol.js';

/** Atomics.waitAsync (Node 16+; not in this TypeScript lib's typings). */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { value: Promise<string> | string } }).waitAsync;

let init: PrefetchInit | undefined;
let reader: DatasetReader | undefined;
let control: Int32Array | undefined;
let plan: PrefetchPlan | undefined;
let running = false;

async function fill(): Promise<void> {
  if (running) return; // the running loop picks up the new plan
  running = true;
  try {
    while (plan) {
      const current = plan;
      const batches = Math.ceil(current.order.length / current.batchSize);
      for (let s = 0; s < batches; s++) {
        const slot = s % init!.depth;
        // Wait until the slot is empty or holds another plan's batch.
        for (;;) {
          if (Atomics.load(control!, CTL_GENERATION) !== current.generation) break;
          const v = Atomics.load(control!, slotVersion(slot));
          if (v % 2 === 0 || Atomics.load(control!, slotGeneration(slot)) !== current.generation) break;
          await waitAsync(control!, slotVersion(slot), v).value;
        }
        if (Atomics.load(control!, CTL_GENERATION) !== current.generation) break;
        const rows = current.order.subarray(s * current.batchSize, Math.min(current.order.length, (s + 1) * current.batchSize));
        gatherInto(rows, new Float32Array(init!.slots, slot * init!.slotFloats * 4, rows.length * rowElements));
        const v = Atomics.load(control!, slotVersion(slot));
        Atomics.store(control!, slotGeneration(slot), current.generation);
        Atomics.store(control!, slotBatch(slot), s);
        Atomics.store(control!, slotVersion(slot), v % 2 === 0 ? v + 1 : v + 2);
        Atomics.notify(control!, slotVersion(slot));
        // Let a new plan (message) in between batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (plan === current) plan = undefined;
    }
  } catch (err) {
    failed(err);
    for (let slot = 0; slot < init!.depth; slot++) Atomics.notify(control!, slotVersion(slot));
  } finally {
    running = false;
  }
}

let rowElements = 0;
let mapper: PixelMapper | undefined;

function gatherInto(positions: Int32Array, out: Float32Array): void {
  const { index } = init!;
  for (let i = 0; i < positions.length; i++) {
    reader!.readRowInto(index[positions[i]!]!, mapper!.pixels);
    mapper!.mapInto(out, i * rowElements);
  }
}

const failed = (err: unknown) => {
  if (control) Atomics.store(control, CTL_FAILED, 1);
  parentPort!.postMessage({ type: 'failed', message: (err as Error).message });
};

// Init is awaited before any plan; a plan only replaces the current one (the fill loop sees it).
let ready: Promise<void> = Promise.resolve();
parentPort!.on('message', (message: PrefetchMessage) => {
  if (message.type === 'init') {
    ready = (async () => {
      init = message;
      control = new Int32Array(message.control);
      reader = await DatasetReader.open(message.dir);
      rowElements = reader.rowBytes;
      mapper = new PixelMapper(message.table, rowElements);
    })();
    ready.catch(failed);
  } else if (message.type === 'plan') {
    void ready.then(() => {
      plan = message;
      return fill();
    }, failed);
  } else {
    plan = undefined;
    void ready.finally(() => {
      reader?.close();
      parentPort!.close();
    });
  }
});
