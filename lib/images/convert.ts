// Converting decoded images to the configured shape: channel conversion, then resampling
// (resample.ts), one source row at a time so that no whole-image copy is made.
//
// Channels: gray is replicated to RGB; colour is reduced to luma with PIL's integer ITU-R 601
// weights (so `channels: 1` matches `Image.convert('L')`); alpha is dropped (not composited).
import type { Channels, RawImage, TargetShape } from './raw-image.js';
import { RowResampler, type ResizeMethod } from './resample.js';

export { RESIZE_METHODS, resize, type ResizeMethod } from './resample.js';

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

/** Where a decoder hands its rows, top to bottom: each `width × channels` samples of the source. */
export interface RowSink {
  push(row: Uint8Array): void;
  /** After the last row. */
  finish(): void;
}

/** A sink writing a `width × height` image of `channels` samples into dest[offset ...] as `target`. */
export function targetRowSink(
  width: number,
  height: number,
  channels: Channels,
  target: TargetShape,
  method: ResizeMethod,
  dest: Uint8Array,
  offset: number,
): RowSink {
  const rowLen = width * target.channels;
  if (width === target.width && height === target.height) {
    let y = 0;
    return {
      push(row) {
        convertChannels(row, channels, target.channels, width, dest, offset + y++ * rowLen);
      },
      finish() {
        if (y !== height) throw new Error(`targetRowSink: got ${y} of ${height} rows`);
      },
    };
  }
  const resampler = new RowResampler(width, height, target.channels, target.width, target.height, method, dest, offset);
  const converted = channels === target.channels ? null : new Uint8Array(rowLen);
  return {
    push(row) {
      if (!converted) return resampler.push(row);
      convertChannels(row, channels, target.channels, width, converted, 0);
      resampler.push(converted);
    },
    finish: () => resampler.finish(),
  };
}

/** Writes `src` converted to `target` (channels, then size) into dest[offset ...]. */
export function convertImage(src: RawImage, target: TargetShape, method: ResizeMethod, dest: Uint8Array, offset: number): void {
  if (src.width === target.width && src.height === target.height) {
    convertChannels(src.data, src.channels, target.channels, src.width * src.height, dest, offset);
    return;
  }
  const sink = targetRowSink(src.width, src.height, src.channels, target, method, dest, offset);
  const stride = src.width * src.channels;
  for (let y = 0; y < src.height; y++) sink.push(src.data.subarray(y * stride, (y + 1) * stride));
  sink.finish();
}
