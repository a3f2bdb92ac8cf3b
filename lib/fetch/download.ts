// Streaming HTTP(S) download that survives dropped connections and killed runs: bytes go straight
// to a partial file in a work directory (the stage's resumeDir), md5/sha256 are computed as they
// are written, and a later attempt continues with `Range` + `If-Range`, so a server whose file
// changed in between answers with the whole new file instead of a mismatched tail.
import { constants } from 'node:fs';
import { mkdir, open, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { FetchError, HttpStatusError, InterruptedError, LocalWriteError, RetryableError } from '../errors.js';
import { StreamingDigests, type FileDigests } from './digest.js';
import { contentLengthOf, httpRequest, parseContentRange, validatorsOf, type RemoteValidators } from './http.js';

const PART_FILE = 'download.part';
const STATE_FILE = 'download.json';

export interface DownloadOptions {
  url: string;
  /** Holds the partial file and its state; keep it across runs to resume (e.g. ctx.resumeDir). */
  workDir: string;
  /** Failed attempts allowed in a row without progress; an attempt that stored new bytes resets the count. */
  retries: number;
  /** An attempt fails after this long without data. */
  timeoutMs: number;
  signal: AbortSignal;
  /** First retry delay, doubled per consecutive failure (default 1 s, at most `maxBackoffMs`, default 30 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Accepts (or not) a complete download of the same URL left by an earlier run. */
  reuse?: (previous: DownloadResult) => boolean;
  /** Called when a response starts: its total size (null if unknown) and the bytes already on disk. */
  onStart?: (total: number | null, offset: number) => void;
  /** Bytes on disk so far. */
  onProgress?: (bytes: number) => void;
  log?: (message: string) => void;
}

export interface DownloadResult {
  /** The complete file (inside workDir). */
  path: string;
  url: string;
  digests: FileDigests;
  /** Validators of the response the file came from. */
  validators: RemoteValidators;
  /** Offsets at which the transfer continued with a Range request. */
  resumedAt: number[];
  attempts: number;
  /** True when a complete file from an earlier run was accepted by `reuse`. */
  reused: boolean;
}

/** Persisted beside the partial file: what it is a prefix of. */
interface TransferState {
  url: string;
  validators: RemoteValidators;
  total: number | null;
  complete?: FileDigests;
}

export async function download(options: DownloadOptions): Promise<DownloadResult> {
  await mkdir(options.workDir, { recursive: true });
  const partPath = join(options.workDir, PART_FILE);
  const statePath = join(options.workDir, STATE_FILE);

  let state = await loadState(statePath);
  if (state && state.url !== options.url) state = null;
  if (state?.complete) {
    const previous: DownloadResult = {
      path: partPath,
      url: options.url,
      digests: state.complete,
      validators: state.validators,
      resumedAt: [],
      attempts: 0,
      reused: true,
    };
    if ((await sizeOf(partPath)) === state.complete.bytes && options.reuse?.(previous)) return previous;
    state = null;
  }
  if (!state) await discardDownload(options.workDir);

  // O_RDWR|O_CREAT (not append mode) so writes land at explicit offsets.
  const file = await open(partPath, constants.O_RDWR | constants.O_CREAT);
  try {
    const transfer = new Transfer(options, file, partPath, statePath, state);
    return await transfer.run();
  } finally {
    await file.close();
  }
}

/** Removes a partial or complete download (e.g. after a checksum mismatch, so the next run starts clean). */
export async function discardDownload(workDir: string): Promise<void> {
  await rm(join(workDir, PART_FILE), { force: true });
  await rm(join(workDir, STATE_FILE), { force: true });
}

class Transfer {
  private digests = new StreamingDigests();
  private readonly resumedAt: number[] = [];
  private attempts = 0;

  constructor(
    private readonly o: DownloadOptions,
    private readonly file: FileHandle,
    private readonly partPath: string,
    private readonly statePath: string,
    private state: TransferState | null,
  ) {}

  async run(): Promise<DownloadResult> {
    const { signal } = this.o;
    try {
      // A partial file from a killed run: hash the prefix so digests cover the whole file.
      const onDisk = (await this.file.stat()).size;
      if (onDisk > 0) await this.digests.updateFromFile(this.partPath, { end: onDisk, signal });

      let failures = 0;
      for (;;) {
        if (signal.aborted) throw new InterruptedError('fetch interrupted');
        const before = this.digests.bytes;
        this.attempts++;
        try {
          await this.attempt();
          break;
        } catch (err) {
          if (signal.aborted) throw new InterruptedError('fetch interrupted');
          if (!isRetryable(err)) throw toFetchError(err, this.o.url);
          failures = this.digests.bytes > before ? 0 : failures + 1;
          if (failures > this.o.retries) {
            throw new FetchError(`download ${this.o.url} failed after ${this.attempts} attempt(s): ${messageOf(err)}`, { cause: err });
          }
          const wait = failures === 0 ? 0 : Math.min(this.o.maxBackoffMs ?? 30_000, (this.o.backoffMs ?? 1000) * 2 ** (failures - 1));
          this.o.log?.(`${messageOf(err)}; retrying${wait > 0 ? ` in ${wait / 1000} s` : ''} (${this.digests.bytes} bytes kept)`);
          if (wait > 0) await sleep(wait, undefined, { signal });
        }
      }
    } catch (err) {
      if (signal.aborted && !(err instanceof InterruptedError)) throw new InterruptedError('fetch interrupted');
      throw err;
    }

    const digests = this.digests.finish();
    const state: TransferState = { ...this.state!, complete: digests };
    await saveState(this.statePath, state);
    return {
      path: this.partPath,
      url: this.o.url,
      digests,
      validators: state.validators,
      resumedAt: this.resumedAt,
      attempts: this.attempts,
      reused: false,
    };
  }

  /** One request; resolves when the file is complete, throws otherwise (bytes received are kept). */
  private async attempt(): Promise<void> {
    const { url } = this.o;
    const ifRange = this.digests.bytes > 0 && this.state ? ifRangeValue(this.state.validators) : null;
    // Without a usable validator a prefix cannot be trusted to belong to the current file.
    if (this.digests.bytes > 0 && !ifRange) await this.restart();

    const offset = this.digests.bytes;
    const headers: Record<string, string> = ifRange ? { range: `bytes=${offset}-`, 'if-range': ifRange } : {};
    const res = await httpRequest(url, { method: 'GET', headers, timeoutMs: this.o.timeoutMs, signal: this.o.signal });

    let total: number | null;
    if (res.status === 206 && ifRange) {
      const range = parseContentRange(res.headers['content-range']);
      if (!range || range.start !== offset) {
        res.body.destroy();
        await this.restart();
        throw new RetryableError(`unexpected Content-Range "${res.headers['content-range'] ?? ''}" for a request from byte ${offset}`);
      }
      total = range.total;
      this.resumedAt.push(offset);
      this.o.log?.(`resuming ${url} at byte ${offset}`);
    } else if (res.status === 200) {
      if (offset > 0) {
        this.o.log?.(`${url}: the server sent the whole file (it changed, or ignores Range): starting over`);
        await this.restart();
      }
      total = contentLengthOf(res.headers);
      this.state = { url, validators: validatorsOf(res.headers, total), total };
      await saveState(this.statePath, this.state);
    } else if (res.status === 416 && offset > 0) {
      res.body.resume();
      await this.restart();
      throw new RetryableError(`${url}: HTTP 416 for a request from byte ${offset}`);
    } else {
      res.body.resume();
      throw new HttpStatusError('GET', url, res.status, res.body.statusMessage);
    }

    this.o.onStart?.(total, offset);
    const sink = new HashingFileSink(this.file, this.digests, this.o.onProgress);
    try {
      await pipeline(res.body, sink);
    } finally {
      // pipeline settles on a source error while a write may still be in flight: the next
      // attempt must see the final file size.
      await sink.settled();
    }
    const size = this.digests.bytes;
    if (total !== null && size < total) throw new RetryableError(`connection closed after ${size} of ${total} bytes`);
    if (total !== null && size > total) throw new FetchError(`download ${url}: received ${size} bytes, more than the announced ${total}`);
  }

  private async restart(): Promise<void> {
    await this.file.truncate(0);
    this.digests = new StreamingDigests();
  }
}

/** Writes each chunk at the end of the partial file, then hashes it: digests always match the disk. */
class HashingFileSink extends Writable {
  constructor(
    private readonly file: FileHandle,
    private readonly digests: StreamingDigests,
    private readonly onProgress?: (bytes: number) => void,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  private inFlight: Promise<void> = Promise.resolve();

  /** Resolves when no write is in progress. */
  settled(): Promise<void> {
    return this.inFlight;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.inFlight = this.writeAll(chunk).then(
      () => {
        this.digests.update(chunk);
        this.onProgress?.(this.digests.bytes);
        callback();
      },
      (err: unknown) => callback(new LocalWriteError(`writing the download: ${messageOf(err)}`)),
    );
  }

  private async writeAll(chunk: Buffer): Promise<void> {
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await this.file.write(chunk, done, chunk.length - done, this.digests.bytes + done);
      done += bytesWritten;
    }
  }
}

/** If-Range needs a strong ETag or a Last-Modified date; a weak ETag cannot vouch for bytes. */
function ifRangeValue(v: RemoteValidators): string | null {
  if (v.etag && !v.etag.startsWith('W/')) return v.etag;
  return v.lastModified;
}

function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableError) return true;
  if (err instanceof HttpStatusError) return err.retryable;
  if (err instanceof LocalWriteError || err instanceof FetchError) return false;
  const code = (err as { code?: unknown }).code;
  // A host that does not exist will not appear on retry; other network errors may pass.
  if (code === 'ENOTFOUND' || code === 'ERR_INVALID_URL' || code === 'ERR_INVALID_PROTOCOL') return false;
  return true;
}

function toFetchError(err: unknown, url: string): FetchError {
  if (err instanceof FetchError) return err;
  const message = messageOf(err);
  return new FetchError(message.includes(url) ? message : `download ${url}: ${message}`, { cause: err });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return -1;
  }
}

async function loadState(path: string): Promise<TransferState | null> {
  try {
    const state = JSON.parse(await readFile(path, 'utf8')) as TransferState;
    return typeof state.url === 'string' && state.validators ? state : null;
  } catch {
    return null;
  }
}

async function saveState(path: string, state: TransferState): Promise<void> {
  await writeFile(path, JSON.stringify(state) + '\n');
}
