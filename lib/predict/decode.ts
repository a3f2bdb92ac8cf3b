// Decoding predict's images on worker threads, with the decode stage's own worker (the CLI passes
// its file): the same decoders, channel conversion, resampling and pixel limit as the data the
// model was trained on, so an image gives the pixels decode would have given it. A batch is split
// across the threads; a file that fails is reported with its reason and leaves its row unused.
import type { Piscina } from 'piscina';
import type { DecodeTask, DecodeTaskResult } from '../images/decode-task.js';
import type { ResizeMethod } from '../images/resample.js';
import { imageBytes, type TargetShape } from '../images/raw-image.js';

export interface DecodedBatch {
  /** files.length × H × W × C bytes; row i is file i (meaningless where it failed). */
  pixels: Uint8Array;
  /** Row → why the file could not be used. */
  failures: Map<number, string>;
}

export interface BatchDecoder {
  /** A batch's pixels stay valid until the call after next (the caller decodes one batch ahead), so buffers are reused in turn. */
  decode(files: readonly string[], signal?: AbortSignal): Promise<DecodedBatch>;
  close(): Promise<void>;
}

export interface PoolDecoderOptions {
  /** The decode worker module (workers/decode.js). */
  worker: string;
  threads: number;
  shape: TargetShape;
  resize: ResizeMethod;
  maxPixels: number;
}

export async function poolDecoder(options: PoolDecoderOptions): Promise<BatchDecoder> {
  const { Piscina } = await import('piscina');
  const threads = Math.max(1, options.threads);
  const pool: Piscina = new Piscina({ filename: options.worker, minThreads: threads, maxThreads: threads });
  const rowBytes = imageBytes(options.shape);
  // Two buffers in turn, as decode's stage does: a new buffer per batch stays alive in every worker
  // thread that touched it until that thread collects garbage, which idle threads rarely do.
  const buffers: SharedArrayBuffer[] = [];
  let turn = 0;
  return {
    async decode(files, signal) {
      const k = turn++ % 2;
      if ((buffers[k]?.byteLength ?? -1) < Math.max(1, files.length * rowBytes)) buffers[k] = new SharedArrayBuffer(Math.max(1, files.length * rowBytes));
      const shared = buffers[k]!;
      const per = Math.ceil(files.length / threads);
      const tasks: DecodeTask[] = [];
      for (let first = 0; first < files.length; first += per) {
        tasks.push({
          sources: files.slice(first, first + per).map((file) => ({ file })),
          firstRow: first,
          pixels: shared,
          shape: options.shape,
          resize: options.resize,
          skipCorrupt: true,
          maxPixels: options.maxPixels,
        });
      }
      const results = (await Promise.all(tasks.map((task) => pool.run(task, signal ? { signal } : {})))) as DecodeTaskResult[];
      const failures = new Map<number, string>();
      for (const r of results) for (const f of r.failures) failures.set(f.row, f.tooLarge ? `too large: ${f.reason}` : f.reason);
      return { pixels: new Uint8Array(shared, 0, files.length * rowBytes), failures };
    },
    async close() {
      await pool.destroy();
    },
  };
}
