// Piscina worker for the decode stage: reads and decodes a chunk of image files into the shared
// pixel buffer. One decoder (wasm instance) and one read buffer per thread, reused across tasks.
import { createImageDecoder, type ImageDecoder } from '../lib/images/decode-image.js';
import { ImageTooLargeError } from '../lib/errors.js';
import { preloadJpegDecoder } from '../lib/images/jpeg.js';
import type { DecodeFailure, DecodeTask, DecodeTaskResult } from '../lib/images/decode-task.js';
import { fileTooLarge, maxImageFileBytes } from '../lib/images/pixel-limit.js';
import { imageBytes } from '../lib/images/raw-image.js';
import { SmallFileReader } from '../lib/images/read-file.js';

preloadJpegDecoder();
const reader = new SmallFileReader();
const decoders = new Map<string, Promise<ImageDecoder>>();

function decoderFor(task: DecodeTask): Promise<ImageDecoder> {
  const key = `${task.shape.height}x${task.shape.width}x${task.shape.channels}:${task.resize}:${task.maxPixels}`;
  let decoder = decoders.get(key);
  if (!decoder) {
    decoder = createImageDecoder(task.shape, task.resize, { maxPixels: task.maxPixels });
    decoders.set(key, decoder);
  }
  return decoder;
}

export default async function decodeChunk(task: DecodeTask): Promise<DecodeTaskResult> {
  const decoder = await decoderFor(task);
  const pixels = new Uint8Array(task.pixels);
  const rowBytes = imageBytes(task.shape);
  const limit = { maxBytes: maxImageFileBytes(task.maxPixels), tooLarge: (size: number) => fileTooLarge(size, task.maxPixels) };
  const failures: DecodeFailure[] = [];
  for (let i = 0; i < task.files.length; i++) {
    const file = task.files[i]!;
    const row = task.firstRow + i;
    try {
      await decoder.decodeInto(reader.read(file, limit), pixels, row * rowBytes);
    } catch (err) {
      // Unreadable counts as corrupt: either way the image cannot be used.
      failures.push({ row, file, reason: err instanceof Error ? err.message : String(err), tooLarge: err instanceof ImageTooLargeError });
      if (!task.skipCorrupt) break;
    }
  }
  return { failures };
}
