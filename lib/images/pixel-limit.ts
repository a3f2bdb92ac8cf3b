// The decompression-bomb guard: an image's size is read from its header (JPEG SOF, PNG IHDR) and
// checked against a pixel limit before any pixel memory is allocated, so a 69-byte file cannot
// claim 30000×30000 and get 9 GB. The default is Pillow's MAX_IMAGE_PIXELS (1 GiB / 4 / 3:
// 89,478,485 pixels, about 9459×9459); Pillow only warns there and refuses at twice that, here it
// is the refusal point — datasets of larger images raise it.
import { ImageTooLargeError } from '../errors.js';

export const DEFAULT_MAX_PIXELS = 89_478_485;

/**
 * Bytes per allowed pixel a file may have: more than any JPEG or PNG within the limit needs
 * (16-bit RGBA stored uncompressed is 8), so a larger file is refused unread.
 */
const FILE_BYTES_PER_PIXEL = 16;
const FILE_SLACK_BYTES = 16 << 20;

const count = (n: number) => n.toLocaleString('en-US');

export function checkPixelLimit(width: number, height: number, maxPixels: number): void {
  const pixels = width * height;
  if (pixels > maxPixels) throw new ImageTooLargeError(`${width}×${height} is ${count(pixels)} pixels, over the limit of ${count(maxPixels)}`);
}

/** The largest file that can hold an image within `maxPixels`. */
export function maxImageFileBytes(maxPixels: number): number {
  return maxPixels * FILE_BYTES_PER_PIXEL + FILE_SLACK_BYTES;
}

export function fileTooLarge(size: number, maxPixels: number): ImageTooLargeError {
  return new ImageTooLargeError(
    `the file is ${count(size)} bytes, more than an image within the limit of ${count(maxPixels)} pixels can take (${count(maxImageFileBytes(maxPixels))})`,
  );
}

function isFrameMarker(m: number): boolean {
  // SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
  return m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
}

/** Width and height from a JPEG's frame header (SOFn), or null if none comes before the first scan. */
export function jpegFrameSize(bytes: Uint8Array): { width: number; height: number } | null {
  let i = 2;
  while (i + 3 < bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2; // markers without a length
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null;
    if (isFrameMarker(marker)) {
      if (i + 8 >= bytes.length) return null;
      return { height: (bytes[i + 5]! << 8) | bytes[i + 6]!, width: (bytes[i + 7]! << 8) | bytes[i + 8]! };
    }
    i += 2 + ((bytes[i + 2]! << 8) | bytes[i + 3]!);
  }
  return null;
}
