// JPEG decoding with libjpeg-turbo compiled to WebAssembly (@cornerstonejs/codec-libjpeg-turbo-8bit).
// Why this decoder: measured on the 32×32 CIFAR JPEGs (bench/decode.ts) it decodes ~29,000
// images/s per thread against ~7,100 for jpeg-js and ~1,400 for sharp, and its pixels are
// bit-identical to libjpeg-turbo's djpeg/PIL defaults (accurate integer IDCT, "fancy" chroma
// upsampling). One decoder instance is reused for every image: no per-call allocation.
import { createRequire } from 'node:module';
import { withoutTrailingPadding } from './jpeg-padding.js';
import type { RawImage } from './raw-image.js';
import { JpegDecodeError } from '../errors.js';

interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}

/** The embind class the wasm module exports (views returned point into the wasm heap). */
interface WasmJpegDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): FrameInfo;
  delete(): void;
}

interface WasmJpegModule {
  JPEGDecoder: new () => WasmJpegDecoder;
}

type ModuleFactory = () => Promise<WasmJpegModule>;

const require = createRequire(import.meta.url);
let modulePromise: Promise<WasmJpegModule> | undefined;

function loadModule(): Promise<WasmJpegModule> {
  modulePromise ??= (require('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs') as ModuleFactory)();
  return modulePromise;
}

/**
 * Starts loading and compiling the wasm module without waiting for it: a worker calls this when
 * it starts, so the compile overlaps the main thread's directory scan instead of the first task.
 */
export function preloadJpegDecoder(): void {
  loadModule().catch(() => {
    // Reported by createJpegDecoder, where a caller can handle it.
    modulePromise = undefined;
  });
}

export interface JpegDecoder {
  /**
   * Decodes one JPEG. The returned pixels are a view into the decoder's memory, valid only until
   * the next call: copy them out before decoding again.
   */
  decode(bytes: Uint8Array): RawImage;
  /** Frees the wasm-side decoder. */
  dispose(): void;
}

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

export async function createJpegDecoder(): Promise<JpegDecoder> {
  const wasm = await loadModule();
  let decoder = new wasm.JPEGDecoder();
  /** Decodes or throws; after a failure the decoder is replaced, so no half-finished state leaks. */
  const decodeOnce = (bytes: Uint8Array): FrameInfo => {
    try {
      decoder.getEncodedBuffer(bytes.length).set(bytes);
      decoder.decode();
      return decoder.getFrameInfo();
    } catch (err) {
      // libjpeg errors and warnings (truncated data, bad markers...) surface as bare C++ exception
      // pointers: the TurboJPEG API fails on a warning too.
      decoder.delete();
      decoder = new wasm.JPEGDecoder();
      throw new JpegDecodeError(err instanceof Error ? err.message : 'corrupt or unsupported JPEG data');
    }
  };
  return {
    decode(bytes) {
      let info: FrameInfo;
      try {
        info = decodeOnce(bytes);
      } catch (refused) {
        // Rare (about 3 in 1,000 jpeg-js files): padding that wasm32 libjpeg-turbo warns about
        // but native builds read silently. Only a candidate that decodes cleanly is taken, and
        // such a candidate has the original's pixels (see jpeg-padding.ts).
        info = decodeWithoutPadding(bytes, decodeOnce, refused);
      }
      const channels = info.componentCount;
      if (channels !== 1 && channels !== 3) {
        throw new JpegDecodeError(`unsupported JPEG with ${channels} colour components (CMYK?)`);
      }
      if (info.bitsPerSample !== 8) throw new JpegDecodeError(`unsupported ${info.bitsPerSample}-bit JPEG`);
      const data = decoder.getDecodedBuffer();
      return { width: info.width, height: info.height, channels, data };
    },
    dispose() {
      decoder.delete();
    },
  };
}

function decodeWithoutPadding(bytes: Uint8Array, decodeOnce: (b: Uint8Array) => FrameInfo, refused: unknown): FrameInfo {
  for (const candidate of withoutTrailingPadding(bytes)) {
    try {
      return decodeOnce(candidate);
    } catch {
      // Next candidate; the original refusal is what the caller hears if none decodes.
    }
  }
  throw refused;
}
