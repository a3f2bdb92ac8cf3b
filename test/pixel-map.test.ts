// The loader's pixel mapping in wasm (lib/dataset/pixel-map.ts) gives the bits of the JavaScript
// loop it replaced, for every channel count, for scale and standardize tables and for an arbitrary
// table, and datasetRows / uint8Rows gather the same batches through it.
import { describe, expect, test } from '@jest/globals';
import { PixelMapper } from '../lib/dataset/pixel-map.js';
import { pixelTable, uint8Rows } from '../lib/model/data.js';
import { Rng } from '../lib/model/rng.js';

/** The loop datasetRows and the prefetch thread ran before the wasm mapping. */
function reference(pixels: Uint8Array, table: Float32Array, channels: number): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let j = 0; j < pixels.length; j += channels) for (let ch = 0; ch < channels; ch++) out[j + ch] = table[ch * 256 + pixels[j + ch]!]!;
  return out;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n }, () => rng.nextUint32() & 255);
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function tables(channels: number): Array<[string, Float32Array]> {
  const mean = Array.from({ length: channels }, (_, c) => 0.41 + 0.037 * c);
  const std = Array.from({ length: channels }, (_, c) => 0.19 + 0.023 * c);
  // Any float32 bits, NaNs and infinities included: a lookup copies them as they are.
  const arbitrary = new Float32Array(new Uint32Array(randomBytes(channels * 256 * 4, 7 + channels).buffer));
  return [
    ['scale', pixelTable({ method: 'scale', scale: 1 / 255 }, channels)],
    ['standardize', pixelTable({ method: 'standardize', scale: 1 / 255, mean, std }, channels)],
    ['arbitrary bits', arbitrary],
  ];
}

describe('PixelMapper', () => {
  for (const channels of [1, 2, 3, 4, 5]) {
    for (const [name, table] of tables(channels)) {
      test(`${channels} channel(s), ${name} table: the reference loop's bits`, () => {
        for (const [h, w] of [
          [1, 1],
          [7, 5],
          [224, 224],
        ]) {
          const rowBytes = h! * w! * channels;
          const mapper = new PixelMapper(table, rowBytes);
          for (let row = 0; row < 3; row++) {
            const pixels = randomBytes(rowBytes, 100 * channels + row);
            mapper.pixels.set(pixels);
            const out = new Float32Array(rowBytes * 2).fill(-1);
            mapper.mapInto(out, rowBytes);
            expect(bits(out.subarray(rowBytes)).equals(bits(reference(pixels, table, channels)))).toBe(true);
            expect(out.subarray(0, rowBytes).every((v) => v === -1)).toBe(true); // nothing written before `at`
          }
        }
      });
    }
  }

  test('every pixel value of every channel', () => {
    const table = tables(3)[1]![1];
    const pixels = Uint8Array.from({ length: 3 * 256 }, (_, j) => Math.floor(j / 3));
    const mapper = new PixelMapper(table, pixels.length);
    mapper.pixels.set(pixels);
    const out = new Float32Array(pixels.length);
    mapper.mapInto(out, 0);
    expect(bits(out).equals(bits(reference(pixels, table, 3)))).toBe(true);
  });

  test('a table that does not fit the rows is refused', () => {
    expect(() => new PixelMapper(new Float32Array(300), 30)).toThrow(/pixel table of 300 entries/);
    expect(() => new PixelMapper(new Float32Array(3 * 256), 31)).toThrow(/rows of 31 bytes/);
  });

  test('uint8Rows gathers rows through it as the reference loop does', () => {
    const [n, h, w, c] = [9, 6, 5, 3];
    const size = h * w * c;
    const xs = randomBytes(n * size, 3);
    const y = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) y[i * 2 + (i % 2)] = 1;
    const table = tables(c)[1]![1];
    const rows = uint8Rows({ dtype: 'uint8', shape: [n, h, w, c], data: xs }, { dtype: 'float32', shape: [n, 2], data: y }, table, 'test');
    const order = [4, 0, 8, 8, 2];
    const { x } = rows.gather(order);
    order.forEach((r, i) => {
      expect(bits(x.subarray(i * size, (i + 1) * size)).equals(bits(reference(xs.subarray(r * size, (r + 1) * size), table, c)))).toBe(true);
    });
  });
});
