// What a remote artifact cache must offer: whole-object GET / PUT / HEAD by path. The layout on top
// (objects by content address, manifests by key) is engine/remote/transfer.ts; backends are plain
// object stores (an HTTP server with PUT, e.g. nginx WebDAV; S3 and S3-compatible stores).
import type { Readable } from 'node:stream';
import { RemoteError, type RemoteFailure } from '../errors.js';

export interface RemoteBackend {
  /** The remote as shown to people (never with credentials). */
  readonly url: string;
  /** Size of the object at `path`, or null when there is none. */
  stat(path: string, signal?: AbortSignal): Promise<{ size: number } | null>;
  /** The object's bytes as a stream, or null when there is none. */
  get(path: string, signal?: AbortSignal): Promise<Readable | null>;
  /**
   * The object's bytes from offset `from` on (to resume a download), or null when there is none.
   * `from` in the answer is where the body really starts: 0 when the server ignored the range.
   */
  getFrom?(path: string, from: number, signal?: AbortSignal): Promise<{ body: Readable; from: number } | null>;
  /** Uploads a local file of `size` bytes to `path` (replacing what is there). */
  putFile(path: string, file: string, size: number, signal?: AbortSignal): Promise<void>;
  /** Uploads a small value (manifests). */
  putBytes(path: string, data: Buffer, signal?: AbortSignal): Promise<void>;
  close?(): void;
}

/** Whether the remote as a whole is unusable (further requests in this run would fail the same way). */
export function remoteIsDown(err: unknown): boolean {
  return err instanceof RemoteError && (err.failure === 'unreachable' || err.failure === 'timeout' || err.failure === 'denied');
}

/** `failure` for an HTTP status that is not success and not 404. */
export function failureOfStatus(status: number): RemoteFailure {
  if (status === 401 || status === 403) return 'denied';
  if (status >= 500) return 'server';
  return 'protocol';
}
