// Every error class lib/ raises. lib/ knows nothing of the engine or its exit codes: the stage kind
// that calls lib code translates these into the engine's errors (engine/errors.ts), which the CLI
// reports — stages/lib-errors.ts for the ones every kind treats alike, the kind itself for the ones
// it words (DatasetError, AugmentPoolError). A plain Error from lib/ is a bug or a broken invariant.

/** Base of lib's errors: `name` is the class name (in stack traces). */
export class LibError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Work stopped through its AbortSignal (Ctrl-C, a stopped run): reported as an interrupt (exit 130). */
export class InterruptedError extends LibError {}

/** A fetch that cannot be done, its message written for the user as it is: a failed download, a checksum mismatch, an unsafe archive entry, a missing local source. */
export class FetchError extends LibError {}

/** A response status that ends an attempt; `retryable` for 408, 429 and 5xx. */
export class HttpStatusError extends LibError {
  readonly status: number;
  readonly retryable: boolean;
  constructor(method: string, url: string, status: number, statusText: string | undefined) {
    super(`${method} ${url}: HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
    this.status = status;
    this.retryable = status === 408 || status === 429 || status >= 500;
  }
}

/** No bytes for `timeoutMs`, while connecting or while reading the body. */
export class IdleTimeoutError extends LibError {
  constructor(url: string, timeoutMs: number) {
    super(`no data from ${url} for ${timeoutMs / 1000} s`);
  }
}

/** A download failure worth another attempt that is not an HTTP status (truncated body, odd Content-Range). */
export class RetryableError extends LibError {}

/** The local disk failed while downloading: retrying the network will not help. */
export class LocalWriteError extends LibError {}

/** Bad or unrecognised input data (a dataset's layout or contents). Stage kinds word it for the user (what and where). */
export class DatasetError extends LibError {}

/** A dataset shard whose bytes are not what its row table says (a flipped bit, a truncated file): found when a row is read. */
export class ShardIntegrityError extends LibError {}

/** A pack index that cannot be read or breaks its format (lib/fetch/pack.ts). */
export class PackError extends LibError {}

/** A pack entry whose bytes are not what the index says (a flipped bit, a truncated pack): found when it is read. */
export class PackIntegrityError extends LibError {}

/** A dataset source that could not be decoded (skipping off): `source` names it, `reason` says why. */
export class SourceDecodeError extends LibError {
  constructor(
    readonly source: string,
    readonly reason: string,
    /** The decoder's kind of failure, when it names one (decode: `too-large`). */
    readonly code?: string,
  ) {
    super(`${source}: ${reason}`);
  }
}

/** JPEG data the decoder rejects. */
export class JpegDecodeError extends LibError {}

/** A file that is not a decodable JPEG or PNG. */
export class ImageDecodeError extends LibError {}

/** An image (or image file) over the configured pixel limit: refused from its header, before any pixel memory is allocated. */
export class ImageTooLargeError extends ImageDecodeError {}

/** Error from an augmentation task or from its `onChunk`, with where it happened. */
export class AugmentPoolError extends LibError {
  constructor(
    message: string,
    readonly copy: number,
    readonly first: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A model directory that cannot be used for prediction: no or an invalid bundle.json, a model that does not fit it. */
export class BundleError extends LibError {}

/** A path given to `predict` that does not exist or cannot be read (not an image that fails to decode: those are skipped). */
export class PredictInputError extends LibError {}
