// Builds PNG files byte by byte, for the decoder tests and the bombs bench: every colour type and
// bit depth, Adam7 interlacing, every filter type, and files real encoders refuse to write (a
// header that lies about the size, image data that ends early). Large images are streamed
// through zlib row by row, so building one costs a row of memory, not the image.
import { createDeflate, crc32, deflateSync } from 'node:zlib';
import { open } from 'node:fs/promises';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

export function ihdr(width: number, height: number, colorType: number, bitDepth: number, interlaced = false): Buffer {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data.set([bitDepth, colorType, 0, 0, interlaced ? 1 : 0], 8);
  return pngChunk('IHDR', data);
}

/** Signature, IHDR, the given chunks (PLTE...), one IDAT holding `zlibData`, IEND. */
export function pngFile(header: Buffer, zlibData: Uint8Array, chunks: Buffer[] = []): Buffer {
  return Buffer.concat([SIGNATURE, header, ...chunks, pngChunk('IDAT', zlibData), pngChunk('IEND', new Uint8Array(0))]);
}

/**
 * The 69-byte PNG: the header says `width × height` RGBA, the data is 4 zero bytes
 * (a valid zlib stream that ends after part of one row).
 */
export function lyingPng(width: number, height: number): Buffer {
  return pngFile(ihdr(width, height, 6, 8), deflateSync(Buffer.alloc(4)));
}

export interface PngSpec {
  width: number;
  height: number;
  colorType: 0 | 2 | 3 | 4 | 6;
  bitDepth: 1 | 2 | 4 | 8 | 16;
  interlaced?: boolean;
  /** RGB entries, for colour type 3. */
  palette?: number[][];
  /** Sample `c` of pixel (x, y), within the bit depth's range (a palette index for type 3). */
  sample: (x: number, y: number, c: number) => number;
}

/** Packs one row of samples at the bit depth (MSB first below 8 bits, big-endian at 16). */
function packRow(spec: PngSpec, xs: number[], y: number): Buffer {
  const n = SAMPLES[spec.colorType]!;
  const bits = xs.length * n * spec.bitDepth;
  const out = Buffer.alloc(Math.ceil(bits / 8));
  let bit = 0;
  for (const x of xs) {
    for (let c = 0; c < n; c++, bit += spec.bitDepth) {
      const v = spec.sample(x, y, c);
      if (spec.bitDepth === 16) out.writeUInt16BE(v, bit >> 3);
      else if (spec.bitDepth === 8) out[bit >> 3] = v;
      else out[bit >> 3]! |= v << (8 - spec.bitDepth - (bit & 7));
    }
  }
  return out;
}

/** Applies PNG filter `type` to `row` given the previous row (zeros for the first). */
function filterRow(type: number, row: Buffer, prev: Buffer, bpp: number): Buffer {
  const out = Buffer.alloc(row.length + 1);
  out[0] = type;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp]! : 0;
    const b = prev[i]!;
    const c = i >= bpp ? prev[i - bpp]! : 0;
    let predictor = 0;
    if (type === 1) predictor = a;
    else if (type === 2) predictor = b;
    else if (type === 3) predictor = (a + b) >> 1;
    else if (type === 4) {
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    out[i + 1] = (row[i]! - predictor) & 0xff;
  }
  return out;
}

/** The filtered image data (before zlib): filter types rotate 0..4 over the rows. */
export function pngImageData(spec: PngSpec): Buffer {
  const passes: (readonly [number, number, number, number])[] = spec.interlaced ? [...ADAM7] : [[0, 0, 1, 1]];
  const bpp = Math.max(1, (SAMPLES[spec.colorType]! * spec.bitDepth) >> 3);
  const rows: Buffer[] = [];
  let n = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const xs: number[] = [];
    for (let x = x0; x < spec.width; x += dx) xs.push(x);
    if (xs.length === 0) continue;
    let prev: Buffer | null = null;
    for (let y = y0; y < spec.height; y += dy) {
      const row = packRow(spec, xs, y);
      rows.push(filterRow(n++ % 5, row, prev ?? Buffer.alloc(row.length), bpp));
      prev = row;
    }
  }
  return Buffer.concat(rows);
}

export function encodePng(spec: PngSpec): Buffer {
  const plte = spec.palette ? [pngChunk('PLTE', Uint8Array.from(spec.palette.flat()))] : [];
  return pngFile(ihdr(spec.width, spec.height, spec.colorType, spec.bitDepth, spec.interlaced), deflateSync(pngImageData(spec)), plte);
}

/**
 * Writes a real (complete, valid) 8-bit RGB PNG of any size to `path` with little memory: rows
 * of a simple pattern go through zlib one at a time. A 30000×30000 image compresses to a few MB.
 */
export async function writeLargePng(path: string, width: number, height: number): Promise<number> {
  const file = await open(path, 'w');
  try {
    await file.write(Buffer.concat([SIGNATURE, ihdr(width, height, 2, 8)]));
    const deflate = createDeflate({ level: 6 });
    const idat: Buffer[] = [];
    let pending = 0;
    const flushIdat = async (force: boolean): Promise<void> => {
      if (pending === 0 || (!force && pending < 1 << 20)) return;
      await file.write(pngChunk('IDAT', Buffer.concat(idat)));
      idat.length = 0;
      pending = 0;
    };
    deflate.on('data', (chunk: Buffer) => {
      idat.push(chunk);
      pending += chunk.length;
    });
    const ended = new Promise<void>((resolve, reject) => {
      deflate.on('end', resolve);
      deflate.on('error', reject);
    });
    const row = Buffer.alloc(1 + width * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x += 64) row.fill(((x >> 6) + (y >> 6)) & 0xff, 1 + x * 3, 1 + Math.min(x + 64, width) * 3);
      if (!deflate.write(Buffer.from(row))) await new Promise((resolve) => deflate.once('drain', resolve));
      await flushIdat(false);
    }
    deflate.end();
    await ended;
    await flushIdat(true);
    await file.write(pngChunk('IEND', new Uint8Array(0)));
    return (await file.stat()).size;
  } finally {
    await file.close();
  }
}
