// Writes augment's copies as a sharded uint8 dataset (copies.ts): rows arrive in order (copy 0 rows
// 0…Ntr−1, then copy 1…), each copy's rows go into shards of their own (a shard never spans two
// copies), and a shard's id is the hash of what made its pixels: the augment settings (transform,
// seed, the source dataset's settings) and, per row, (copy, training row, source file, digest). An
// unchanged input and params therefore give the same shard files, whatever the pool size.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DATASET_FORMAT, DATASET_VERSION, MANIFEST_FILE, ROWS_FILE, rowsToJson, type DatasetManifest, type RowTable } from '../dataset/format.js';
import { ShardWriter, DEFAULT_SHARD_BYTES } from '../dataset/writer.js';

export interface CopiesSource {
  shape: [number, number, number];
  classes: string[];
  /** Per training row i: label, source file and digest of dataset row train_index[i]. */
  label: Int32Array;
  source: string[];
  digest: string[];
}

export class CopiesDatasetWriter {
  private readonly writer: ShardWriter;
  private readonly rows: number;
  private readonly table: { shard: Int32Array; slot: Int32Array; crc: Uint32Array };
  private next = 0;

  /** `settings`: canonical text of everything besides the source rows that decides the pixels. */
  constructor(
    private readonly dir: string,
    private readonly from: CopiesSource,
    private readonly copies: number,
    private readonly settings: string,
    maxShardBytes = DEFAULT_SHARD_BYTES,
  ) {
    this.rows = from.label.length;
    this.writer = new ShardWriter(dir, from.shape, settings, maxShardBytes);
    const n = this.rows * copies;
    this.table = { shard: new Int32Array(n), slot: new Int32Array(n), crc: new Uint32Array(n) };
  }

  /** Appends training rows [first, first + count) of `copy` (the next rows in order). */
  async append(copy: number, first: number, count: number, pixels: Uint8Array): Promise<void> {
    const rowBytes = this.writer.rowBytes;
    if (copy * this.rows + first !== this.next) throw new RangeError(`copy ${copy} rows ${first}.. arrived out of order`);
    for (let k = 0; k < count; k++) {
      const i = first + k;
      const w = await this.writer.append(pixels.subarray(k * rowBytes, (k + 1) * rowBytes), `${copy}:${i}:${this.from.source[i]}`, this.from.digest[i]!);
      this.table.shard[this.next] = w.index;
      this.table.slot[this.next] = w.slot;
      this.table.crc[this.next] = w.crc;
      this.next++;
    }
    if (first + count === this.rows) await this.writer.cut();
  }

  /** Writes dataset.json and rows.json once every row of every copy arrived. */
  async finish(): Promise<DatasetManifest> {
    const n = this.rows * this.copies;
    if (this.next !== n) throw new RangeError(`${this.next} of ${n} rows written`);
    const { shards } = await this.writer.finish();
    const manifest: DatasetManifest = {
      format: DATASET_FORMAT,
      version: DATASET_VERSION,
      shape: this.from.shape,
      classes: this.from.classes,
      splits: { train: n, test: 0 },
      shards,
      settings: this.settings,
    };
    // Source and digest stay empty: a copy's row i comes from training row i (source_index.npy),
    // and repeating its file name in each of 20 copies would make rows.json larger than it is useful.
    const empty = new Array<string>(n).fill('');
    const label = new Int32Array(n);
    for (let c = 0; c < this.copies; c++) label.set(this.from.label, c * this.rows);
    const rows: RowTable = { label, ...this.table, source: empty, digest: empty };
    await writeFile(join(this.dir, MANIFEST_FILE), JSON.stringify(manifest, null, 1) + '\n');
    await writeFile(join(this.dir, ROWS_FILE), JSON.stringify(rowsToJson(rows)) + '\n');
    return manifest;
  }

  /** Removes the shard being written after a failure. */
  async abort(): Promise<void> {
    await this.writer.abort();
  }
}
