// PNG decoding with pngjs (pure JS). PNG is not the speed path (CIFAR ships as JPEG or binary);
// pngjs handles every colour type and bit depth and always yields 8-bit RGBA.
import { PNG } from 'pngjs';
import type { RawImage } from './raw-image.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= PNG_MAGIC.length && PNG_MAGIC.every((b, i) => bytes[i] === b);
}

export function decodePng(bytes: Uint8Array): RawImage {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Gray and palette images come out as RGBA with R = G = B: the converters treat them alike.
  const png = PNG.sync.read(buffer);
  return { width: png.width, height: png.height, channels: 4, data: png.data };
}
