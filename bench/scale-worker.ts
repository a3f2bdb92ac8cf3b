// Piscina worker of bench/scale.ts: a CIFAR-10 JPEG upscaled to SIZE×SIZE (bilinear, our own
// resize), optionally mirrored (to make distinct images beyond the archive's 60,000), re-encoded
// as a JPEG (jpeg-js, quality 90).
import { createJpegDecoder, type JpegDecoder } from '../lib/images/jpeg.js';
import { convertImage } from '../lib/images/convert.js';
import { encodeJpeg } from '../test/helpers/jpeg-encode.js';

export interface ScaleTask {
  jpegs: Uint8Array[];
  /** Per image: mirror it left-right. */
  mirror: boolean[];
  size: number;
}

let decoder: Promise<JpegDecoder> | undefined;

export default async function upscale(task: ScaleTask): Promise<Uint8Array[]> {
  const d = await (decoder ??= createJpegDecoder());
  const { size } = task;
  const rgb = new Uint8Array(size * size * 3);
  const rgba = new Uint8Array(size * size * 4);
  return task.jpegs.map((bytes, k) => {
    const image = d.decode(bytes);
    convertImage({ ...image, data: image.data.slice() }, { height: size, width: size, channels: 3 }, 'bilinear', rgb, 0);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const from = (y * size + (task.mirror[k] ? size - 1 - x : x)) * 3;
        const to = (y * size + x) * 4;
        rgba[to] = rgb[from]!;
        rgba[to + 1] = rgb[from + 1]!;
        rgba[to + 2] = rgb[from + 2]!;
        rgba[to + 3] = 255;
      }
    }
    return encodeJpeg(rgba, size, size, 90);
  });
}
