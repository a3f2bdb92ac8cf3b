// Training batches read ahead on another thread (lib/dataset/prefetch.ts) are the batches the
// training thread would read itself, bit for bit, across epochs and abandoned epochs; requests
// outside the plan and a damaged shard fall back to reading on the training thread.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDataset } from '../lib/dataset/format.js';
import { BatchPrefetcher } from '../lib/dataset/prefetch.js';
import { DatasetReader } from '../lib/dataset/reader.js';
import { ShardIntegrityError } from '../lib/errors.js';
import { datasetRows, pixelTable } from '../lib/model/data.js';
import { Rng } from '../lib/model/rng.js';
import { toyImages, writeDataset } from './helpers/fake-normalize.js';

const N = 300;
const BATCH = 32;
let root: string;
let dir: string;
const table = pixelTable({ method: 'standardize', scale: 1 / 255, mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] }, 3);
const index = Int32Array.from({ length: 250 }, (_, i) => (i * 7) % N); // a split's rows, out of order

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'prefetch-test-'));
  dir = join(root, 'dataset');
  const train = toyImages(N, 4, 8, 3, 5);
  await writeDataset(dir, train, toyImages(10, 4, 8, 3, 6), ['a', 'b', 'c', 'd']);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function batchesOf(order: Int32Array): Int32Array[] {
  const out: Int32Array[] = [];
  for (let s = 0; s < order.length; s += BATCH) out.push(order.subarray(s, Math.min(order.length, s + BATCH)));
  return out;
}

describe('prefetched batches', () => {
  test('equal the batches read on the training thread, epoch after epoch, including after an abandoned epoch', async () => {
    const reader = await DatasetReader.open(dir);
    const prefetch = new BatchPrefetcher(dir, index, table, reader.rowBytes, BATCH);
    try {
      const plain = datasetRows(reader, index, table, 'plain');
      const ahead = datasetRows(reader, index, table, 'ahead', prefetch);
      const rng = new Rng(9);
      let planned = 0;
      for (let epoch = 0; epoch < 3; epoch++) {
        const order = rng.permutation(index.length);
        ahead.plan!(order, BATCH);
        const batches = batchesOf(order);
        // Epoch 1 is abandoned half way (an interrupted epoch, or the last one of a run).
        const used = epoch === 1 ? batches.slice(0, 3) : batches;
        planned += used.length;
        for (const batch of used) {
          const a = ahead.gather(batch);
          const b = plain.gather(batch);
          expect(Buffer.from(a.x.buffer).equals(Buffer.from(b.x.buffer))).toBe(true);
          expect(Array.from(a.y)).toEqual(Array.from(b.y));
        }
      }
      expect(prefetch.hits).toBe(planned);
      // A request outside the plan (validation, a different order) is read here, correctly.
      const odd = Int32Array.from([5, 3, 1]);
      expect(Array.from(ahead.gather(odd).x)).toEqual(Array.from(plain.gather(odd).x));
      expect(prefetch.hits).toBe(planned);
    } finally {
      reader.close();
      await prefetch.close();
    }
  });

  test('a damaged shard fails the read with the reader own error, not a stall or wrong pixels', async () => {
    const broken = join(root, 'broken');
    await writeDataset(broken, toyImages(N, 4, 8, 3, 5), toyImages(10, 4, 8, 3, 6), ['a', 'b', 'c', 'd']);
    const { manifest, rows } = await readDataset(broken);
    const victim = index[40]!; // in the second batch of the sequential order below
    const handle = await open(join(broken, manifest.shards[rows.shard[victim]!]!.file), 'r+');
    const at = 128 + rows.slot[victim]! * 192 + 5;
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0]! ^= 1;
    await handle.write(byte, 0, 1, at);
    await handle.close();
    const reader = await DatasetReader.open(broken);
    const prefetch = new BatchPrefetcher(broken, index, table, reader.rowBytes, BATCH);
    try {
      const ahead = datasetRows(reader, index, table, 'ahead', prefetch);
      const order = Int32Array.from(index.keys());
      ahead.plan!(order, BATCH);
      const [first, second] = batchesOf(order);
      expect(() => ahead.gather(first!)).not.toThrow();
      expect(() => ahead.gather(second!)).toThrow(ShardIntegrityError);
    } finally {
      reader.close();
      await prefetch.close();
    }
  });
});
