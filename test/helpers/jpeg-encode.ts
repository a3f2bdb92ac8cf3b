// JPEG encoding for generated test images with jpeg-js, fast. jpeg-js's encode() builds a new
// encoder (some 65,000 small lookup arrays) for every image, 30× the cost of encoding a 32×32
// image; its JPEGEncoder class is not exported. So this evaluates the package's own encoder module
// once to reach that class, keeps one instance (its quality is set per call), and falls back to
// encode() if the module ever stops defining it. Bytes are the same either way.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import jpeg from 'jpeg-js';

interface Encoder {
  encode(image: { data: Uint8Array; width: number; height: number }, quality: number): Uint8Array;
}

function loadEncoderClass(): (new (quality: number) => Encoder) | null {
  try {
    const require = createRequire(import.meta.url);
    const source = readFileSync(require.resolve('jpeg-js/lib/encoder.js'), 'utf8');
    const load = new Function('module', 'require', `${source}\nreturn typeof JPEGEncoder === 'function' ? JPEGEncoder : null;`);
    return load({ exports: {} }, require) as (new (quality: number) => Encoder) | null;
  } catch {
    return null;
  }
}

let encoder: Encoder | null | undefined;

/** Baseline JPEG of RGBA pixels (alpha ignored), as jpeg-js's encode() writes it. */
export function encodeJpeg(rgba: Uint8Array, width: number, height: number, quality: number): Uint8Array {
  if (encoder === undefined) {
    const JpegEncoder = loadEncoderClass();
    encoder = JpegEncoder ? new JpegEncoder(quality) : null;
  }
  const image = { data: rgba, width, height };
  return encoder ? encoder.encode(image, quality) : jpeg.encode(image, quality).data;
}
