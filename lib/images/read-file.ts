// Reads many small files with few syscalls and no per-file allocation: open, one read into a
// reused buffer (grown on demand), close. readFileSync adds an fstat and a fresh Buffer per file;
// on 60,000 CIFAR JPEGs (~900 bytes each) this is the cheaper path.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

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
