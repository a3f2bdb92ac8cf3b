// Bytes → pixels of the configured shape, for either supported codec (chosen by magic bytes,
// not by file extension).
import { convertImage, type ResizeMethod } from './convert.js';
import { ImageDecodeError, JpegDecodeError } from '../errors.js';
import { createJpegDecoder, isJpeg } from './jpeg.js';
import { decodePng, isPng } from './png.js';
import type { RawImage, TargetShape } from './raw-image.js';

export interface ImageDecoder {
  /** Decodes `bytes` and writes the converted image into dest[offset, offset + H·W·C). */
  decodeInto(bytes: Uint8Array, dest: Uint8Array, offset: number): void;
  dispose(): void;
}

export async function createImageDecoder(target: TargetShape, resize: ResizeMethod): Promise<ImageDecoder> {
  const jpeg = await createJpegDecoder();
  return {
    decodeInto(bytes, dest, offset) {
      let image: RawImage;
      try {
        if (isJpeg(bytes)) image = jpeg.decode(bytes);
        else if (isPng(bytes)) image = decodePng(bytes);
        else throw new ImageDecodeError('not a JPEG or PNG file');
      } catch (err) {
        if (err instanceof ImageDecodeError) throw err;
        const reason = err instanceof JpegDecodeError || err instanceof Error ? err.message : String(err);
        throw new ImageDecodeError(reason);
      }
      if (image.width < 1 || image.height < 1) throw new ImageDecodeError('image has no pixels');
      convertImage(image, target, resize, dest, offset);
    },
    dispose() {
      jpeg.dispose();
    },
  };
}
