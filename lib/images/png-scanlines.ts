// From a PNG's inflated image data to 8-bit pixel rows, as the data arrives: each scanline is
// unfiltered against the previous one and expanded to 8-bit samples (16-bit and sub-byte gray
// rescaled as pngjs did, palette indices looked up), then handed on top to bottom. Memory is two
// scanlines and one output row; an interlaced (Adam7) image is assembled whole first (its rows
// come in seven passes), which costs width × height × channels bytes.
// The header's size is checked against the data: fewer bytes than width × height need is
// corrupt, never a silently black image.
import { ImageDecodeError } from '../errors.js';
import type { PngFile, PngHeader } from './png-file.js';
import type { Channels } from './raw-image.js';

interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  width: number;
  height: number;
  /** Filtered bytes per row, filter-type byte excluded. */
  rowBytes: number;
}

const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** Samples per output pixel: gray 1, gray + alpha 2, RGB and palette 3, RGBA 4. */
export function pngChannels(header: PngHeader): Channels {
  return header.colorType === 0 ? 1 : header.colorType === 4 ? 2 : header.colorType === 6 ? 4 : 3;
}

function passes(h: PngHeader): Pass[] {
  const rowBytes = (width: number) => Math.ceil((width * h.bitsPerPixel) / 8);
  if (!h.interlaced) return [{ x0: 0, y0: 0, dx: 1, dy: 1, width: h.width, height: h.height, rowBytes: rowBytes(h.width) }];
  return ADAM7.map(([x0, y0, dx, dy]) => {
    const width = h.width > x0 ? Math.ceil((h.width - x0) / dx) : 0;
    const height = h.height > y0 ? Math.ceil((h.height - y0) / dy) : 0;
    return { x0, y0, dx, dy, width, height, rowBytes: rowBytes(width) };
  }).filter((p) => p.width > 0 && p.height > 0); // empty passes have no bytes at all
}

/** Inflated bytes the header needs: a filter-type byte and the filtered pixels per row of each pass. */
export function pngDataBytes(header: PngHeader): number {
  return passes(header).reduce((n, p) => n + p.height * (p.rowBytes + 1), 0);
}

function unfilter(type: number, line: Uint8Array, prev: Uint8Array, bpp: number, row: number): void {
  const n = line.length;
  switch (type) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) line[i] = line[i]! + line[i - bpp]!;
      return;
    case 2:
      for (let i = 0; i < n; i++) line[i] = line[i]! + prev[i]!;
      return;
    case 3:
      for (let i = 0; i < bpp; i++) line[i] = line[i]! + (prev[i]! >> 1);
      for (let i = bpp; i < n; i++) line[i] = line[i]! + ((line[i - bpp]! + prev[i]!) >> 1);
      return;
    case 4:
      for (let i = 0; i < bpp; i++) line[i] = line[i]! + prev[i]!;
      for (let i = bpp; i < n; i++) {
        const a = line[i - bpp]!;
        const b = prev[i]!;
        const c = prev[i - bpp]!;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        line[i] = line[i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      return;
    default:
      throw new ImageDecodeError(`PNG row ${row} has an unknown filter type ${type}`);
  }
}

/** Expands one unfiltered scanline of `width` pixels to 8-bit samples in `out`; returns them. */
function expand(line: Uint8Array, width: number, h: PngFile['header'], palette: Uint8Array | null, out: Uint8Array): Uint8Array {
  const depth = h.bitDepth;
  if (depth === 8 && !palette) return line;
  if (depth === 16) {
    const samples = line.length >> 1;
    for (let i = 0; i < samples; i++) out[i] = Math.floor((((line[2 * i]! << 8) | line[2 * i + 1]!) * 255) / 65535 + 0.5);
    return out.subarray(0, samples);
  }
  const max = (1 << depth) - 1;
  for (let x = 0; x < width; x++) {
    const bit = x * depth;
    const v = depth === 8 ? line[x]! : (line[bit >> 3]! >> (8 - depth - (bit & 7))) & max;
    if (!palette) {
      out[x] = Math.floor((v * 255) / max + 0.5);
      continue;
    }
    if (3 * v + 2 >= palette.length) throw new ImageDecodeError(`PNG pixel uses palette index ${v}, but the palette has ${palette.length / 3} entries`);
    out[3 * x] = palette[3 * v]!;
    out[3 * x + 1] = palette[3 * v + 1]!;
    out[3 * x + 2] = palette[3 * v + 2]!;
  }
  return out.subarray(0, width * (palette ? 3 : 1));
}

