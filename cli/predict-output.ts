// Where predict's rows go: stdout (a reader that goes away, as `| head` does, stops the work
// quietly), or --out FILE, written beside FILE under a temporary name and renamed when complete, so
// FILE is either the previous file or the whole new one, never a half-written one.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { UsageError } from '../engine/errors.js';

/** The abort reason when stdout's reader has gone away. */
export const OUTPUT_CLOSED = Symbol('output closed');

export interface OutputSink {
  /** Buffered; resolves once the text is accepted (flushes every 64 KiB). */
  write(text: string): Promise<void>;
  /** Flushes; for a file, renames it into place. */
  commit(): Promise<void>;
  /** For a file: removes the temporary file (no-op once committed). */
  discard(): Promise<void>;
}

const FLUSH_BYTES = 64 << 10;

export async function outputSink(out: string | undefined, stop: AbortController): Promise<OutputSink> {
  return out === undefined ? stdoutSink(stop) : fileSink(out);
}

function stdoutSink(stop: AbortController): OutputSink {
  let pending = '';
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') stop.abort(OUTPUT_CLOSED);
  };
  process.stdout.on('error', onError);
  const flush = () =>
    new Promise<void>((resolve, reject) => {
      const text = pending;
      pending = '';
      if (stop.signal.reason === OUTPUT_CLOSED || text === '') return resolve();
      process.stdout.write(text, (err) => {
        if (!err) return resolve();
        if ((err as NodeJS.ErrnoException).code !== 'EPIPE') return reject(err);
        stop.abort(OUTPUT_CLOSED);
        resolve();
      });
    });
  return {
    async write(text) {
      pending += text;
      if (pending.length >= FLUSH_BYTES) await flush();
    },
    async commit() {
      await flush();
      process.stdout.off('error', onError);
    },
    async discard() {
      pending = '';
    },
  };
}

async function fileSink(out: string): Promise<OutputSink> {
  const temp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `no such directory ${dirname(out)}` : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new UsageError(`--out ${out}: cannot write there (${why})`);
  }
  let pending = '';
  let done = false;
  const flush = async () => {
    const text = pending;
    pending = '';
    if (text) await handle!.write(text);
  };
  return {
    async write(text) {
      pending += text;
      if (pending.length >= FLUSH_BYTES) await flush();
    },
    async commit() {
      await flush();
      await handle!.sync();
      await handle!.close();
      handle = undefined;
      await rename(temp, out);
      done = true;
    },
    async discard() {
      if (done) return;
      await handle?.close().catch(() => undefined);
      handle = undefined;
      await rm(temp, { force: true });
    },
  };
}
