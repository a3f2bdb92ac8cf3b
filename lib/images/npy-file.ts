// Reading .npy tensors from the store piecewise: rows on demand, or whole into one aligned
// allocation (lib/npy's readNpy holds the file bytes and a copy at once: twice the memory).
import { open, type FileHandle } from 'node:fs/promises';
import { allocate, elementCount, parseNpyHeader, type DType, type TypedArrayOf } from '../npy.js';

const BYTES: Record<DType, number> = { uint8: 1, int32: 4, float32: 4 };
/** Upper bound of a .npy header we accept (version 1 headers are under 64 KiB). */
const MAX_HEADER = 65536 + 12;

export interface NpyFile<D extends DType = DType> {
  path: string;
  dtype: D;
  shape: number[];
  /** Elements per row (product of all dimensions but the first). */
  rowElements: number;
  /** Reads rows [start, start + count) into a fresh array. */
  readRows(start: number, count: number): Promise<TypedArrayOf<D>>;
  readAll(): Promise<TypedArrayOf<D>>;
  close(): Promise<void>;
}

async function readFully(handle: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) throw new Error(`${path}: truncated data`);
    done += bytesRead;
  }
}

export async function openNpy<D extends DType>(path: string, dtype: D): Promise<NpyFile<D>> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(MAX_HEADER);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const header = parseNpyHeader(head.subarray(0, bytesRead), path);
    if (header.dtype !== dtype) throw new Error(`${path}: expected ${dtype}, found ${header.dtype}`);
    if (header.shape.length === 0) throw new Error(`${path}: expected at least one dimension`);
    const rowElements = elementCount(header.shape.slice(1));
    const rowBytes = rowElements * BYTES[dtype];
    const rows = header.shape[0]!;
    const readRows = async (start: number, count: number): Promise<TypedArrayOf<D>> => {
      if (start < 0 || count < 0 || start + count > rows) throw new RangeError(`${path}: rows [${start}, ${start + count}) outside [0, ${rows})`);
      const out = allocate(dtype, count * rowElements);
      await readFully(handle, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), header.offset + start * rowBytes, path);
      return out;
    };
    return {
      path,
      dtype,
      shape: header.shape,
      rowElements,
      readRows,
      readAll: () => readRows(0, rows),
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
