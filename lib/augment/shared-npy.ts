// Reads a .npy file straight into a SharedArrayBuffer, so the pixel data is in memory once and
// every worker sees it without a copy.
import { open } from 'node:fs/promises';
import { elementCount, parseNpyHeader, type DType } from '../npy.js';

const BYTES: Record<DType, number> = { uint8: 1, int32: 4, float32: 4 };
const READ_BLOCK = 16 * 1024 * 1024;

export interface SharedNpy {
  dtype: DType;
  shape: number[];
  /** Exactly the array's data (no header). */
  buffer: SharedArrayBuffer;
}

export async function readNpyShared(path: string): Promise<SharedNpy> {
  const handle = await open(path, 'r');
  try {
    // Version 1 headers are at most 10 + 65535 bytes; version 2 has a 4-byte length.
    const prefix = Buffer.alloc(12);
    await handle.read(prefix, 0, 12, 0);
    const headerLength = prefix[6] === 1 ? 10 + prefix.readUInt16LE(8) : 12 + prefix.readUInt32LE(8);
    const head = Buffer.alloc(headerLength);
    await handle.read(head, 0, headerLength, 0);
    const { dtype, shape, offset } = parseNpyHeader(head, path);
    const bytes = elementCount(shape) * BYTES[dtype];
    const buffer = new SharedArrayBuffer(bytes);
    const view = new Uint8Array(buffer);
    for (let done = 0; done < bytes; ) {
      const { bytesRead } = await handle.read(view, done, Math.min(READ_BLOCK, bytes - done), offset + done);
      if (bytesRead === 0) throw new Error(`${path}: truncated data (${done} of ${bytes} bytes)`);
      done += bytesRead;
    }
    return { dtype, shape, buffer };
  } finally {
    await handle.close();
  }
}
