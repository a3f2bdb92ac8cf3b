// Converting decoded images to the configured shape: channel conversion, then resampling.
//
// Channels: gray is replicated to RGB; colour is reduced to luma with PIL's integer ITU-R 601
// weights (so `channels: 1` matches `Image.convert('L')`); alpha is dropped (not composited).
// Resize (separable, half-pixel centres, edge pixels clamped — as tf.image.resize with
// antialias=false):
//   bilinear  2 taps per axis; the default. Fine for up-scaling and mild down-scaling.
//   nearest   1 tap per axis.
//   area      box average over each output pixel's footprint (fractional coverage): use when
//             shrinking large images, where bilinear would alias.
import type { Channels, RawImage, TargetShape } from './raw-image.js';

export type ResizeMethod = 'bilinear' | 'nearest' | 'area';
export const RESIZE_METHODS = ['bilinear', 'nearest', 'area'] as const;

/** PIL's `L` conversion: (R·19595 + G·38470 + B·7471 + 2^15) >> 16. */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** Converts `pixels` interleaved samples from `from` channels to `to` channels (no resize). */
export function convertChannels(src: Uint8Array, from: Channels, to: 1 | 3, pixels: number, dest: Uint8Array, offset: number): void {
  if (from === to) {
    dest.set(src.subarray(0, pixels * to), offset);
    return;
  }
  if (to === 3) {
    for (let p = 0, o = offset; p < pixels; p++, o += 3) {
      if (from === 4) {
        dest[o] = src[p * 4]!;
        dest[o + 1] = src[p * 4 + 1]!;
        dest[o + 2] = src[p * 4 + 2]!;
      } else {
        // Gray (1) or gray+alpha (2): replicate the gray sample.
        const v = src[p * from]!;
        dest[o] = v;
        dest[o + 1] = v;
        dest[o + 2] = v;
      }
    }
    return;
  }
  for (let p = 0; p < pixels; p++) {
    const s = p * from;
    dest[offset + p] = from <= 2 ? src[s]! : luma(src[s]!, src[s + 1]!, src[s + 2]!);
  }
}

/** For each output position, `taps` source indices and weights (weights sum to 1). */
interface AxisTaps {
  taps: number;
  index: Int32Array;
  weight: Float32Array;
}

function axisTaps(srcLen: number, dstLen: number, method: ResizeMethod): AxisTaps {
  const scale = srcLen / dstLen;
  const taps = method === 'nearest' ? 1 : method === 'bilinear' ? 2 : Math.ceil(scale) + 1;
  const index = new Int32Array(dstLen * taps);
  const weight = new Float32Array(dstLen * taps);
  for (let x = 0; x < dstLen; x++) {
    const t = x * taps;
    if (method === 'nearest') {
      index[t] = Math.min(Math.floor((x + 0.5) * scale), srcLen - 1);
      weight[t] = 1;
    } else if (method === 'bilinear') {
      const centre = Math.min(Math.max((x + 0.5) * scale - 0.5, 0), srcLen - 1);
      const i0 = Math.floor(centre);
      const f = centre - i0;
      index[t] = i0;
      index[t + 1] = Math.min(i0 + 1, srcLen - 1);
      weight[t] = 1 - f;
      weight[t + 1] = f;
    } else {
      const a = x * scale;
      const b = Math.min((x + 1) * scale, srcLen);
      let k = 0;
      for (let i = Math.floor(a); i < b && k < taps; i++, k++) {
        index[t + k] = i;
        weight[t + k] = (Math.min(b, i + 1) - Math.max(a, i)) / scale;
      }
    }
  }
  return { taps, index, weight };
}

/** Resamples an interleaved image of `channels` samples per pixel into dest at offset. */
export function resize(
  src: Uint8Array,
  srcWidth: number,
  srcHeight: number,
  channels: number,
  dstWidth: number,
  dstHeight: number,
  method: ResizeMethod,
  dest: Uint8Array,
  offset: number,
): void {
  const xs = axisTaps(srcWidth, dstWidth, method);
  const ys = axisTaps(srcHeight, dstHeight, method);
  // Horizontal pass into floats (srcHeight × dstWidth), then vertical pass with rounding.
  const rowLen = dstWidth * channels;
  const tmp = new Float32Array(srcHeight * rowLen);
  for (let y = 0; y < srcHeight; y++) {
    const srcRow = y * srcWidth * channels;
    for (let x = 0; x < dstWidth; x++) {
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let k = 0; k < xs.taps; k++) {
          const w = xs.weight[x * xs.taps + k]!;
          if (w !== 0) acc += w * src[srcRow + xs.index[x * xs.taps + k]! * channels + c]!;
        }
        tmp[y * rowLen + x * channels + c] = acc;
      }
    }
  }
  for (let y = 0; y < dstHeight; y++) {
    const out = offset + y * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let k = 0; k < ys.taps; k++) {
        const w = ys.weight[y * ys.taps + k]!;
        if (w !== 0) acc += w * tmp[ys.index[y * ys.taps + k]! * rowLen + i]!;
      }
      dest[out + i] = Math.min(255, Math.max(0, Math.round(acc)));
    }
  }
}

/** Writes `src` converted to `target` (channels, then size) into dest[offset ...]. */
export function convertImage(src: RawImage, target: TargetShape, method: ResizeMethod, dest: Uint8Array, offset: number): void {
  const pixels = src.width * src.height;
  if (src.width === target.width && src.height === target.height) {
    convertChannels(src.data, src.channels, target.channels, pixels, dest, offset);
    return;
  }
  let samples = src.data;
  if (src.channels !== target.channels) {
    samples = new Uint8Array(pixels * target.channels);
    convertChannels(src.data, src.channels, target.channels, pixels, samples, 0);
  }
  resize(samples, src.width, src.height, target.channels, target.width, target.height, method, dest, offset);
}
