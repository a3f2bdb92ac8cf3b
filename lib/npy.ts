// NumPy .npy (format version 1.0) reader and writer: the store's tensor format, readable with
// `numpy.load` outside this project. Only little-endian C-order arrays of the dtypes below.
import { open, readFile, writeFile } from 'node:fs/promises';

export type DType = 'uint8' | 'int32' | 'float32';
export type TypedArrayOf<D extends DType> = D extends 'uint8'
  ? Uint8Array
  : D extends 'int32'
    ? Int32Array
    : Float32Array;

export interface NdArray<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: TypedArrayOf<D>;
  /** Contents of the JSON sidecar, when read from the store and one exists. */
  meta?: Record<string, unknown>;
}

const DESCR: Record<DType, string> = { uint8: '|u1', int32: '<i4', float32: '<f4' };
const BYTES: Record<DType, number> = { uint8: 1, int32: 4, float32: 4 };
const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The header (magic, version, length, dict) padded so the data starts 64-byte aligned. */
export function npyHeader(dtype: DType, shape: readonly number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = MAGIC.length + 2 + 2 + dict.length + 1;
  dict += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
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

export function parseNpyHeader(buf: Buffer, where = 'npy'): { dtype: DType; shape: number[]; offset: number } {
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
    const head = Buffer.alloc(65536);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const { dtype, shape, offset } = parseNpyHeader(head.subarray(0, bytesRead), path);
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
