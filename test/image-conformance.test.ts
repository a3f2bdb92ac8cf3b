// Decoder conformance: a corpus built here from several encoders and settings, every file decoded
// through the decode stage's image decoder and compared with a reference decode.
//   - jpeg-js at several qualities and sizes, thousands of images (about 3 in 1,000 of its files
//     end in padding that wasm32 libjpeg-turbo used to refuse); reference: jpeg-js's own decoder
//     (an independent IDCT: within ±IDCT_TOLERANCE) and, for every file that ends in a padding
//     byte, libjpeg-turbo's `djpeg` (exact up to ±DJPEG_TOLERANCE)
//   - libjpeg-turbo's `cjpeg` and `jpegtran` (Debian libjpeg-turbo-progs): baseline, progressive,
//     optimized Huffman tables, restart markers, arithmetic coding, 4:4:4 / 4:2:2 / 4:2:0 / 4:4:0
//     subsampling, grayscale, odd sizes; reference: `djpeg`
//   - PNG: RGBA, gray + alpha, 16-bit, palette (with and without transparency); reference: the
//     encoded pixels themselves (lossless)
// And the other way round: truncated or mangled JPEGs are still refused.
// Without cjpeg/djpeg the tools part is skipped, and says so; CI sets REQUIRE_JPEG_TOOLS=1 so a
// missing tool fails there instead.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { createImageDecoder } from '../lib/images/decode-image.js';
import { ImageDecodeError } from '../lib/errors.js';
import { withoutTrailingPadding } from '../lib/images/jpeg-padding.js';
import { encodeJpeg } from './helpers/jpeg-encode.js';

/** jpeg-js vs libjpeg-turbo on 4:4:4 files (jpeg-js writes no other): IDCT rounding only. */
const IDCT_TOLERANCE = 4;
/** djpeg here may be an older libjpeg-turbo than the wasm build; same IDCT and upsampling. */
const DJPEG_TOLERANCE = 1;
const JPEGJS_QUALITIES = [30, 50, 75, 90, 95, 100];
const JPEGJS_PER_QUALITY = 600;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'image-conformance-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Seeded test picture: smooth gradients, a hard-edged disc and noise (so every coder path runs). */
function picture(width: number, height: number, seed: number, channels: 1 | 3 | 4 = 4): Uint8Array {
  let s = (seed * 2654435761 + 1) >>> 0;
  const rand = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const cx = rand() * width;
  const cy = rand() * height;
  const r = (0.2 + rand() * 0.3) * Math.min(width, height);
  const noise = 20 + rand() * 120;
  const hue = [rand() * 255, rand() * 255, rand() * 255];
  const out = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r;
      const o = (y * width + x) * channels;
      for (let c = 0; c < channels; c++) {
        const base = c === 3 ? (x * 255) / Math.max(1, width - 1) : inside ? hue[c]! : ((x + y * (c + 1)) * 255) / (width + height * 3);
        out[o + c] = Math.max(0, Math.min(255, Math.round(base + (c === 3 ? 0 : (rand() - 0.5) * noise))));
      }
    }
  }
  return out;
}

const decoders = new Map<string, Awaited<ReturnType<typeof createImageDecoder>>>();
afterAll(() => {
  for (const d of decoders.values()) d.dispose();
});

/** Decodes through the decode stage's decoder at the image's own size, as RGB. */
async function decodeRgb(bytes: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  const key = `${width}x${height}`;
  let decoder = decoders.get(key);
  if (!decoder) {
    decoder = await createImageDecoder({ width, height, channels: 3 }, 'nearest');
    decoders.set(key, decoder);
  }
  const out = new Uint8Array(width * height * 3);
  decoder.decodeInto(bytes, out, 0);
  return out;
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** RGB from 1 (gray), 3 or 4 (RGBA, alpha dropped) channels. */
function toRgb(data: Uint8Array, channels: number): Uint8Array {
  if (channels === 3) return data;
  const n = data.length / channels;
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    if (channels === 1 || channels === 2) out.fill(data[p * channels]!, p * 3, p * 3 + 3);
    else out.set(data.subarray(p * channels, p * channels + 3), p * 3);
  }
  return out;
}

function tool(name: string): boolean {
  const r = spawnSync(name, ['-version'], { encoding: 'utf8' });
  return r.error === undefined;
}

