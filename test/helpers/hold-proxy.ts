// An HTTP reverse proxy in front of a remote (nginx) that can hold a request: the next request
// matching a method and path is kept waiting (not forwarded) until released, and the test learns
// that it arrived. Lets a test catch a process in the middle of a pull or a push, by what it does
// rather than by timing. Every request is recorded (method, path, Authorization header).
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';

export interface ProxiedRequest {
  method: string;
  path: string;
  authorization?: string;
}

interface Hold {
  method: string;
  path: RegExp;
  arrived: () => void;
}

export class HoldingProxy {
  readonly requests: ProxiedRequest[] = [];
  private readonly holds: Hold[] = [];
  private readonly held: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    private readonly origin: URL,
  ) {}

  /** A proxy to `origin` (http://host:port), or, without one, a sink answering 404 to reads and 201 to writes. */
  static async start(origin?: string): Promise<HoldingProxy> {
    const server = createServer();
    const proxy = new HoldingProxy(server, new URL(origin ?? 'http://sink.invalid'));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => proxy.handle(req, res, origin === undefined));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return proxy;
  }

  /** The proxy's URL for `path` (the same path on the origin). */
  url(path: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  /** Holds the next `method` request whose path matches; resolves when it has arrived (and is being held). */
  holdNext(method: string, path: RegExp): Promise<void> {
    return new Promise((arrived) => this.holds.push({ method, path, arrived }));
  }

  /** Forwards the held requests (those whose client is still there). */
  releaseAll(): void {
    this.holds.length = 0;
    for (const go of this.held.splice(0)) go();
  }

  async close(): Promise<void> {
    this.releaseAll();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  private handle(req: IncomingMessage, res: ServerResponse, sink: boolean): void {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.requests.push({ method, path, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    res.on('error', () => {});
    req.on('error', () => {});
    if (sink) {
      req.resume();
      req.on('end', () => {
        res.writeHead(method === 'PUT' ? 201 : 404);
        res.end();
      });
      return;
    }
    const forward = () => {
      const upstream = request(
        { host: this.origin.hostname, port: this.origin.port, method, path: req.url, headers: { ...req.headers, host: this.origin.host } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    const i = this.holds.findIndex((h) => h.method === method && h.path.test(path));
    if (i < 0) return forward();
    const [hold] = this.holds.splice(i, 1);
    this.held.push(forward);
    hold!.arrived();
  }
}
