// A local HTTP file server for fetch tests: ETag / Last-Modified / Content-Length, single byte
// ranges with If-Range, HEAD, and faults on demand (drop the connection after N bytes, stall
// after N bytes, answer with an error status). It records every request and the bytes it sent.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';

export interface ServedRequest {
  method: string;
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
  /** Body bytes written for this request. */
  bytesSent: number;
}

export interface FileServerOptions {
  /** Honour Range requests (default true); false answers every GET with the whole file. */
  ranges?: boolean;
  /** Send ETag and Last-Modified (default true). */
  validators?: boolean;
  /** Answer HEAD (default true); false answers it with 405 as some servers do. */
  head?: boolean;
}

type Fault = { kind: 'drop' | 'stall'; after: number; reached: () => void } | { kind: 'status'; status: number };

export class TestFileServer {
  readonly requests: ServedRequest[] = [];
  private readonly files = new Map<string, string>();
  private readonly redirects = new Map<string, string>();
  private readonly faults: Fault[] = [];
  private readonly stalled = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    private readonly options: Required<FileServerOptions>,
  ) {}

  static async start(options: FileServerOptions = {}): Promise<TestFileServer> {
    const server = createServer();
    const instance = new TestFileServer(server, { ranges: true, validators: true, head: true, ...options });
    server.on('request', (req, res) => {
      instance.handle(req, res).catch((err: unknown) => {
        res.destroy(err instanceof Error ? err : new Error(String(err)));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return instance;
  }

  /** Serves `file` at `urlPath` (e.g. `/data/x.tar.gz`); returns its URL. Re-reads the file on every request. */
  serve(urlPath: string, file: string): string {
    this.files.set(urlPath, file);
    return this.url(urlPath);
  }

  /** Answers `fromPath` with a 302 to `toPath`; returns the URL of `fromPath`. */
  redirect(fromPath: string, toPath: string): string {
    this.redirects.set(fromPath, toPath);
    return this.url(fromPath);
  }

  url(urlPath: string): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}${urlPath}`;
  }

  /** The next GET with a body sends `bytes` body bytes, then the connection is destroyed. */
  dropNextAfter(bytes: number): Promise<void> {
    return new Promise((reached) => this.faults.push({ kind: 'drop', after: bytes, reached }));
  }

  /** The next GET sends `bytes` body bytes, then sends nothing more (until the client gives up); resolves then. */
  stallNextAfter(bytes: number): Promise<void> {
    return new Promise((reached) => this.faults.push({ kind: 'stall', after: bytes, reached }));
  }

  /** The next `times` GET requests are answered with `status`. */
  failNext(status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.faults.push({ kind: 'status', status });
  }

  get bytesSent(): number {
    return this.requests.reduce((sum, r) => sum + r.bytesSent, 0);
  }

  requestsFor(method: string): ServedRequest[] {
    return this.requests.filter((r) => r.method === method);
  }

  reset(): void {
    this.requests.length = 0;
    this.faults.length = 0;
  }

  async close(): Promise<void> {
    for (const res of this.stalled) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const record: ServedRequest = {
      method,
      path,
      range: req.headers.range ?? null,
      ifRange: (req.headers['if-range'] as string | undefined) ?? null,
      status: 0,
      bytesSent: 0,
    };
    this.requests.push(record);
    const respond = (status: number, headers: Record<string, string | number> = {}): void => {
      record.status = status;
      res.writeHead(status, headers);
    };

    const target = this.redirects.get(path);
    if (target) return void (respond(302, { location: target }), res.end());
    const file = this.files.get(path);
    if (!file) return void (respond(404), res.end());
    if (method !== 'GET' && (method !== 'HEAD' || !this.options.head)) return void (respond(405, { allow: 'GET, HEAD' }), res.end());

    if (method === 'GET' && this.faults[0]?.kind === 'status') {
      const fault = this.faults.shift() as { status: number };
      return void (respond(fault.status), res.end());
    }

    const info = await stat(file, { bigint: true });
    const size = Number(info.size);
    const etag = `"${info.ino.toString(16)}-${info.size.toString(16)}-${info.mtimeNs.toString(16)}"`;
    const lastModified = new Date(Number(info.mtimeMs)).toUTCString();
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': this.options.ranges ? 'bytes' : 'none' };
    if (this.options.validators) Object.assign(headers, { etag, 'last-modified': lastModified });

    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = this.options.ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null;
    const ifRange = record.ifRange;
    const rangeStillValid = ifRange === null || (this.options.validators && (ifRange === etag || ifRange === lastModified));
    if (range && rangeStillValid) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size || start > end) return void (respond(416, { 'content-range': `bytes */${size}` }), res.end());
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['content-length'] = end - start + 1;
    respond(status, headers);
    if (method === 'HEAD' || size === 0) return void res.end();

    const fault = this.faults[0]?.kind === 'drop' || this.faults[0]?.kind === 'stall' ? (this.faults.shift() as Extract<Fault, { after: number }>) : null;
    await this.sendBody(res, record, file, start, end, fault);
  }

  private async sendBody(
    res: ServerResponse,
    record: ServedRequest,
    file: string,
    start: number,
    end: number,
    fault: Extract<Fault, { after: number }> | null,
  ): Promise<void> {
    const body = createReadStream(file, { start, end, highWaterMark: 64 * 1024 });
    const closed = once(res, 'close').then(() => 'closed' as const);
    res.on('error', () => {}); // a client that hangs up is normal here
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (res.destroyed) return;
        const room = fault ? fault.after - record.bytesSent : Infinity;
        const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
        record.bytesSent += piece.length;
        const flushed = new Promise<void>((resolve) => res.write(piece, () => resolve()));
        if (fault && record.bytesSent >= fault.after) {
          await Promise.race([flushed, closed]);
          if (fault.kind === 'drop') res.socket?.destroy();
          else this.stalled.add(res);
          fault.reached();
          return;
        }
        if (res.writableNeedDrain && (await Promise.race([once(res, 'drain').then(() => 'drain' as const), closed])) === 'closed') return;
      }
      res.end();
    } finally {
      body.destroy();
    }
  }
}
