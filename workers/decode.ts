// Piscina worker for the decode stage: reads and decodes a chunk of sources (files, or pack entries
// by offset) into the shared pixel buffer. One decoder (wasm instance) and one read buffer per
// thread, reused across tasks.
import { createImageDecoder, type ImageDecoder } from '../lib/images/decode-image.js';
import { PackIntegrityError } from '../lib/errors.js';
import { preloadJpegDecoder } from '../lib/images/jpeg.js';
import type { DecodeFailure, DecodeTask, DecodeTaskResult } from '../lib/images/decode-task.js';
import { imageBytes } from '../lib/images/raw-image.js';
import { SourceReader } from '../lib/images/read-file.js';

preloadJpegDecoder();
const reader = new SourceReader();
const decoders = new Map<string, Promise<ImageDecoder>>();

function decoderFor(task: DecodeTask): Promise<ImageDecoder> {
  const key = `${task.shape.height}x${task.shape.width}x${task.shape.channels}:${task.resize}`;
  let decoder = decoders.get(key);
  if (!decoder) {
    decoder = createImageDecoder(task.shape, task.resize);
    decoders.set(key, decoder);
  }
  return decoder;
}

export default async function decodeChunk(task: DecodeTask): Promise<DecodeTaskResult> {
  const decoder = await decoderFor(task);
  const pixels = new Uint8Array(task.pixels);
  const rowBytes = imageBytes(task.shape);
  const failures: DecodeFailure[] = [];
  try {
    for (let i = 0; i < task.sources.length; i++) {
      const source = task.sources[i]!;
      const row = task.firstRow + i;
      try {
        decoder.decodeInto(reader.read(source), pixels, row * rowBytes);
      } catch (err) {
        if (err instanceof PackIntegrityError) return { failures, damaged: err.message };
        // Unreadable counts as corrupt: either way the image cannot be used.
        failures.push({ row, file: source.packed?.entry ?? source.file, reason: err instanceof Error ? err.message : String(err) });
        if (!task.skipCorrupt) break;
      }
    }
  } finally {
    reader.release();
  }
  return { failures };
}
