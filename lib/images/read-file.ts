// Reads many small files with few syscalls and no per-file allocation: open, one read into a
// reused buffer (grown on demand), close. readFileSync adds an fstat and a fresh Buffer per file;
// on 60,000 CIFAR JPEGs (~900 bytes each) this is the cheaper path. Pack entries (fetch's pack/
// output) are read with one positioned read each.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { PackIntegrityError } from '../errors.js';
import { describeEntry, readPackedInto } from '../fetch/pack.js';
import type { SourceLocation } from './source-tree.js';

export class SmallFileReader {
  private buffer: Buffer;

  constructor(initialBytes = 1 << 16) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  /**
   * The file's bytes, as a view valid until the next call. A file larger than `limit.maxBytes`
   * is not read further: `limit.tooLarge(size)` is thrown instead.
   */
  read(path: string, limit?: { maxBytes: number; tooLarge: (size: number) => Error }): Uint8Array {
    const fd = openSync(path, 'r');
    try {
      let length = readSync(fd, this.buffer, 0, this.buffer.length, 0);
      if (length === this.buffer.length) {
        // Filled the buffer: the file may be larger. Size it exactly and read the rest.
        const size = fstatSync(fd).size;
        if (limit && size > limit.maxBytes) throw limit.tooLarge(size);
        if (size > this.buffer.length) {
          const bigger = Buffer.allocUnsafe(Math.max(size, this.buffer.length * 2));
          this.buffer.copy(bigger, 0, 0, length);
          this.buffer = bigger;
        }
        let n: number;
        while (length < this.buffer.length && (n = readSync(fd, this.buffer, length, this.buffer.length - length, length)) > 0) {
          length += n;
        }
      }
      return this.buffer.subarray(0, length);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Reads sources where a SourceLocation says: whole files through a SmallFileReader, pack entries by
 * positioned reads (crc32-checked) into a reused buffer. Pack files stay open until `release()`.
 */
export class SourceReader {
  private readonly files = new SmallFileReader();
  private buffer = Buffer.allocUnsafe(1 << 16);
  private readonly packs = new Map<string, number>();

  /**
   * The source's bytes, as a view valid until the next call (`limit` as for SmallFileReader). A
   * damaged pack entry throws PackIntegrityError.
   */
  read(location: SourceLocation, limit?: { maxBytes: number; tooLarge: (size: number) => Error }): Uint8Array {
    const packed = location.packed;
    if (!packed) return this.files.read(location.file, limit);
    if (limit && packed.size > limit.maxBytes) throw limit.tooLarge(packed.size);
    if (packed.size > this.buffer.length) this.buffer = Buffer.allocUnsafe(Math.max(packed.size, this.buffer.length * 2));
    return readPackedInto(this.pack(location.file), packed.offset, packed.size, packed.crc32, this.buffer, () =>
      describeEntry(location.file, packed.entry, packed.offset, packed.size),
    );
  }

  /** Closes the pack files opened since the last call. */
  release(): void {
    for (const fd of this.packs.values()) closeSync(fd);
    this.packs.clear();
  }

  private pack(file: string): number {
    let fd = this.packs.get(file);
    if (fd === undefined) {
      try {
        fd = openSync(file, 'r');
      } catch (err) {
        throw new PackIntegrityError(`${file}: cannot open pack (${(err as Error).message})`, { cause: err });
      }
      this.packs.set(file, fd);
    }
    return fd;
  }
}
