// md5 + sha256 computed while bytes stream past, and the check of declared checksums.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { FetchError } from '../errors.js';

export interface FileDigests {
  bytes: number;
  md5: string;
  sha256: string;
}

/** Declared checksums (hex, any case), as in the fetch params. */
export interface DeclaredChecksums {
  md5?: string;
  sha256?: string;
}

/** Both digests at once, so a file is read only once whichever checksum was declared. */
export class StreamingDigests {
  private readonly md5: Hash = createHash('md5');
  private readonly sha256: Hash = createHash('sha256');
  bytes = 0;

  update(chunk: Uint8Array): void {
    this.md5.update(chunk);
    this.sha256.update(chunk);
    this.bytes += chunk.length;
  }

  /** Final digests; the hashes cannot be updated afterwards. */
  finish(): FileDigests {
    return { bytes: this.bytes, md5: this.md5.digest('hex'), sha256: this.sha256.digest('hex') };
  }

  /** Feeds the first `end` bytes of a file (all of it when `end` is undefined). */
  async updateFromFile(path: string, options: { end?: number; signal?: AbortSignal; onBytes?: (n: number) => void } = {}): Promise<void> {
    if (options.end === 0) return;
    const stream = createReadStream(path, {
      end: options.end === undefined ? undefined : options.end - 1,
      highWaterMark: 1 << 20,
      signal: options.signal,
    });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      this.update(chunk);
      options.onBytes?.(chunk.length);
    }
  }
}

export async function digestFile(path: string, options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {}): Promise<FileDigests> {
  const digests = new StreamingDigests();
  await digests.updateFromFile(path, options);
  return digests.finish();
}

/** Throws a FetchError naming expected and actual digest when a declared checksum does not match. */
export function verifyChecksums(declared: DeclaredChecksums, actual: FileDigests, what: string): void {
  for (const algorithm of ['sha256', 'md5'] as const) {
    const expected = declared[algorithm]?.toLowerCase();
    if (expected !== undefined && expected !== actual[algorithm]) {
      throw new FetchError(`${algorithm} mismatch for ${what}: expected ${expected}, got ${actual[algorithm]}`);
    }
  }
}
