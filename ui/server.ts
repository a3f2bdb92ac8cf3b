// `pipeline ui`'s HTTP server (node:http): the app's page and assets, a JSON API over the store,
// each run's live events as server-sent events, stored files by manifest, and the actions (promote,
// rollback, cancel). It serves only files it names itself (assets) or that a manifest lists (objects in the
// store, by digest): no request path is ever joined onto a directory.
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { LockError, PipelineError, UiRequestError as HttpError } from '../engine/errors.js';
import type { Session } from '../engine/session.js';
import { stageLogDir } from '../engine/store/stage-logs.js';
import { outcomeOf, UiData } from './data.js';
import { streamRunEvents } from './live.js';
import { Guard, isLoopback } from './security.js';
import { ASSETS, assetFile } from './assets.js';
import { compareCharts } from './charts.js';
import { cancelFromUi, promoteFromUi, rollbackFromUi } from './actions.js';

export interface UiServerOptions {
  session: Session;
  host: string;
  port: number;
  /** Required on every request (PIPELINE_UI_TOKEN); must be set to bind a non-loopback address. */
  token?: string;
}

export interface UiServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.md': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.log': 'text/plain; charset=utf-8',
  '.csv': 'text/plain; charset=utf-8',
};
const typeOf = (name: string) => TYPES[/\.[^./]+$/.exec(name)?.[0]?.toLowerCase() ?? ''] ?? 'application/octet-stream';

/** The app's own pages: scripts and styles from this server only. */
const APP_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/** A stored file (a report): no scripts, framed by the app only. */
const FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox";