/**
 * Takes a PNG's inflated image data in pieces of any size (push) and hands each finished row,
 * top to bottom, to `onRow` (a view valid during the call).
 */
export class Scanlines {
  /** Bytes the header needs. */
  readonly expected: number;
  private received = 0;
  private readonly header: PngHeader;
  private readonly palette: Uint8Array | null;
  private readonly passes: Pass[];
  private readonly channels: Channels;
  /** Bytes per complete pixel, at least 1: how far back filters look. */
  private readonly bpp: number;
  private line: Uint8Array;
  private prev: Uint8Array;
  private readonly expanded: Uint8Array;
  /** The whole image, for an interlaced one. */
  private readonly image: Uint8Array | null;
  private pass = 0;
  private row = 0;
  private filled = 0;

  constructor(
    png: PngFile,
    private readonly onRow: (row: Uint8Array) => void,
  ) {
    this.header = png.header;
    this.palette = png.palette;
    this.passes = passes(png.header);
    this.expected = pngDataBytes(png.header);
    this.channels = pngChannels(png.header);
    this.bpp = Math.max(1, png.header.bitsPerPixel >> 3);
    const longest = Math.max(...this.passes.map((p) => p.rowBytes)) + 1;
    this.line = new Uint8Array(longest);
    this.prev = new Uint8Array(longest);
    this.expanded = new Uint8Array(png.header.width * this.channels);
    this.image = png.header.interlaced ? new Uint8Array(png.header.width * png.header.height * this.channels) : null;
  }

  get done(): boolean {
    return this.pass === this.passes.length;
  }

  /** Consumes inflated bytes; bytes after the last row are ignored. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.done) {
      const pass = this.passes[this.pass]!;
      const n = Math.min(pass.rowBytes + 1 - this.filled, chunk.length - i);
      this.line.set(chunk.subarray(i, i + n), this.filled);
      this.filled += n;
      this.received += n;
      i += n;
      if (this.filled === pass.rowBytes + 1) this.completeRow(pass);
    }
  }

  /** After the last byte: the data must have held every row. */
  finish(): void {
    if (this.done) return;
    const { width, height } = this.header;
    throw new ImageDecodeError(
      `PNG image data ends early: ${this.received} of the ${this.expected} bytes a ${width}×${height} image needs (truncated, or the header's size is not the image's)`,
    );
  }

  private completeRow(pass: Pass): void {
    const line = this.line.subarray(1, pass.rowBytes + 1);
    unfilter(this.line[0]!, line, this.prev.subarray(1, pass.rowBytes + 1), this.bpp, this.row);
    const pixels = expand(line, pass.width, this.header, this.palette, this.expanded);
    if (this.image) this.scatter(pass, pixels);
    else this.onRow(pixels);
    [this.line, this.prev] = [this.prev, this.line];
    this.filled = 0;
    if (++this.row < pass.height) return;
    this.row = 0;
    this.prev.fill(0); // the first row of a pass has nothing above it
    if (++this.pass === this.passes.length && this.image) {
      const stride = this.header.width * this.channels;
      for (let y = 0; y < this.header.height; y++) this.onRow(this.image.subarray(y * stride, (y + 1) * stride));
    }
  }

  /** Puts one row of an Adam7 pass at its pixels' places in the whole image. */
  private scatter(pass: Pass, pixels: Uint8Array): void {
    const c = this.channels;
    const y = pass.y0 + this.row * pass.dy;
    const base = y * this.header.width * c;
    for (let i = 0; i < pass.width; i++) {
      const at = base + (pass.x0 + i * pass.dx) * c;
      for (let k = 0; k < c; k++) this.image![at + k] = pixels[i * c + k]!;
    }
  }
}