/** Runs a libjpeg-turbo tool; stdout as bytes. */
function run(cmd: string, args: string[], input?: Uint8Array): Buffer {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  // djpeg exits 2 after a warning (e.g. padding it did not read) but still writes every pixel.
  if (r.status !== 0 && !(cmd === 'djpeg' && r.status === 2)) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Pixels of a binary PPM (P6) or PGM (P5), as RGB. */
function readPnm(pnm: Buffer): { width: number; height: number; rgb: Uint8Array } {
  const header = /^P([56])\s+(\d+)\s+(\d+)\s+255\s/.exec(pnm.subarray(0, 64).toString('latin1'));
  if (!header) throw new Error('not an 8-bit PPM/PGM');
  const width = Number(header[2]);
  const height = Number(header[3]);
  const channels = header[1] === '6' ? 3 : 1;
  const data = new Uint8Array(pnm.subarray(header[0].length, header[0].length + width * height * channels));
  return { width, height, rgb: toRgb(data, channels) };
}

function ppm(width: number, height: number, rgb: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`P6\n${width} ${height}\n255\n`, 'latin1'), rgb]);
}

const haveTools = ['cjpeg', 'djpeg', 'jpegtran'].every(tool);
if (!haveTools && process.env.REQUIRE_JPEG_TOOLS) {
  throw new Error('REQUIRE_JPEG_TOOLS is set but cjpeg/djpeg/jpegtran are missing (apt-get install libjpeg-turbo-progs)');
}

describe('jpeg-js files at several qualities and sizes', () => {
  const sizes: [number, number][] = [
    [32, 32],
    [17, 9],
    [33, 31],
    [1, 1],
    [64, 8],
  ];
  const corpus: { name: string; bytes: Uint8Array; width: number; height: number; pixels: Uint8Array }[] = [];
  beforeAll(() => {
    for (const quality of JPEGJS_QUALITIES) {
      for (let i = 0; i < JPEGJS_PER_QUALITY; i++) {
        // Mostly CIFAR-sized, every 10th another size.
        const [width, height] = i % 10 === 9 ? sizes[((i / 10) % sizes.length) | 0]! : sizes[0]!;
        const pixels = picture(width, height, quality * 100_000 + i);
        const bytes = encodeJpeg(pixels, width, height, quality);
        corpus.push({ name: `jpeg-js q${quality} #${i} ${width}×${height}`, bytes, width, height, pixels });
      }
    }
  });

  test(`all ${JPEGJS_QUALITIES.length * JPEGJS_PER_QUALITY} decode and match jpeg-js's own decoder within ±${IDCT_TOLERANCE}`, async () => {
    const failures: string[] = [];
    for (const f of corpus) {
      try {
        const ours = await decodeRgb(f.bytes, f.width, f.height);
        const reference = jpeg.decode(f.bytes, { useTArray: true, formatAsRGBA: false }).data;
        const d = maxDiff(ours, reference);
        if (d > IDCT_TOLERANCE) failures.push(`${f.name}: max |diff| ${d} from jpeg-js`);
      } catch (err) {
        failures.push(`${f.name}: ${(err as Error).message}`);
      }
    }
    expect(failures).toEqual([]);
  });

  (haveTools ? test : test.skip)('files ending in a padding byte match djpeg', async () => {
    // FF 00 FF D9: a whole 0xFF byte before EOI, the shape of every file the wasm build refused.
    const padded = corpus.filter(({ bytes: b }) => b.length > 4 && b[b.length - 4] === 0xff && b[b.length - 3] === 0x00);
    expect(padded.length).toBeGreaterThan(100);
    const failures: string[] = [];
    for (const f of padded) {
      const file = join(dir, 'padded.jpg');
      await writeFile(file, f.bytes);
      const reference = readPnm(run('djpeg', ['-ppm', file])).rgb;
      const d = maxDiff(await decodeRgb(f.bytes, f.width, f.height), reference);
      if (d > DJPEG_TOLERANCE) failures.push(`${f.name}: max |diff| ${d} from djpeg`);
    }
    expect(failures).toEqual([]);
  });
});

