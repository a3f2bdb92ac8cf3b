// NumPy .npy reader and writer: the store's tensor format, readable with `numpy.load` outside this
// project. Writes format version 1.0; reads 1.0 and the 4-byte header lengths of 2.0/3.0. Only
// little-endian C-order arrays of the dtypes below. The one .npy reader of the project: whole
// arrays, selected rows, row ranges from an open file, the header alone, or into shared memory.
import { closeSync, openSync, readSync } from 'node:fs';
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';

export type DType = 'uint8' | 'int32' | 'float32';
export type TypedArrayOf<D extends DType> = D extends 'uint8' ? Uint8Array : D extends 'int32' ? Int32Array : Float32Array;

export interface NdArray<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: TypedArrayOf<D>;
  /** Contents of the JSON sidecar, when read from the store and one exists. */
  meta?: Record<string, unknown>;
}

const DESCR: Record<DType, string> = { uint8: '|u1', int32: '<i4', float32: '<f4' };
/** Bytes per element of each dtype. */
export const BYTES: Record<DType, number> = { uint8: 1, int32: 4, float32: 4 };
const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The header (magic, version, length, dict) padded so the data starts 64-byte aligned; `length`
 * pads it to exactly that many bytes (a writer that learns the row count last rewrites it in place).
 */
export function npyHeader(dtype: DType, shape: readonly number[], length?: number): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = MAGIC.length + 2 + 2 + dict.length + 1;
  const total = length ?? unpadded + ((64 - (unpadded % 64)) % 64);
  if (total < unpadded || total % 64 !== 0 || total - 10 > 0xffff) throw new RangeError(`npy header of ${total} bytes cannot hold shape [${shape}]`);
  dict += ' '.repeat(total - unpadded) + '\n';
  const header = Buffer.alloc(MAGIC.length + 4 + dict.length);
  MAGIC.copy(header, 0);
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(dict.length, 8);
  header.write(dict, 10, 'latin1');
  return header;
}

export function allocate<D extends DType>(dtype: D, length: number): TypedArrayOf<D> {
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(length) as TypedArrayOf<D>;
    case 'int32':
      return new Int32Array(length) as TypedArrayOf<D>;
    default:
      return new Float32Array(length) as TypedArrayOf<D>;
  }
}

/** Bytes from the start of the file to the end of the header (magic, version, length, dict), from its first 12 bytes. */
function headerEnd(prefix: Buffer, where: string): number {
  if (prefix.length < 10 || !prefix.subarray(0, 6).equals(MAGIC)) throw new Error(`${where}: not a .npy file`);
  // Version 1.0 has a 2-byte header length (so under 64 KiB), 2.0 and 3.0 a 4-byte one.
  if (prefix[6] === 1) return 10 + prefix.readUInt16LE(8);
  if (prefix.length < 12) throw new Error(`${where}: not a .npy file`);
  return 12 + prefix.readUInt32LE(8);
}

export interface NpyHeader {
  dtype: DType;
  shape: number[];
  /** Where the data starts. */
  offset: number;
}

export function parseNpyHeader(buf: Buffer, where = 'npy'): NpyHeader {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${where}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const dict = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(dict)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(dict)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(dict)?.[1];
  const dtype = (Object.keys(DESCR) as DType[]).find((d) => DESCR[d] === descr);
  if (!dtype) throw new Error(`${where}: unsupported dtype ${descr ?? '?'}`);
  if (fortran !== 'False') throw new Error(`${where}: Fortran-order arrays are not supported`);
  if (shapeText === undefined) throw new Error(`${where}: header has no shape`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  return { dtype, shape, offset: start + headerLen };
}

export function encodeNpy(array: NdArray): Buffer {
  const expected = elementCount(array.shape);
  if (array.data.length !== expected) {
    throw new Error(`npy: shape [${array.shape}] needs ${expected} elements, got ${array.data.length}`);
  }
  const header = npyHeader(array.dtype, array.shape);
  const body = Buffer.from(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  return Buffer.concat([header, body]);
}

export function decodeNpy(buf: Buffer, where = 'npy'): NdArray {
  const { dtype, shape, offset } = parseNpyHeader(buf, where);
  const n = elementCount(shape);
  if (buf.length - offset < n * BYTES[dtype]) throw new Error(`${where}: truncated data`);
  // Copy into a fresh, aligned buffer: typed arrays need element alignment.
  const data = allocate(dtype, n);
  Buffer.from(data.buffer).set(buf.subarray(offset, offset + n * BYTES[dtype]));
  return { dtype, shape, data };
}

export async function writeNpy(path: string, array: NdArray): Promise<void> {
  await writeFile(path, encodeNpy(array));
}

export async function readNpy(path: string): Promise<NdArray> {
  return decodeNpy(await readFile(path), path);
}

/** Streams a large array to disk chunk by chunk, checking the element count at the end. */
export async function createNpyWriter(path: string, dtype: DType, shape: readonly number[]) {
  const handle = await open(path, 'w');
  await handle.write(npyHeader(dtype, shape));
  const expected = elementCount(shape) * BYTES[dtype];
  let written = 0;
  return {
    async write(chunk: ArrayBufferView): Promise<void> {
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      written += bytes.length;
      if (written > expected) throw new Error(`npy ${path}: more data than shape [${shape}] holds`);
      await handle.write(bytes);
    },
    async close(): Promise<void> {
      await handle.close();
      if (written !== expected) throw new Error(`npy ${path}: wrote ${written} bytes, shape [${shape}] needs ${expected}`);
    },
  };
}

/**
 * Reads selected rows (indices along the first axis) of a .npy file without loading the rest:
 * e.g. a handful of test images out of 10,000. Returns one array per index, in the given order.
 */
export async function readNpyRows(path: string, rows: readonly number[]): Promise<{ dtype: DType; shape: number[]; rows: NdArray[] }> {
  const handle = await open(path, 'r');
  try {
    const { dtype, shape, offset } = await readNpyHeader(handle, path);
    const count = shape[0] ?? 0;
    const rowShape = shape.slice(1);
    const rowElements = elementCount(rowShape);
    const rowBytes = rowElements * BYTES[dtype];
    const out: NdArray[] = [];
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= count) throw new Error(`${path}: row ${r} out of range (${count} rows)`);
      const data = allocate(dtype, rowElements);
      const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const { bytesRead: got } = await handle.read(view, 0, rowBytes, offset + r * rowBytes);
      if (got !== rowBytes) throw new Error(`${path}: truncated data at row ${r}`);
      out.push({ dtype, shape: rowShape, data });
    }
    return { dtype, shape, rows: out };
  } finally {
    await handle.close();
  }
}

