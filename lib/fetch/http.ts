// One HTTP(S) request with redirects, an idle timeout and an AbortSignal, plus the cheap HEAD that
// reads a remote's validators (the fetch stage's cache key when no checksum is declared).
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { FetchError, HttpStatusError, IdleTimeoutError } from '../errors.js';

const MAX_REDIRECTS = 10;
const USER_AGENT = 'cifar-pipeline-fetch/1';

export interface RequestOptions {
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body stream (already drained for HEAD). Errors with IdleTimeoutError when idle too long. */
  body: IncomingMessage;
  /** The URL that answered, after redirects. */
  url: string;
}

/** Issues one request, following redirects; resolves once the final response's headers arrive. */
export async function httpRequest(url: string, options: RequestOptions): Promise<HttpResponse> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await requestOnce(current, options);
    const location = res.headers.location;
    if (res.statusCode !== undefined && [301, 302, 303, 307, 308].includes(res.statusCode) && location) {
      res.resume();
      current = new URL(location, current).toString();
      continue;
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body: res, url: current };
  }
  throw new FetchError(`${options.method} ${url}: more than ${MAX_REDIRECTS} redirects`);
}

function requestOnce(url: string, options: RequestOptions): Promise<IncomingMessage> {
  const parsed = new URL(url);
  const client = parsed.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(parsed, {
      method: options.method,
      headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...options.headers },
      signal: options.signal,
      // A fresh connection per request: nothing lingers after a download or a HEAD.
      agent: false,
    });
    // Socket inactivity, both before the headers and while the body streams.
    req.setTimeout(options.timeoutMs, () => req.destroy(new IdleTimeoutError(url, options.timeoutMs)));
    req.once('response', resolve);
    req.once('error', reject);
    req.end();
  });
}

/** The validators that identify a remote file's version. */
export interface RemoteValidators {
  etag: string | null;
  lastModified: string | null;
  contentLength: number | null;
}

export function validatorsOf(headers: IncomingHttpHeaders, contentLength: number | null): RemoteValidators {
  return { etag: headers.etag ?? null, lastModified: headers['last-modified'] ?? null, contentLength };
}

/** `bytes start-end/total` → its parts (`total` null for `*`). */
export function parseContentRange(value: string | undefined): { start: number; end: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

export function contentLengthOf(headers: IncomingHttpHeaders): number | null {
  const value = headers['content-length'];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : null;
}

/**
 * ETag / Last-Modified / Content-Length of a remote file from a HEAD request; servers that refuse
 * HEAD are asked for the first byte instead (the length then comes from Content-Range).
 */
export async function headValidators(url: string, options: { timeoutMs: number; signal: AbortSignal }): Promise<RemoteValidators> {
  const head = await httpRequest(url, { method: 'HEAD', ...options });
  head.body.resume();
  if (head.status >= 200 && head.status < 300) return validatorsOf(head.headers, contentLengthOf(head.headers));
  if (head.status !== 405 && head.status !== 501) throw new HttpStatusError('HEAD', url, head.status, head.body.statusMessage);

  const probe = await httpRequest(url, { method: 'GET', headers: { range: 'bytes=0-0' }, ...options });
  probe.body.destroy();
  if (probe.status === 206) return validatorsOf(probe.headers, parseContentRange(probe.headers['content-range'])?.total ?? null);
  if (probe.status === 200) return validatorsOf(probe.headers, contentLengthOf(probe.headers));
  throw new HttpStatusError('GET', url, probe.status, probe.body.statusMessage);
}