(haveTools ? describe : describe.skip)('cjpeg and jpegtran: every coding mode libjpeg-turbo writes', () => {
  if (!haveTools) console.warn('cjpeg/djpeg/jpegtran not found (Debian: libjpeg-turbo-progs): skipping their part of the corpus');

  const sizes: [number, number][] = [
    [32, 32],
    [1, 1],
    [7, 5],
    [33, 17],
    [100, 3],
    [48, 64],
  ];
  const settings: [string, string[]][] = [
    ['baseline 4:2:0', []],
    ['4:4:4', ['-sample', '1x1']],
    ['4:2:2', ['-sample', '2x1']],
    ['4:4:0', ['-sample', '1x2']],
    ['4:2:0 q95', ['-sample', '2x2', '-quality', '95']],
    ['q10', ['-quality', '10']],
    ['q100', ['-quality', '100', '-sample', '1x1']],
    ['progressive', ['-progressive']],
    ['progressive 4:4:4', ['-progressive', '-sample', '1x1']],
    ['optimized Huffman', ['-optimize']],
    ['restart every row', ['-restart', '1']],
    ['restart every block', ['-restart', '1B']],
    ['arithmetic', ['-arithmetic']],
    ['grayscale', ['-grayscale']],
    ['grayscale progressive', ['-grayscale', '-progressive']],
    ['float DCT, smoothed', ['-dct', 'float', '-smooth', '30']],
  ];

  test(`${settings.length} settings × ${sizes.length} sizes decode like djpeg`, async () => {
    const failures: string[] = [];
    let n = 0;
    for (const [label, args] of settings) {
      for (const [width, height] of sizes) {
        const source = join(dir, 'source.ppm');
        await writeFile(source, ppm(width, height, toRgb(picture(width, height, n++, 3), 3)));
        const file = join(dir, 'cjpeg.jpg');
        await writeFile(file, run('cjpeg', [...args, source]));
        const reference = readPnm(run('djpeg', ['-ppm', file]));
        try {
          const d = maxDiff(await decodeRgb(await readFile(file), width, height), reference.rgb);
          if (d > DJPEG_TOLERANCE) failures.push(`${label} ${width}×${height}: max |diff| ${d} from djpeg`);
        } catch (err) {
          failures.push(`${label} ${width}×${height}: ${(err as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  test('jpegtran rewrites of jpeg-js files (progressive, restarts, optimized, gray) decode like djpeg', async () => {
    const rewrites: [string, string[]][] = [
      ['progressive', ['-progressive']],
      ['restart every 2 blocks', ['-restart', '2B']],
      ['optimized', ['-optimize', '-copy', 'none']],
      ['grayscale', ['-grayscale']],
      ['arithmetic', ['-arithmetic']],
    ];
    const failures: string[] = [];
    for (let i = 0; i < 40; i++) {
      const [width, height] = i % 4 === 3 ? [45, 23] : [32, 32];
      const source = encodeJpeg(picture(width, height, 7_000 + i), width, height, i % 2 ? 95 : 75);
      await writeFile(join(dir, 'jpegjs.jpg'), source);
      for (const [label, args] of rewrites) {
        const file = join(dir, 'jpegtran.jpg');
        await writeFile(file, run('jpegtran', [...args, join(dir, 'jpegjs.jpg')]));
        const reference = readPnm(run('djpeg', ['-ppm', file])).rgb;
        try {
          const d = maxDiff(await decodeRgb(await readFile(file), width, height), reference);
          if (d > DJPEG_TOLERANCE) failures.push(`#${i} ${label}: max |diff| ${d} from djpeg`);
        } catch (err) {
          failures.push(`#${i} ${label}: ${(err as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });
});

describe('PNG: colour types, bit depths, alpha and palettes', () => {
  /** A PNG chunk: length, type, data, CRC-32 of type and data. */
  function chunk(type: string, data: Uint8Array): Buffer {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  }
  function crc32(bytes: Uint8Array): number {
    let c = ~0;
    for (const b of bytes) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    }
    return ~c >>> 0;
  }
  /** A PNG written here byte by byte (pngjs writes no palettes): filter 0 on every row. */
  function pngFile(width: number, height: number, colorType: number, bitDepth: number, rowBytes: (y: number) => Uint8Array, chunks: Buffer[] = []): Buffer {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr.set([bitDepth, colorType, 0, 0, 0], 8);
    const raw = Buffer.concat(Array.from({ length: height }, (_, y) => Buffer.concat([Buffer.from([0]), rowBytes(y)])));
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      ...chunks,
      chunk('IDAT', deflateSync(raw)),
      chunk('IEND', new Uint8Array(0)),
    ]);
  }

  /** An 8-bit palette PNG (colour type 3), optionally with a tRNS chunk. */
  function palettePng(width: number, height: number, palette: number[][], index: (x: number, y: number) => number, alpha?: number[]): Buffer {
    const row = (y: number) => Uint8Array.from({ length: width }, (_, x) => index(x, y));
    return pngFile(width, height, 3, 8, row, [chunk('PLTE', Uint8Array.from(palette.flat())), ...(alpha ? [chunk('tRNS', Uint8Array.from(alpha))] : [])]);
  }

  test('palette PNGs, with and without transparency', async () => {
    const palette = Array.from({ length: 200 }, (_, i) => [i, (i * 7) % 256, 255 - i]);
    const index = (x: number, y: number) => (x * 13 + y * 7) % palette.length;
    const expected = new Uint8Array(37 * 21 * 3);
    for (let y = 0; y < 21; y++) for (let x = 0; x < 37; x++) expected.set(palette[index(x, y)]!, (y * 37 + x) * 3);
    for (const alpha of [undefined, palette.map((_, i) => (i * 5) % 256)]) {
      const bytes = palettePng(37, 21, palette, index, alpha);
      expect(maxDiff(await decodeRgb(bytes, 37, 21), expected)).toBe(0);
    }
  });

  test('RGBA at 16 bits per sample', async () => {
    const [width, height] = [13, 7];
    const rgba = picture(width, height, 43, 4);
    const row = (y: number) => {
      const out = Buffer.alloc(width * 8);
      for (let i = 0; i < width * 4; i++) out.writeUInt16BE(rgba[y * width * 4 + i]! * 257, i * 2);
      return out;
    };
    expect(maxDiff(await decodeRgb(pngFile(width, height, 6, 16, row), width, height), toRgb(rgba, 4))).toBe(0);
  });

  test('RGBA, RGB, gray and gray + alpha at 8 bits', async () => {
    const [width, height] = [19, 11];
    const colour = picture(width, height, 42, 4);
    // Gray types get a gray source (pngjs would average the channels).
    const gray = colour.map((v, i) => (i % 4 === 3 ? v : colour[i - (i % 4)]!));
    // Types without alpha get an opaque source (pngjs would blend it onto a background).
    const opaque = (rgba: Uint8Array) => rgba.map((v, i) => (i % 4 === 3 ? 255 : v));
    for (const [colorType, bitDepth] of [
      [6, 8],
      [2, 8],
      [0, 8],
      [4, 8],
    ] as const) {
      const png = new PNG({ width, height, colorType, bitDepth, inputColorType: 6, inputHasAlpha: true } as ConstructorParameters<typeof PNG>[0]);
      const source = colorType === 0 || colorType === 4 ? gray : colour;
      const rgba = colorType === 0 || colorType === 2 ? opaque(source) : source;
      png.data = Buffer.from(rgba);
      const bytes = PNG.sync.write(png, { colorType, bitDepth, inputColorType: 6, inputHasAlpha: true } as Parameters<typeof PNG.sync.write>[1]);
      const expected = toRgb(rgba, 4);
      expect([colorType, bitDepth, maxDiff(await decodeRgb(bytes, width, height), expected)]).toEqual([colorType, bitDepth, 0]);
    }
  });
});

describe('corrupt files are still refused', () => {
  const good = encodeJpeg(picture(32, 32, 1), 32, 32, 90);

  test.each([
    ['truncated in the scan', () => good.subarray(0, Math.floor(good.length * 0.6))],
    ['truncated before the last byte of the scan', () => good.subarray(0, good.length - 3)],
    ['the header only', () => good.subarray(0, good.indexOf(0xda, 200) + 1)],
    ['the scan cut short, then EOI', () => Buffer.concat([good.subarray(0, good.length - 60), Buffer.from([0xff, 0xd9])])],
    ['a bad marker in the scan', () => Buffer.concat([good.subarray(0, good.length - 60), Buffer.from([0xff, 0xc8]), good.subarray(good.length - 58)])],
    ['not an image', () => Buffer.from('hello, not a picture')],
  ])('%s', async (_label, make) => {
    await expect(decodeRgb(make(), 32, 32)).rejects.toThrow(ImageDecodeError);
  });
});

describe('padding candidates (jpeg-padding.ts)', () => {
  const SOI = [0xff, 0xd8];
  const EOI = [0xff, 0xd9];
  const segment = (marker: number, body: number[]) => [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
  const jpegOf = (...parts: number[][]) => Uint8Array.from(parts.flat());
  const list = (bytes: Uint8Array) => [...withoutTrailingPadding(bytes)].map((c) => Array.from(c));

  test('all-ones bytes before every scan-ending marker first, then the last scan shortened byte by byte', () => {
    const sos = segment(0xda, [1, 1, 0, 0, 63, 0]);
    const file = jpegOf(SOI, sos, [0x12, 0xff, 0x00], segment(0xc4, [0]), sos, [0x34, 0x56, 0xff, 0x00], EOI);
    const head = [...SOI, ...sos, 0x12];
    const middle = [...segment(0xc4, [0]), ...sos];
    expect(list(file)).toEqual([
      [...head, ...middle, 0x34, 0x56, ...EOI], // both scans without their FF 00
      [...head, 0xff, 0x00, ...middle, 0x34, 0x56, ...EOI], // the last scan without 1 byte
      [...head, 0xff, 0x00, ...middle, 0x34, ...EOI], // ... 2 bytes
      [...head, 0xff, 0x00, ...middle, ...EOI], // ... 3 bytes
    ]);
  });

  test('a restart marker starts a new tail; nothing is offered for a file without an end', () => {
    const sos = segment(0xda, [1, 1, 0, 0, 63, 0]);
    const withRestart = jpegOf(SOI, sos, [0x11, 0x22, 0xff, 0xd0, 0x33], EOI);
    expect(list(withRestart)).toEqual([[...SOI, ...sos, 0x11, 0x22, 0xff, 0xd0, ...EOI]]);
    expect(list(jpegOf(SOI, sos, [0x11, 0x22, 0x33]))).toEqual([]);
    expect(list(jpegOf(SOI, segment(0xdb, [0]), EOI))).toEqual([]);
  });
});
