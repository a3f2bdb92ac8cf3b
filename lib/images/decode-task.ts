// The message between the decode stage and its Piscina worker (workers/decode.ts): a chunk of
// files to decode straight into a shared pixel buffer, one row per file.
import type { ResizeMethod } from './convert.js';
import type { TargetShape } from './raw-image.js';

export interface DecodeTask {
  /** Absolute paths; file i goes to row firstRow + i. */
  files: string[];
  firstRow: number;
  /** rows × H × W × C bytes, shared by every task of a split. */
  pixels: SharedArrayBuffer;
  shape: TargetShape;
  resize: ResizeMethod;
  /** When false the worker stops at the first failure (the stage will fail anyway). */
  skipCorrupt: boolean;
  /** Images over this many pixels (or files too large to hold fewer) are refused from their header. */
  maxPixels: number;
}

export interface DecodeFailure {
  row: number;
  file: string;
  reason: string;
  /** Refused for its size (the pixel limit), not for being corrupt. */
  tooLarge: boolean;
}

export interface DecodeTaskResult {
  failures: DecodeFailure[];
}
