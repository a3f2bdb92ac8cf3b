// The HTTP remote: plain GET / PUT / HEAD on <base URL>/<path>, as served by nginx with WebDAV
// (`dav_methods PUT`; `create_full_put_path on`), a Bazel-style HTTP cache, or any server that
// stores what is PUT. Credentials come from the environment only (see credentialsFromEnv).
import { createReadStream } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { RemoteError } from '../errors.js';
import { failureOfStatus, type RemoteBackend } from './backend.js';

export interface HttpRemoteOptions {
  /** Base URL; object paths are appended to it. */
  url: URL;
  /** Milliseconds without any data before a request is abandoned. */
  timeoutMs: number;
  /** Value of the Authorization header, if any. */
  authorization?: string;
}

/** Environment variables holding HTTP remote credentials (never in pipeline.yaml or cache keys). */
export const HTTP_CREDENTIAL_ENV = {
  token: 'PIPELINE_REMOTE_TOKEN',
  user: 'PIPELINE_REMOTE_USER',
  password: 'PIPELINE_REMOTE_PASSWORD',
} as const;

/** Authorization header from PIPELINE_REMOTE_TOKEN (Bearer) or PIPELINE_REMOTE_USER/PASSWORD (Basic). */
export function authorizationFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const token = env[HTTP_CREDENTIAL_ENV.token];
  if (token) return `Bearer ${token}`;
  const user = env[HTTP_CREDENTIAL_ENV.user];
  if (user) return `Basic ${Buffer.from(`${user}:${env[HTTP_CREDENTIAL_ENV.password] ?? ''}`).toString('base64')}`;
  return undefined;
}

export class HttpRemote implements RemoteBackend {
  readonly url: string;
  private readonly base: URL;

  constructor(private readonly options: HttpRemoteOptions) {
    this.base = new URL(options.url.href.endsWith('/') ? options.url.href : options.url.href + '/');
    this.url = this.base.href;
  }

  async stat(path: string, signal?: AbortSignal): Promise<{ size: number } | null> {
    const res = await this.send('HEAD', path, undefined, signal);
    res.resume();
    if (res.statusCode === 404) return null;
    this.expectOk(res, 'HEAD', path);
    return { size: Number(res.headers['content-length'] ?? -1) };
  }

  async get(path: string, signal?: AbortSignal): Promise<Readable | null> {
    const res = await this.send('GET', path, undefined, signal);
    if (res.statusCode === 404) {
      res.resume();
      return null;
    }
    if (!ok(res.statusCode)) res.resume();
    this.expectOk(res, 'GET', path);
    return res;
  }

  async getFrom(path: string, from: number, signal?: AbortSignal): Promise<{ body: Readable; from: number } | null> {
    const res = await this.send('GET', path, undefined, signal, { range: `bytes=${from}-` });
    if (res.statusCode === 404) {
      res.resume();
      return null;
    }
    if (res.statusCode === 416) {
      // The range starts past the end: what we hold is not a prefix of this object. Start over.
      res.resume();
      const body = await this.get(path, signal);
      return body && { body, from: 0 };
    }
    if (!ok(res.statusCode)) res.resume();
    this.expectOk(res, 'GET', path);
    return { body: res, from: res.statusCode === 206 ? from : 0 };
  }

  async putFile(path: string, file: string, size: number, signal?: AbortSignal): Promise<void> {
    const res = await this.send('PUT', path, { body: () => createReadStream(file), size }, signal);
    res.resume();
    this.expectOk(res, 'PUT', path);
  }

  async putBytes(path: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    const res = await this.send('PUT', path, { body: data, size: data.length }, signal);
    res.resume();
    this.expectOk(res, 'PUT', path);
  }

  private expectOk(res: IncomingMessage, method: string, path: string): void {
    if (ok(res.statusCode)) return;
    const status = res.statusCode ?? 0;
    throw new RemoteError(failureOfStatus(status), `${method} ${new URL(path, this.base).href}: HTTP ${status} ${res.statusMessage ?? ''}`.trim());
  }

  private send(
    method: string,
    path: string,
    upload: { body: Buffer | (() => Readable); size: number } | undefined,
    signal?: AbortSignal,
    extraHeaders: Record<string, string> = {},
  ): Promise<IncomingMessage> {
    const target = new URL(path, this.base);
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string | number> = { ...extraHeaders };
    if (this.options.authorization) headers.authorization = this.options.authorization;
    if (upload) headers['content-length'] = upload.size;
    return new Promise((resolve, reject) => {
      const req = request(target, { method, headers, signal, timeout: this.options.timeoutMs }, (res) => {
        // The same idle timeout guards the response body (a server that stalls mid-object). On the
        // response, not its socket: a kept-alive socket would collect one listener per request.
        res.setTimeout(this.options.timeoutMs, () =>
          res.destroy(new RemoteError('timeout', `${method} ${target.href}: no data for ${this.options.timeoutMs / 1000}s`)),
        );
        resolve(res);
      });
      req.on('timeout', () => req.destroy(new RemoteError('timeout', `${method} ${target.href}: no answer for ${this.options.timeoutMs / 1000}s`)));
      req.on('error', (err) => reject(asRemoteError(err, method, target, signal)));
      if (!upload) req.end();
      else if (Buffer.isBuffer(upload.body)) req.end(upload.body);
      else {
        const body = upload.body();
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }
}

const ok = (status: number | undefined) => status !== undefined && status >= 200 && status < 300;

function asRemoteError(err: unknown, method: string, target: URL, signal?: AbortSignal): unknown {
  if (err instanceof RemoteError || signal?.aborted) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const message = (err as Error).message;
  const unreachable = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE'].includes(code);
  return new RemoteError(unreachable ? 'unreachable' : 'protocol', `${method} ${target.href}: ${message}`, { cause: err });
}
