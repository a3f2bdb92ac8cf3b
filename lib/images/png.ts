// PNG decoding, written here rather than taken from pngjs because pngjs inflates and expands the
// whole image at once (four full-size copies: 8.9 GB for a 30000×30000 header) and decodes a
// header that promises more rows than the data holds as a black image. This decoder reads the
// header first (so a pixel limit is checked before any allocation), streams the image data row by
// row and refuses data that ends early. PNG is not the speed path (CIFAR ships as JPEG or binary).
import { Readable } from 'node:stream';
import { constants, createInflate, inflateSync } from 'node:zlib';
import { kMaxLength } from 'node:buffer';
import { ImageDecodeError } from '../errors.js';
import { parsePng, type PngFile } from './png-file.js';
import { pngChannels, Scanlines } from './png-scanlines.js';
import type { RawImage } from './raw-image.js';

export { isPng, parsePng, readPngHeader, type PngFile, type PngHeader } from './png-file.js';
export { pngChannels } from './png-scanlines.js';

/** Images needing at most this many inflated bytes are inflated in one synchronous call. */
const SYNC_INFLATE_BYTES = 1 << 20;
/** Inflated bytes tolerated past what the header needs, when inflating in one call. */
const SYNC_SLACK_BYTES = 1 << 20;

/** zlib's refusals in the user's terms; anything else (a bug) as it is. */
function zlibFailure(err: unknown, png: PngFile): unknown {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const { width, height } = png.header;
  if (code === 'ERR_BUFFER_TOO_LARGE') return new ImageDecodeError(`PNG image data is longer than a ${width}×${height} image needs`);
  if (code.startsWith('Z_')) return new ImageDecodeError(`PNG image data is corrupt (zlib: ${(err as Error).message})`);
  return err;
}

/** Inflates all image data at once: only for images whose data is small. */
function inflateAll(png: PngFile, lines: Scanlines): void {
  let data: Buffer;
  try {
    // SYNC_FLUSH: a truncated stream yields what it holds; Scanlines says how much was missing.
    const input = png.idat.length === 1 ? png.idat[0]! : Buffer.concat(png.idat);
    data = inflateSync(input, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: Math.min(kMaxLength, lines.expected + SYNC_SLACK_BYTES) });
  } catch (err) {
    throw zlibFailure(err, png);
  }
  lines.push(data);
  lines.finish();
}

/** Inflates piece by piece (zlib on the thread pool, with backpressure); stops at the last row. */
async function inflateStreaming(png: PngFile, lines: Scanlines): Promise<void> {
  const input = Readable.from(png.idat.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength)));
  const inflate = createInflate({ finishFlush: constants.Z_SYNC_FLUSH });
  input.pipe(inflate);
  try {
    for await (const chunk of inflate as AsyncIterable<Buffer>) {
      lines.push(chunk);
      if (lines.done) break;
    }
  } catch (err) {
    throw zlibFailure(err, png);
  } finally {
    input.unpipe(inflate);
    input.destroy();
    inflate.destroy();
  }
  lines.finish();
}

/**
 * Decodes a parsed PNG, handing its rows top to bottom to `onRow` (8-bit samples, pngChannels per
 * pixel; a view valid during the call). Memory: a few rows, plus the whole image if interlaced.
 */
export async function decodePngRows(png: PngFile, onRow: (row: Uint8Array) => void): Promise<void> {
  const lines = new Scanlines(png, onRow);
  if (lines.expected <= SYNC_INFLATE_BYTES) inflateAll(png, lines);
  else await inflateStreaming(png, lines);
}

/** The whole image at once (for small, trusted images: reports, tests). */
export function decodePng(bytes: Uint8Array): RawImage {
  const png = parsePng(bytes);
  const { width, height } = png.header;
  const channels = pngChannels(png.header);
  const data = new Uint8Array(width * height * channels);
  let y = 0;
  inflateAll(png, new Scanlines(png, (row) => data.set(row, y++ * width * channels)));
  return { width, height, channels, data };
}