export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const data = new UiData(options.session);
  const guard = new Guard(options.token);
  const loopback = isLoopback(options.host);
  const open = new Set<AbortController>();
  const server = createServer((req, res) => {
    const closed = new AbortController();
    open.add(closed);
    res.on('close', () => {
      closed.abort();
      open.delete(closed);
    });
    handle(req, res, closed.signal).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : err instanceof LockError ? 409 : err instanceof PipelineError ? 400 : 500;
      const message = err instanceof Error ? err.message : String(err);
      if (!res.headersSent) send(res, status, { error: message });
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse, closed: AbortSignal): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://ui.invalid');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    // On loopback a foreign page could reach us through a name that resolves to 127.0.0.1 (DNS rebinding): only loopback names.
    if (loopback && !isLoopback((req.headers.host ?? '').replace(/:\d+$/, ''))) throw new HttpError(403, 'unknown Host');
    const auth = guard.authorize(req, url);
    if (auth === 'refused') throw new HttpError(401, 'a token is required (PIPELINE_UI_TOKEN)');
    if (auth === 'query') {
      url.searchParams.delete('token');
      res.writeHead(303, { 'set-cookie': guard.tokenCookie(), location: url.pathname + url.search });
      return void res.end();
    }
    const parts = pathParts(url.pathname);
    if (req.method === 'POST') return action(req, res, parts, closed);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed');
    if (parts.length === 0) return asset(res, 'index.html');
    if (parts[0] === 'assets' && parts.length === 2) return asset(res, parts[1]!);
    if (parts[0] !== 'api') throw new HttpError(404, 'not found');
    const [, what, id, sub, name] = parts;
    if (what === 'session') return send(res, 200, { csrf: guard.csrf, pipeline: options.session.pipeline.file });
    if (what === 'runs' && id === undefined) return send(res, 200, await data.runRows());
    if (what === 'runs' && id !== undefined) {
      const record = await data.record(id);
      if (!record) throw new HttpError(404, `no run ${id}`);
      if (sub === undefined) return send(res, 200, await data.runPage(record));
      if (sub === 'events') return streamRunEvents(data, id, res, closed);
      if (sub === 'logs' && name !== undefined) return log(res, id, name, url.searchParams.has('download'));
    }
    if (what === 'compare') {
      const ids = (url.searchParams.get('runs') ?? '').split(',').filter(Boolean);
      if (ids.length < 2) throw new HttpError(400, 'compare needs two or more runs (?runs=A,B)');
      const records = [];
      for (const i of ids) records.push((await data.record(i)) ?? fail(404, `no run ${i}`));
      const compared = await data.compare(records);
      return send(res, 200, { ...compared, charts: await compareCharts(compared) });
    }
    if (what === 'files' && id !== undefined && parts.length > 3) return storedFile(res, id, parts.slice(3).join('/'));
    if (what === 'models' && id === undefined) return send(res, 200, await data.models());
    if (what === 'schedule') return send(res, 200, await data.schedule());
    throw new HttpError(404, 'not found');
  }

  async function action(req: IncomingMessage, res: ServerResponse, parts: string[], closed: AbortSignal): Promise<void> {
    if (!guard.actionAllowed(req)) throw new HttpError(403, 'refused: missing or wrong CSRF token');
    const body = await readBody(req);
    const path = parts.join('/');
    if (path === 'api/models/promote') {
      const run = typeof body.run === 'string' ? body.run : fail(400, 'promote needs {"run": RUN_ID}');
      const record = (await data.record(run)) ?? fail(404, `no run ${run}`);
      return send(res, 200, await promoteFromUi(options.session, record));
    }
    if (path === 'api/models/rollback') return send(res, 200, await rollbackFromUi(options.session));
    if (parts.length === 4 && parts[0] === 'api' && parts[1] === 'runs' && parts[3] === 'cancel') {
      const record = (await data.record(parts[2]!)) ?? fail(404, `no run ${parts[2]}`);
      // Not running (ended, or killed without a record): the engine's UsageError says which (400).
      const { record: ended, stopped } = await cancelFromUi(options.session, record, closed);
      return send(res, stopped ? 200 : 202, { run: ended.id, outcome: outcomeOf(ended), stopped });
    }
    throw new HttpError(404, 'no such action');
  }

  async function asset(res: ServerResponse, name: string): Promise<void> {
    const file = assetFile(name);
    if (!file) throw new HttpError(404, 'not found');
    res.writeHead(200, { 'content-type': typeOf(name), 'content-security-policy': APP_CSP, 'cache-control': 'no-cache' });
    res.end(await readFile(file));
  }

  /** A kept log of the run: only a name listed in its logs folder. */
  async function log(res: ServerResponse, id: string, name: string, download: boolean): Promise<void> {
    if (!/^[\w.-]+\.log$/.test(name) || name.startsWith('.')) throw new HttpError(404, 'not found');
    const file = join(stageLogDir(data.store.runs.dir, id), name);
    if (!existsSync(file)) throw new HttpError(404, `run ${id} kept no ${name}`);
    res.writeHead(200, {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      ...(download ? { 'content-disposition': `attachment; filename="${id}-${name}"` } : {}),
    });
    createReadStream(file).pipe(res);
  }

  /** A file of a stored result: by manifest key and a path the manifest lists (the object, by digest). */
  async function storedFile(res: ServerResponse, key: string, path: string): Promise<void> {
    const manifest = await data.manifest(key);
    const file = manifest && Object.hasOwn(manifest.files, path) ? manifest.files[path] : undefined;
    if (!file || !/^[0-9a-f]{64}$/.test(file.digest)) throw new HttpError(404, 'not found');
    const object = data.store.objects.path(file.digest);
    if (!existsSync(object)) throw new HttpError(410, `${path} is no longer in the store (gc)`);
    res.writeHead(200, { 'content-type': typeOf(path), 'content-security-policy': FILE_CSP, 'cache-control': 'no-cache' });
    createReadStream(object).pipe(res);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${shownHost}:${address.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of open) c.abort();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The path's components, decoded (a malformed escape is a bad request, not a crash). */
function pathParts(pathname: string): string[] {
  try {
    return pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new HttpError(400, 'malformed path');
  }
}

function fail(status: number, message: string): never {
  throw new HttpError(status, message);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const MAX_BODY = 64 * 1024;

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw new HttpError(415, 'actions take application/json');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // below
  }
  throw new HttpError(400, 'the body is not a JSON object');
}

export { ASSETS };
