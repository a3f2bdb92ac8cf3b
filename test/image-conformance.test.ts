// Decoder conformance: a corpus built here from several encoders and settings, every file decoded
// through the decode stage's image decoder and compared with a reference decode.
//   - jpeg-js at several qualities and sizes, thousands of images (about 3 in 1,000 of its files
//     end in padding that wasm32 libjpeg-turbo used to refuse); reference: jpeg-js's own decoder
//     (an independent IDCT: within ±IDCT_TOLERANCE) and, for every file that ends in a padding
//     byte, libjpeg-turbo's `djpeg` (exact up to ±DJPEG_TOLERANCE)
//   - libjpeg-turbo's `cjpeg` and `jpegtran` (Debian libjpeg-turbo-progs): baseline, progressive,
//     optimized Huffman tables, restart markers, arithmetic coding, 4:4:4 / 4:2:2 / 4:2:0 / 4:4:0
//     subsampling, grayscale, odd sizes; reference: `djpeg`
//   - PNG: every colour type and bit depth, Adam7 interlacing, all five filter types, palettes
//     (with and without transparency), images large enough to be inflated as a stream (1 MiB);
//     reference: the encoded pixels themselves (lossless), and pngjs reading the same files
// And the other way round: truncated or mangled JPEGs and PNGs are still refused, a header that
// promises more pixels than the data holds is corrupt (not a black image), and an image over the
// pixel limit is refused from its header, before anything is allocated.
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
import { ImageDecodeError, ImageTooLargeError } from '../lib/errors.js';
import { withoutTrailingPadding } from '../lib/images/jpeg-padding.js';
import { encodeJpeg } from './helpers/jpeg-encode.js';
import { encodePng, ihdr, lyingPng, pngChunk, pngFile as assemblePng, type PngSpec } from './helpers/png-builders.js';

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
  await decoder.decodeInto(bytes, out, 0);
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
  /** A PNG written here byte by byte (pngjs writes no palettes): filter 0 on every row. */
  function pngFile(width: number, height: number, colorType: number, bitDepth: number, rowBytes: (y: number) => Uint8Array, chunks: Buffer[] = []): Buffer {
    const raw = Buffer.concat(Array.from({ length: height }, (_, y) => Buffer.concat([Buffer.from([0]), rowBytes(y)])));
    return assemblePng(ihdr(width, height, colorType, bitDepth), deflateSync(raw), chunks);
  }

  /** An 8-bit palette PNG (colour type 3), optionally with a tRNS chunk. */
  function palettePng(width: number, height: number, palette: number[][], index: (x: number, y: number) => number, alpha?: number[]): Buffer {
    const row = (y: number) => Uint8Array.from({ length: width }, (_, x) => index(x, y));
    return pngFile(width, height, 3, 8, row, [pngChunk('PLTE', Uint8Array.from(palette.flat())), ...(alpha ? [pngChunk('tRNS', Uint8Array.from(alpha))] : [])]);
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

describe('PNG: every format the decoder reads, against the encoded samples and pngjs', () => {
  const DEPTHS: Record<PngSpec['colorType'], PngSpec['bitDepth'][]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
  const SAMPLES = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as const;

  /** A seeded image of the given format, its file, and the RGB pixels it must decode to. */
  function sample(spec: Omit<PngSpec, 'sample' | 'palette'>, seed: number): { bytes: Buffer; rgb: Uint8Array } {
    const max = 2 ** spec.bitDepth - 1;
    const value = (x: number, y: number, c: number) => (((x * 7919 + y * 104729 + c * 1299709 + seed * 15485863) >>> 0) ^ (x * y)) % (max + 1);
    const palette = spec.colorType === 3 ? Array.from({ length: max + 1 }, (_, i) => [(i * 37 + seed) % 256, (i * 91) % 256, 255 - (i % 256)]) : undefined;
    const full: PngSpec = { ...spec, palette, sample: value };
    const scale = (v: number) => Math.floor((v * 255) / max + 0.5);
    const rgb = new Uint8Array(spec.width * spec.height * 3);
    for (let y = 0; y < spec.height; y++) {
      for (let x = 0; x < spec.width; x++) {
        const o = (y * spec.width + x) * 3;
        if (palette) rgb.set(palette[value(x, y, 0)]!, o);
        else if (SAMPLES[spec.colorType] <= 2) rgb.fill(scale(value(x, y, 0)), o, o + 3);
        else for (let c = 0; c < 3; c++) rgb[o + c] = scale(value(x, y, c));
      }
    }
    return { bytes: encodePng(full), rgb };
  }

  test('every colour type and bit depth, interlaced or not, all five filter types', async () => {
    const sizes: [number, number][] = [
      [1, 1],
      [3, 2],
      [9, 7],
      [33, 17],
    ];
    const failures: string[] = [];
    let seed = 0;
    for (const [type, depths] of Object.entries(DEPTHS)) {
      for (const bitDepth of depths) {
        for (const interlaced of [false, true]) {
          for (const [width, height] of sizes) {
            const spec = { width, height, colorType: Number(type) as PngSpec['colorType'], bitDepth, interlaced };
            const label = `type ${type}, ${bitDepth}-bit${interlaced ? ', Adam7' : ''}, ${width}×${height}`;
            const { bytes, rgb } = sample(spec, seed++);
            // pngjs reading the same file checks the file built here.
            if (maxDiff(toRgb(PNG.sync.read(bytes).data, 4), rgb) !== 0) failures.push(`${label}: pngjs reads other pixels`);
            try {
              const d = maxDiff(await decodeRgb(bytes, width, height), rgb);
              if (d !== 0) failures.push(`${label}: max |diff| ${d}`);
            } catch (err) {
              failures.push(`${label}: ${(err as Error).message}`);
            }
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });

  test('images with more than 1 MiB of image data (inflated as a stream) decode exactly', async () => {
    for (const interlaced of [false, true]) {
      const spec = { width: 600, height: 450, colorType: 6, bitDepth: 8, interlaced } as const;
      const { bytes, rgb } = sample(spec, 99);
      expect([interlaced, maxDiff(await decodeRgb(bytes, spec.width, spec.height), rgb)]).toEqual([interlaced, 0]);
    }
  });
});

describe('the pixel limit, and headers that promise more than the file holds', () => {
  /** Decodes into an 8×8 target: the image's own size allocates nothing in the test. */
  async function decodeSmall(bytes: Uint8Array, maxPixels?: number): Promise<void> {
    const decoder = await createImageDecoder({ width: 8, height: 8, channels: 3 }, 'area', maxPixels === undefined ? undefined : { maxPixels });
    try {
      await decoder.decodeInto(bytes, new Uint8Array(8 * 8 * 3), 0);
    } finally {
      decoder.dispose();
    }
  }
  /** The JPEG with its frame header (SOF0) saying width × height. */
  function resizedSof(bytes: Uint8Array, width: number, height: number): Buffer {
    const out = Buffer.from(bytes);
    const sof = out.indexOf(Buffer.from([0xff, 0xc0]));
    out.writeUInt16BE(height, sof + 5);
    out.writeUInt16BE(width, sof + 7);
    return out;
  }
  const opaque = (width: number, height: number) =>
    ({ width, height, colorType: 2, bitDepth: 8, sample: (x: number, y: number, c: number) => (x + y + c) & 255 }) as const;

  test("the issue's 69-byte PNG whose header says 30000×30000 is refused from its header (default limit)", async () => {
    const bytes = lyingPng(30000, 30000);
    expect(bytes.length).toBe(69);
    const err = await decodeSmall(bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageTooLargeError);
    expect((err as Error).message).toBe('30000×30000 is 900,000,000 pixels, over the limit of 89,478,485');
  });

  test('a JPEG whose frame header says 30000×30000 is refused before libjpeg allocates', async () => {
    const err = await decodeSmall(resizedSof(encodeJpeg(picture(32, 32, 5), 32, 32, 90), 30000, 30000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageTooLargeError);
    expect((err as Error).message).toBe('30000×30000 is 900,000,000 pixels, over the limit of 89,478,485');
  });

  test('an image at the limit decodes; one more row is refused (PNG and JPEG)', async () => {
    await expect(decodeSmall(encodePng(opaque(100, 100)), 10_000)).resolves.toBeUndefined();
    await expect(decodeSmall(encodePng(opaque(100, 101)), 10_000)).rejects.toThrow(
      new ImageTooLargeError('100×101 is 10,100 pixels, over the limit of 10,000'),
    );
    await expect(decodeSmall(encodeJpeg(picture(100, 100, 1), 100, 100, 80), 10_000)).resolves.toBeUndefined();
    await expect(decodeSmall(encodeJpeg(picture(100, 101, 1), 100, 101, 80), 10_000)).rejects.toThrow(ImageTooLargeError);
  });

  const good = encodePng(opaque(40, 30));
  const idatAt = good.indexOf('IDAT') + 4;
  const idatLength = good.readUInt32BE(idatAt - 8);
  test.each([
    [
      'a header bigger than its data (the 69-byte lie at 300×200)',
      () => lyingPng(300, 200),
      'PNG image data ends early: 4 of the 240200 bytes a 300×200 image needs',
    ],
    [
      'data for 10 of 1000 rows, inflated as a stream',
      () => assemblePng(ihdr(1200, 1000, 6, 8), deflateSync(Buffer.alloc(10 * (1 + 1200 * 4)))),
      'PNG image data ends early: 48010 of the 4801000 bytes a 1200×1000 image needs',
    ],
    [
      'a zlib stream cut short (chunks intact)',
      () => assemblePng(ihdr(40, 30, 2, 8), good.subarray(idatAt, idatAt + Math.floor(idatLength / 2))),
      'PNG image data ends early',
    ],
    ['a file cut inside its IDAT chunk', () => good.subarray(0, idatAt + 20), 'PNG truncated in its IDAT chunk'],
    ['a file without IEND', () => good.subarray(0, good.length - 12), 'PNG truncated after'],
    ['a flipped byte in the image data', () => Buffer.from(good).fill(0x55, idatAt + 30, idatAt + 31), 'PNG IDAT chunk fails its CRC check'],
  ])('PNG: %s is corrupt, not a black image', async (_label, make, message) => {
    const err = await decodeSmall(make()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDecodeError);
    expect(err).not.toBeInstanceOf(ImageTooLargeError);
    expect((err as Error).message).toContain(message);
  });

  test('JPEG: a frame header bigger than its scan data is corrupt', async () => {
    const bytes = resizedSof(encodeJpeg(picture(32, 32, 6), 32, 32, 90), 320, 320);
    const err = await decodeSmall(bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDecodeError);
    expect(err).not.toBeInstanceOf(ImageTooLargeError);
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
