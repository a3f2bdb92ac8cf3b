// The chunk structure of a PNG file: signature, IHDR (size and pixel format, readable on its own so
// a pixel limit can be checked before anything else), PLTE, the IDAT pieces (views, not copies)
// and IEND. Every chunk's CRC is checked; a chunk running past the end of the file, a missing
// IEND or an unknown critical chunk is corrupt. Ancillary chunks (tRNS, gAMA, text...) are
// skipped: alpha is dropped and no colour management is done.
import { crc32 } from 'node:zlib';
import { ImageDecodeError } from '../errors.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const IHDR_END = 8 + 8 + 13 + 4;
/** Largest chunk length and image side the format allows (2^31 - 1). */
const PNG_MAX = 0x7fffffff;

/** Bit depths allowed per colour type (0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA). */
const DEPTHS: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
  /** Bits of one pixel in the filtered data (samples × depth). */
  bitsPerPixel: number;
}

export interface PngFile {
  header: PngHeader;
  /** RGB triplets, for colour type 3. */
  palette: Uint8Array | null;
  /** The IDAT chunks' data, in order: one zlib stream. */
  idat: Uint8Array[];
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= PNG_MAGIC.length && PNG_MAGIC.every((b, i) => bytes[i] === b);
}

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

interface Chunk {
  type: string;
  data: Uint8Array;
  /** Offset of the next chunk. */
  next: number;
}

/** The chunk at `at`, CRC checked. */
function chunkAt(bytes: Uint8Array, at: number): Chunk {
  if (at + 8 > bytes.length) throw new ImageDecodeError(`PNG truncated after ${at} bytes (no IEND chunk)`);
  const length = u32(bytes, at);
  const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
  if (!/^[A-Za-z]{4}$/.test(type)) throw new ImageDecodeError(`PNG chunk at byte ${at} has an invalid type`);
  if (length > PNG_MAX || at + 12 + length > bytes.length) throw new ImageDecodeError(`PNG truncated in its ${type} chunk (${length} bytes announced)`);
  const end = at + 8 + length;
  if (crc32(bytes.subarray(at + 4, end)) !== u32(bytes, end)) throw new ImageDecodeError(`PNG ${type} chunk fails its CRC check`);
  return { type, data: bytes.subarray(at + 8, end), next: end + 4 };
}

/** Signature and IHDR only, validated: what the file says its size and format are. */
export function readPngHeader(bytes: Uint8Array): PngHeader {
  if (!isPng(bytes)) throw new ImageDecodeError('not a PNG file');
  if (bytes.length < IHDR_END) throw new ImageDecodeError('PNG truncated in its header');
  const ihdr = chunkAt(bytes, 8);
  if (ihdr.type !== 'IHDR' || ihdr.data.length !== 13) throw new ImageDecodeError('PNG does not start with a 13-byte IHDR chunk');
  const d = ihdr.data;
  const [width, height] = [u32(d, 0), u32(d, 4)];
  const [bitDepth, colorType, compression, filter, interlace] = [d[8]!, d[9]!, d[10]!, d[11]!, d[12]!];
  if (width === 0 || height === 0 || width > PNG_MAX || height > PNG_MAX) throw new ImageDecodeError(`PNG header has an invalid size ${width}×${height}`);
  if (!DEPTHS[colorType]?.includes(bitDepth)) throw new ImageDecodeError(`PNG header has an invalid colour type ${colorType} with bit depth ${bitDepth}`);
  if (compression !== 0 || filter !== 0 || interlace > 1) {
    throw new ImageDecodeError(`PNG header has an unknown method (compression ${compression}, filter ${filter}, interlace ${interlace})`);
  }
  return { width, height, bitDepth, colorType, interlaced: interlace === 1, bitsPerPixel: SAMPLES[colorType]! * bitDepth };
}

/** Walks every chunk to IEND. */
export function parsePng(bytes: Uint8Array): PngFile {
  const header = readPngHeader(bytes);
  let palette: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let at = IHDR_END;
  for (;;) {
    const chunk = chunkAt(bytes, at);
    at = chunk.next;
    if (chunk.type === 'IEND') break;
    if (chunk.type === 'IDAT') {
      idat.push(chunk.data);
    } else if (chunk.type === 'PLTE') {
      if (chunk.data.length === 0 || chunk.data.length % 3 !== 0 || chunk.data.length > 3 * 256) {
        throw new ImageDecodeError(`PNG PLTE chunk of ${chunk.data.length} bytes is not 1 to 256 RGB entries`);
      }
      palette = chunk.data;
    } else if (chunk.type === 'IHDR') {
      throw new ImageDecodeError('PNG has a second IHDR chunk');
    } else if ((chunk.type.charCodeAt(0) & 0x20) === 0) {
      throw new ImageDecodeError(`PNG has an unknown critical chunk ${chunk.type}`);
    }
  }
  if (idat.length === 0) throw new ImageDecodeError('PNG has no image data (no IDAT chunk)');
  if (header.colorType === 3 && !palette) throw new ImageDecodeError('palette PNG without a PLTE chunk');
  return { header, palette: header.colorType === 3 ? palette : null, idat };
}
