// Piscina worker for the decode stage: reads and decodes a chunk of sources (files, or pack entries
// by offset) into the shared pixel buffer. One decoder (wasm instance) and one read buffer per
// thread, reused across tasks.
import { createImageDecoder, type ImageDecoder } from '../lib/images/decode-image.js';
import { ImageTooLargeError, PackIntegrityError } from '../lib/errors.js';
import { preloadJpegDecoder } from '../lib/images/jpeg.js';
import type { DecodeFailure, DecodeTask, DecodeTaskResult } from '../lib/images/decode-task.js';
import { fileTooLarge, maxImageFileBytes } from '../lib/images/pixel-limit.js';
import { imageBytes } from '../lib/images/raw-image.js';
import { SourceReader } from '../lib/images/read-file.js';

preloadJpegDecoder();
const reader = new SourceReader();
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
  try {
    for (let i = 0; i < task.sources.length; i++) {
      const source = task.sources[i]!;
      const row = task.firstRow + i;
      try {
        await decoder.decodeInto(reader.read(source, limit), pixels, row * rowBytes);
      } catch (err) {
        if (err instanceof PackIntegrityError) return { failures, damaged: err.message };
        // Unreadable counts as corrupt: either way the image cannot be used.
        const file = source.packed?.entry ?? source.file;
        failures.push({ row, file, reason: err instanceof Error ? err.message : String(err), tooLarge: err instanceof ImageTooLargeError });
        if (!task.skipCorrupt) break;
      }
    }
  } finally {
    reader.release();
  }
  return { failures };
}
