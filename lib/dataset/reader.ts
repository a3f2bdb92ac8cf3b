// Reads rows of a sharded dataset by logical index: positioned reads from the shard files (the OS
// page cache does the caching, so memory stays bounded whatever the dataset's size), each row
// checked against its crc32 before anyone sees its pixels.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { parseNpyHeader } from '../npy.js';
import { DatasetError, ShardIntegrityError } from '../errors.js';
import { readDataset, rowBytesOf, type Dataset, type DatasetManifest, type RowTable } from './format.js';

interface OpenShardFile {
  fd: number;
  /** Where row 0 starts. */
  offset: number;
}

export class DatasetReader {
  readonly rowBytes: number;
  private readonly files: Array<OpenShardFile | undefined>;

  private constructor(
    readonly dir: string,
    readonly manifest: DatasetManifest,
    readonly rows: RowTable,
  ) {
    this.rowBytes = rowBytesOf(manifest.shape);
    this.files = new Array<OpenShardFile | undefined>(manifest.shards.length);
  }

  static async open(dir: string): Promise<DatasetReader> {
    const { manifest, rows }: Dataset = await readDataset(dir);
    return new DatasetReader(dir, manifest, rows);
  }

  get count(): number {
    return this.rows.label.length;
  }

  /** Copies row `row`'s pixels into `out` at `at`, after checking them. */
  readRowInto(row: number, out: Uint8Array, at = 0): void {
    if (!Number.isInteger(row) || row < 0 || row >= this.count) throw new RangeError(`${this.dir}: row ${row} outside [0, ${this.count})`);
    const shard = this.rows.shard[row]!;
    const slot = this.rows.slot[row]!;
    const file = this.shardFile(shard);
    const target = out.subarray(at, at + this.rowBytes);
    let done = 0;
    const position = file.offset + slot * this.rowBytes;
    while (done < this.rowBytes) {
      const n = readSync(file.fd, target, done, this.rowBytes - done, position + done);
      if (n === 0) throw new ShardIntegrityError(`${this.shardPath(shard)}: truncated at slot ${slot} (${this.rowName(row)})`);
      done += n;
    }
    if (crc32(target) !== this.rows.crc[row]) {
      throw new ShardIntegrityError(
        `${this.shardPath(shard)}: slot ${slot} (${this.rowName(row)}) does not match its checksum: the shard is damaged (run \`pipeline verify\`)`,
      );
    }
  }

  /** The pixels of `rows`, in that order, as one uint8 array. */
  readRows(rows: ArrayLike<number>): Uint8Array {
    const out = new Uint8Array(rows.length * this.rowBytes);
    for (let i = 0; i < rows.length; i++) this.readRowInto(rows[i]!, out, i * this.rowBytes);
    return out;
  }

  close(): void {
    for (const f of this.files) if (f) closeSync(f.fd);
    this.files.fill(undefined);
  }

  /** "row 12, train/cat/1.png"; augment's copies record no source file per row. */
  private rowName(row: number): string {
    const source = this.rows.source[row];
    return source ? `row ${row}, ${source}` : `row ${row}`;
  }

  private shardPath(shard: number): string {
    return join(this.dir, this.manifest.shards[shard]!.file);
  }

  private shardFile(shard: number): OpenShardFile {
    const open = this.files[shard];
    if (open) return open;
    const path = this.shardPath(shard);
    const info = this.manifest.shards[shard]!;
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new DatasetError(`${path}: cannot open shard (${(err as Error).message})`, { cause: err });
    }
    try {
      const head = Buffer.alloc(4096);
      const n = readSync(fd, head, 0, head.length, 0);
      const header = parseNpyHeader(head.subarray(0, n), path);
      const [h, w, c] = this.manifest.shape;
      if (header.dtype !== 'uint8' || header.shape.join() !== [info.rows, h, w, c].join()) {
        throw new ShardIntegrityError(`${path}: holds ${header.dtype} [${header.shape}], the dataset expects uint8 [${info.rows}, ${h}, ${w}, ${c}]`);
      }
      const file = { fd, offset: header.offset };
      this.files[shard] = file;
      return file;
    } catch (err) {
      closeSync(fd);
      if (err instanceof ShardIntegrityError) throw err;
      throw new ShardIntegrityError(`${path}: ${(err as Error).message}`, { cause: err });
    }
  }
}
