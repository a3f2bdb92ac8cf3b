// Reads only the header of a .npy file: its dtype and shape, without loading the data.
import { open } from 'node:fs/promises';
import { parseNpyHeader, type DType } from '../npy.js';

export async function npyInfo(path: string): Promise<{ dtype: DType; shape: number[] }> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    const { dtype, shape } = parseNpyHeader(buf.subarray(0, bytesRead), path);
    return { dtype, shape };
  } finally {
    await handle.close();
  }
}
