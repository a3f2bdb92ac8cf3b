// Bytes → pixels of the configured shape, for either supported codec (chosen by magic bytes,
// not by file extension). The size each header announces is checked against the pixel limit
// before the decoder allocates anything; a PNG is decoded row by row straight into the resampler.
import { convertImage, targetRowSink, type ResizeMethod } from './convert.js';
import { ImageDecodeError } from '../errors.js';
import { createJpegDecoder, isJpeg } from './jpeg.js';
import { checkPixelLimit, DEFAULT_MAX_PIXELS, jpegFrameSize } from './pixel-limit.js';
import { decodePngRows, isPng, parsePng, pngChannels, readPngHeader } from './png.js';
import type { TargetShape } from './raw-image.js';

export interface DecodeLimits {
  /** Largest width × height decoded; larger images are refused from their header (ImageTooLargeError). */
  maxPixels: number;
}

export interface ImageDecoder {
  /** Decodes `bytes` and writes the converted image into dest[offset, offset + H·W·C). */
  decodeInto(bytes: Uint8Array, dest: Uint8Array, offset: number): Promise<void>;
  dispose(): void;
}

export async function createImageDecoder(
  target: TargetShape,
  resize: ResizeMethod,
  limits: DecodeLimits = { maxPixels: DEFAULT_MAX_PIXELS },
): Promise<ImageDecoder> {
  const jpeg = await createJpegDecoder();

  const decodeJpeg = (bytes: Uint8Array, dest: Uint8Array, offset: number): void => {
    const frame = jpegFrameSize(bytes);
    if (frame) checkPixelLimit(frame.width, frame.height, limits.maxPixels);
    const image = jpeg.decode(bytes);
    // A frame header the scan above missed (or none at all) is caught here, after the fact.
    checkPixelLimit(image.width, image.height, limits.maxPixels);
    if (image.width < 1 || image.height < 1) throw new ImageDecodeError('image has no pixels');
    convertImage(image, target, resize, dest, offset);
  };

  const decodePng = async (bytes: Uint8Array, dest: Uint8Array, offset: number): Promise<void> => {
    const header = readPngHeader(bytes);
    checkPixelLimit(header.width, header.height, limits.maxPixels);
    const png = parsePng(bytes);
    const sink = targetRowSink(header.width, header.height, pngChannels(header), target, resize, dest, offset);
    await decodePngRows(png, (row) => sink.push(row));
    sink.finish();
  };

  return {
    async decodeInto(bytes, dest, offset) {
      try {
        if (isJpeg(bytes)) decodeJpeg(bytes, dest, offset);
        else if (isPng(bytes)) await decodePng(bytes, dest, offset);
        else throw new ImageDecodeError('not a JPEG or PNG file');
      } catch (err) {
        if (err instanceof ImageDecodeError) throw err;
        // JpegDecodeError, or an allocation the limit did not prevent (a raised max_pixels).
        throw new ImageDecodeError(err instanceof Error ? err.message : String(err));
      }
    },
    dispose() {
      jpeg.dispose();
    },
  };
}
