// The message between the decode stage and its Piscina worker (workers/decode.ts): a chunk of
// sources to decode straight into a shared pixel buffer, one row per source. A source is a file, or
// an entry of a pack read by offset (source-tree.ts).
import type { ResizeMethod } from './convert.js';
import type { TargetShape } from './raw-image.js';
import type { SourceLocation } from './source-tree.js';

export interface DecodeTask {
  /** Source i goes to row firstRow + i. */
  sources: SourceLocation[];
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
  /** The file, or the pack entry's path. */
  file: string;
  reason: string;
  /** Refused for its size (the pixel limit), not for being corrupt. */
  tooLarge: boolean;
}

export interface DecodeTaskResult {
  failures: DecodeFailure[];
  /** A pack entry that fails its checksum: damage in the store, never skipped (the worker stops there). */
  damaged?: string;
}