/** A header longer than this is a damaged length field, not an array description. */
const MAX_HEADER_BYTES = 1 << 20;

/** Reads and parses the header of an open .npy file: exactly as many bytes as its length field says. */
export async function readNpyHeader(handle: FileHandle, path: string): Promise<NpyHeader> {
  const prefix = Buffer.alloc(12);
  const { bytesRead } = await handle.read(prefix, 0, prefix.length, 0);
  const end = headerEnd(prefix.subarray(0, bytesRead), path);
  if (end > MAX_HEADER_BYTES) throw new Error(`${path}: header of ${end} bytes (more than ${MAX_HEADER_BYTES}): not a .npy file`);
  const head = Buffer.alloc(end);
  await readFully(handle, head, 0, path, 'truncated header');
  return parseNpyHeader(head, path);
}

/** Dtype and shape of a .npy file, without reading its data. */
export async function npyInfo(path: string): Promise<{ dtype: DType; shape: number[] }> {
  const handle = await open(path, 'r');
  try {
    const { dtype, shape } = await readNpyHeader(handle, path);
    return { dtype, shape };
  } finally {
    await handle.close();
  }
}

async function readFully(handle: FileHandle, target: Uint8Array, position: number, path: string, what = 'truncated data'): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) throw new Error(`${path}: ${what}`);
    done += bytesRead;
  }
}

/** An open .npy file read piecewise: rows on demand, or whole into one aligned allocation (readNpy holds the file bytes and a copy at once: twice the memory). */
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

export async function openNpy<D extends DType>(path: string, dtype: D): Promise<NpyFile<D>> {
  const handle = await open(path, 'r');
  try {
    const header = await readNpyHeader(handle, path);
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

export interface SharedNpy {
  dtype: DType;
  shape: number[];
  /** Exactly the array's data (no header). */
  buffer: SharedArrayBuffer;
}

const SHARED_READ_BLOCK = 16 * 1024 * 1024;

/** Reads a .npy file straight into a SharedArrayBuffer: the data is in memory once, and every worker thread sees it without a copy. */
export async function readNpyShared(path: string): Promise<SharedNpy> {
  const handle = await open(path, 'r');
  try {
    const { dtype, shape, offset } = await readNpyHeader(handle, path);
    const bytes = elementCount(shape) * BYTES[dtype];
    const buffer = new SharedArrayBuffer(bytes);
    const view = new Uint8Array(buffer);
    for (let done = 0; done < bytes;) {
      const { bytesRead } = await handle.read(view, done, Math.min(SHARED_READ_BLOCK, bytes - done), offset + done);
      if (bytesRead === 0) throw new Error(`${path}: truncated data (${done} of ${bytes} bytes)`);
      done += bytesRead;
    }
    return { dtype, shape, buffer };
  } finally {
    await handle.close();
  }
}

/** A .npy file read row by row with positioned reads, synchronously (a training batch from a large uint8 file); close() is idempotent. */
export interface NpyRowFile {
  path: string;
  dtype: DType;
  shape: number[];
  rowBytes: number;
  /** Copies row `row` into `out` at byte `at`. */
  readRowInto(row: number, out: Uint8Array, at?: number): void;
  close(): void;
}

export function openNpyRows(path: string): NpyRowFile {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    const { dtype, shape, offset } = parseNpyHeader(head.subarray(0, n), path);
    if (shape.length === 0) throw new Error(`${path}: expected at least one dimension`);
    const rowBytes = elementCount(shape.slice(1)) * BYTES[dtype];
    const rows = shape[0]!;
    let closed = false;
    return {
      path,
      dtype,
      shape,
      rowBytes,
      readRowInto(row, out, at = 0) {
        if (!Number.isInteger(row) || row < 0 || row >= rows) throw new RangeError(`${path}: row ${row} outside [0, ${rows})`);
        for (let done = 0; done < rowBytes;) {
          const got = readSync(fd, out, at + done, rowBytes - done, offset + row * rowBytes + done);
          if (got === 0) throw new Error(`${path}: truncated data at row ${row}`);
          done += got;
        }
      },
      close() {
        if (closed) return;
        closed = true;
        closeSync(fd);
      },
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
