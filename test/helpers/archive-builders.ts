// Builds tar and zip archives byte by byte, including the malicious ones real archivers refuse to
// write (`../` paths, absolute paths, links pointing outside, zip bombs whose central directory
// lies about the sizes), for the fetch extraction tests.
import { once } from 'node:events';
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import type { Transform } from 'node:stream';
import { gzipSync, crc32, createDeflateRaw, createGzip, deflateRawSync } from 'node:zlib';

export interface TarEntrySpec {
  path: string;
  /** `sparse`: an old-GNU sparse file (type S); `pax`: a PAX extended header (type x) whose body is its records. */
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'sparse' | 'pax';
  body?: string | Buffer;
  /** Target of a symlink or hard link. */
  linkpath?: string;
}

const TYPE_FLAG = { file: '0', hardlink: '1', symlink: '2', dir: '5', sparse: 'S', pax: 'x' } as const;

/** PAX extended header records (`len key=value\n`, len counting itself). */
export function paxRecords(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([key, value]) => {
      const body = ` ${key}=${value}\n`;
      let length = body.length + 1;
      while (String(length).length + body.length !== length) length++;
      return `${length}${body}`;
    })
    .join('');
}

/** The 512-byte ustar header of an entry whose data is `size` bytes. */
export function tarHeader(entry: TarEntrySpec, size: number): Buffer {
  const type = entry.type ?? 'file';
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => {
    if (Buffer.byteLength(value) > length) throw new Error(`tar field too long: ${value}`);
    header.write(value, offset, length, 'utf8');
  };
  const octal = (offset: number, length: number, value: number): void => field(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
  field(0, 100, entry.path);
  octal(100, 8, type === 'dir' ? 0o755 : 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000);
  field(148, 8, ' '.repeat(8));
  field(156, 1, TYPE_FLAG[type]);
  field(157, 100, entry.linkpath ?? '');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return header;
}

/** An uncompressed ustar archive (paths and link targets up to 100 bytes). */
export function tarBytes(entries: TarEntrySpec[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const body = type === 'file' || type === 'sparse' || type === 'pax' ? Buffer.from(entry.body ?? '') : Buffer.alloc(0);
    blocks.push(tarHeader(entry, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export async function writeTar(path: string, entries: TarEntrySpec[], options: { gzip?: boolean } = {}): Promise<string> {
  const bytes = tarBytes(entries);
  await writeFile(path, options.gzip ? gzipSync(bytes) : bytes);
  return path;
}

export interface ZipEntrySpec {
  path: string;
  body?: string | Buffer;
  /** Makes the entry a Unix symlink to this target. */
  symlinkTo?: string;
  /** Deflate the body (method 8) instead of storing it. */
  deflate?: boolean;
  /** Lies written into both headers instead of the true uncompressed size and CRC-32. */
  declare?: { size?: number; crc?: number };
}

/** A zip with Unix attributes, names flagged UTF-8; entries stored unless `deflate`. */
export function zipBytes(entries: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.path, 'utf8');
    const isDir = entry.path.endsWith('/');
    const content = Buffer.from(entry.symlinkTo ?? entry.body ?? '');
    const data = entry.deflate ? deflateRawSync(content) : content;
    const method = entry.deflate ? 8 : 0;
    const size = entry.declare?.size ?? content.length;
    const mode = entry.symlinkTo !== undefined ? 0o120777 : isDir ? 0o040755 : 0o100644;
    const crc = entry.declare?.crc ?? crc32(content);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

export async function writeZip(path: string, entries: ZipEntrySpec[]): Promise<string> {
  await writeFile(path, zipBytes(entries));
  return path;
}

/** Writes `chunks` through a zlib stream into an open file, with backpressure; returns bytes written. */
async function deflateInto(file: FileHandle, stream: Transform, chunks: () => Iterable<Buffer>): Promise<number> {
  let written = 0;
  const writing = (async () => {
    for await (const out of stream as AsyncIterable<Buffer>) {
      await file.write(out);
      written += out.length;
    }
  })();
  for (const chunk of chunks()) if (!stream.write(chunk)) await once(stream, 'drain');
  stream.end();
  await writing;
  return written;
}

function* zeros(size: number): Generator<Buffer> {
  const block = Buffer.alloc(1 << 20);
  for (let left = size; left > 0; left -= block.length) yield left >= block.length ? block : block.subarray(0, left);
}

/**
 * The zip bomb, written with a MiB of memory: one deflated entry of `size` zero bytes;
 * both headers declare `declaredSize` (default: the truth).
 */
export async function writeZeroZip(path: string, size: number, declaredSize = size): Promise<string> {
  const name = Buffer.from('zeros.bin');
  let crc = 0;
  for (const chunk of zeros(size)) crc = crc32(chunk, crc);
  const local = Buffer.alloc(30);
  const file = await open(path, 'w');
  try {
    await file.write(Buffer.concat([local, name]));
    const compressed = await deflateInto(file, createDeflateRaw({ level: 9 }), () => zeros(size));
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed, 18);
    local.writeUInt32LE(declaredSize, 22);
    local.writeUInt16LE(name.length, 26);
    await file.write(local, 0, local.length, 0);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed, 20);
    central.writeUInt32LE(declaredSize, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(1, 8);
    end.writeUInt16LE(1, 10);
    end.writeUInt32LE(central.length + name.length, 12);
    end.writeUInt32LE(local.length + name.length + compressed, 16);
    await file.write(Buffer.concat([central, name, end]), 0, central.length + name.length + end.length, local.length + name.length + compressed);
  } finally {
    await file.close();
  }
  return path;
}

/** The same bomb as a .tar.gz: one entry of `size` zero bytes, gzipped as it is written. */
export async function writeZeroTarGz(path: string, size: number): Promise<string> {
  const file = await open(path, 'w');
  try {
    await deflateInto(file, createGzip({ level: 9 }), function* () {
      yield tarHeader({ path: 'zeros.bin' }, size);
      yield* zeros(size + ((512 - (size % 512)) % 512) + 1024);
    });
  } finally {
    await file.close();
  }
  return path;
}
