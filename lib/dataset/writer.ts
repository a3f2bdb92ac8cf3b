// Writes rows into shard files of bounded size. A shard is a .npy uint8 [rows, H, W, C]; its file
// name is its id, the sha256 of the dataset settings and the (source, digest) list it holds, so
// the same files decoded the same way always make the same file (one object in the store).
import { createHash, type Hash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { npyHeader } from '../npy.js';
import { rowBytesOf, SHARDS_DIR, type ShardInfo } from './format.js';

/** Bytes reserved for a shard's .npy header: rewritten with the final row count at close. */
const SHARD_HEADER_BYTES = 128;
/** Rows are gathered up to about this many bytes before a write: one write per 3 KB row cost more than decoding it. */
const WRITE_BYTES = 4 << 20;
export const DEFAULT_SHARD_BYTES = 128 << 20;

export interface WrittenRow {
  shard: string;
  /** The shard's position in `finish().shards`. */
  index: number;
  slot: number;
  crc: number;
}

interface OpenShard {
  handle: FileHandle;
  tmp: string;
  rows: number;
  /** Rows appended but not yet written, from row `rows - pending`. */
  pending: number;
  hash: Hash;
}

export class ShardWriter {
  readonly rowBytes: number;
  readonly rowsPerShard: number;
  private current: OpenShard | undefined;
  private serial = 0;
  private readonly written: ShardInfo[] = [];
  private readonly buffer: Buffer;

  /** `dir` is the dataset directory; shards go to `dir/shards/`. */
  constructor(
    private readonly dir: string,
    private readonly shape: readonly [number, number, number],
    private readonly settings: string,
    maxShardBytes = DEFAULT_SHARD_BYTES,
  ) {
    this.rowBytes = rowBytesOf(shape);
    this.rowsPerShard = Math.max(1, Math.floor(maxShardBytes / this.rowBytes));
    this.buffer = Buffer.allocUnsafe(this.rowBytes * Math.max(1, Math.min(this.rowsPerShard, Math.floor(WRITE_BYTES / this.rowBytes))));
  }

  /** Appends one row's pixels; the row lands in the open shard, which is closed when full. */
  async append(pixels: Uint8Array, source: string, digest: string): Promise<WrittenRow> {
    if (pixels.length !== this.rowBytes) throw new RangeError(`row of ${pixels.length} bytes, expected ${this.rowBytes}`);
    const shard = this.current ?? (await this.openShard());
    this.buffer.set(pixels, shard.pending * this.rowBytes);
    shard.hash.update(`${source}\0${digest}\n`);
    const slot = shard.rows++;
    if (++shard.pending * this.rowBytes >= this.buffer.length) await this.flush(shard);
    const crc = crc32(pixels);
    // The shard's id is known only once it is closed: rows name it through a placeholder.
    const index = this.serial;
    if (shard.rows >= this.rowsPerShard) await this.closeShard();
    return { shard: `pending-${index}`, index, slot, crc };
  }

  /** Closes the open shard now: the next row starts a new one (e.g. one set of shards per augmented copy). */
  async cut(): Promise<void> {
    await this.closeShard();
  }

  /** Closes the open shard; returns the shards written, in order, and each placeholder's id. */
  async finish(): Promise<{ shards: ShardInfo[]; ids: Map<string, string> }> {
    await this.closeShard();
    const ids = new Map(this.written.map((s, i) => [`pending-${i}`, s.id]));
    return { shards: [...this.written], ids };
  }

  /** Removes the shard being written (after a failure; finished shards are left to the caller's output tree). */
  async abort(): Promise<void> {
    const shard = this.current;
    this.current = undefined;
    if (!shard) return;
    await shard.handle.close().catch(() => {});
    await rm(shard.tmp, { force: true });
  }

  private async openShard(): Promise<OpenShard> {
    await mkdir(join(this.dir, SHARDS_DIR), { recursive: true });
    const tmp = join(this.dir, SHARDS_DIR, `.writing-${this.serial}.npy`);
    const handle = await open(tmp, 'w');
    const hash = createHash('sha256').update(`${this.settings}\n`);
    this.current = { handle, tmp, rows: 0, pending: 0, hash };
    return this.current;
  }

  private async flush(shard: OpenShard): Promise<void> {
    if (shard.pending === 0) return;
    const bytes = shard.pending * this.rowBytes;
    await shard.handle.write(this.buffer, 0, bytes, SHARD_HEADER_BYTES + (shard.rows - shard.pending) * this.rowBytes);
    shard.pending = 0;
  }

  private async closeShard(): Promise<void> {
    const shard = this.current;
    if (!shard) return;
    this.current = undefined;
    try {
      await this.flush(shard);
      await shard.handle.write(npyHeader('uint8', [shard.rows, ...this.shape], SHARD_HEADER_BYTES), 0, SHARD_HEADER_BYTES, 0);
    } finally {
      await shard.handle.close();
    }
    const id = shard.hash.digest('hex').slice(0, 32);
    const file = `${SHARDS_DIR}/${id}.npy`;
    await rename(shard.tmp, join(this.dir, file));
    this.written.push({ id, file, rows: shard.rows });
    this.serial++;
  }
}
