// The decompression-bomb rule shared by .tar.gz and .zip: an archive may not inflate to more than
// MAX_INFLATE_RATIO times the compressed bytes it took to get there (the `tar` package's own
// rule, 1000:1; deflate's best is about 1032:1, so only near-empty data gets there). The first
// MiB is free, so a tiny archive of padding is not a bomb. Counted on bytes as they are inflated,
// never on sizes an archive declares, which can lie; a zip's declared sizes are checked too, up
// front, so an honest bomb is refused before anything is written.
import { Transform, type TransformCallback } from 'node:stream';

export const MAX_INFLATE_RATIO = 1000;
const FREE_BYTES = 1 << 20;

export function overInflateLimit(inflated: number, compressed: number): boolean {
  return inflated > Math.max(FREE_BYTES, MAX_INFLATE_RATIO * compressed);
}

const count = (n: number) => n.toLocaleString('en-US');

/** The refusal's reason, for an "unsafe entry" message: `declares` for sizes read from headers. */
export function bombReason(inflated: number, compressed: number, declares = false): string {
  return `by this entry the archive ${declares ? 'declares' : 'inflates to'} ${count(inflated)} bytes from ${count(compressed)} compressed, more than ${MAX_INFLATE_RATIO}×: refused as a decompression bomb`;
}

/**
 * Passes inflated bytes through, failing with `refuse(inflated, compressed)` as soon as they
 * exceed the limit for `compressed()`, the compressed bytes consumed so far.
 */
export class InflateGuard extends Transform {
  private inflated = 0;

  constructor(
    private readonly compressed: () => number,
    private readonly refuse: (inflated: number, compressed: number) => Error,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.inflated += chunk.length;
    const compressed = this.compressed();
    if (overInflateLimit(this.inflated, compressed)) return done(this.refuse(this.inflated, compressed));
    done(null, chunk);
  }
}
