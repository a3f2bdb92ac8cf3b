// Real servers for the remote-cache tests, started on free loopback ports with their config and
// data under a temp dir, and stopped after. Without the server binary a suite is skipped with a
// message — unless REQUIRE_SERVERS is set (CI sets it), where a missing server must fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

export function serverAvailable(suite: string, binary: string, hint: string): boolean {
  if (existsSync(binary)) return true;
  if (process.env.REQUIRE_SERVERS) return true; // the suite runs and fails on the missing server
  console.warn(`${suite}: ${binary} not found (${hint}): tests skipped`);
  return false;
}

/** A port that was free a moment ago (the server binding it reports a clash, and we retry). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Resolves once something accepts connections on the port; rejects if `exited` settles first. */
export async function waitForPort(port: number, exited: Promise<unknown>, what: string): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  // Generous: Swift's Python servers take many seconds to start on a busy 2-core machine.
  const giveUp = Date.now() + 180_000;
  for (;;) {
    if (gone) throw new Error(`${what} exited before accepting connections`);
    const connected = await new Promise<boolean>((resolve) => {
      const sock = createConnection({ port, host: '127.0.0.1' });
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (connected) return;
    if (Date.now() > giveUp) throw new Error(`${what} did not accept connections on port ${port}`);
    // Wait for the process to make progress (its exit, or a short interval) before trying again.
    await Promise.race([exited, new Promise((r) => setTimeout(r, 25))]);
  }
}

export const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx';

export interface Nginx {
  /** Base URL of the WebDAV share (`/cache/`). */
  url: string;
  /** The same share, read-only and served at 50 KB/s. */
  slowUrl: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  /** Directory served as /cache/ (what PUT writes). */
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * nginx with WebDAV PUT/DELETE on /cache/, plus /slow/ (the same files, read at 50 KB/s),
 * /forbidden/ (always 403) and /broken/ (always 503) to play remotes that are slow, refuse or fail.
 */
export async function startNginx(): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'nginx-'));
  const dataDir = join(dir, 'data', 'cache');
  await mkdir(dataDir, { recursive: true });
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) await mkdir(join(dir, d));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/data;
    location /cache/ {
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      client_max_body_size 0;
    }
    location /slow/ { alias ${dir}/data/cache/; limit_rate 50k; }
    location /forbidden/ { return 403; }
    location /broken/ { return 503; }
  }
}
`;
    await writeFile(join(dir, 'nginx.conf'), conf);
    const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'logs', 'error.log')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => {});
    try {
      await waitForPort(port, exited, 'nginx');
    } catch (err) {
      child.kill('SIGKILL');
      const log = await readFile(join(dir, 'logs', 'error.log'), 'utf8').catch(() => '');
      if (attempt < 3 && /Address already in use/.test(log + stderr)) continue;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`nginx did not start: ${(err as Error).message}\n${stderr}\n${log}`);
    }
    const origin = `http://127.0.0.1:${port}`;
    return {
      url: `${origin}/cache/`,
      slowUrl: `${origin}/slow/`,
      origin,
      dataDir,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

export const SWIFT_PROXY = process.env.SWIFT_PROXY_PATH ?? '/usr/bin/swift-proxy-server';

export interface Swift {
  /** S3 endpoint (the proxy with s3api), http://127.0.0.1:PORT */
  endpoint: string;
  /** tempauth user as S3 credentials. */
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

/**
 * A one-node OpenStack Swift (account, container, object servers and a proxy with s3api and
 * tempauth), rings and config under a temp dir, one replica, on free loopback ports. tempauth
 * insists on the memcache middleware being in the pipeline; it works without a memcached behind it
 * (the proxy then logs that its memcache servers are error-limited).
 */
export async function startSwift(): Promise<Swift> {
  const dir = await mkdtemp(join(tmpdir(), 'swift-'));
  const children: ChildProcess[] = [];
  let output = '';
  const stop = async () => {
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = once(c, 'exit');
        c.kill('SIGTERM');
        await exited;
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await mkdir(join(dir, 'srv', 'd1'), { recursive: true });
    await writeFile(
      join(dir, 'swift.conf'),
      '[swift-hash]\nswift_hash_path_suffix = pipeline-test\nswift_hash_path_prefix = pipeline-test\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n',
    );
    const user = process.env.USER ?? (process.getuid?.() === 0 ? 'root' : 'nobody');
    const ports = { account: await freePort(), container: await freePort(), object: await freePort(), proxy: await freePort() };
    const common = (port: number) =>
      `[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = ${port}\nworkers = 0\nuser = ${user}\nswift_dir = ${dir}\ndevices = ${dir}/srv\nmount_check = false\nlog_level = WARNING\n`;
    for (const kind of ['account', 'container', 'object'] as const) {
      const builder = join(dir, `${kind}.builder`);
      await execOk('swift-ring-builder', [builder, 'create', '4', '1', '0']);
      await execOk('swift-ring-builder', [builder, 'add', `r1z1-127.0.0.1:${ports[kind]}/d1`, '1']);
      await execOk('swift-ring-builder', [builder, 'rebalance']);
      await writeFile(
        join(dir, `${kind}-server.conf`),
        `${common(ports[kind])}[pipeline:main]\npipeline = ${kind}-server\n[app:${kind}-server]\nuse = egg:swift#${kind}\n`,
      );
    }
    const filters = ['catch_errors', 'gatekeeper', 'proxy_logging', 'memcache', 'copy', 'slo', 'dlo'];
    await writeFile(
      join(dir, 'proxy-server.conf'),
      common(ports.proxy) +
        '[pipeline:main]\npipeline = catch_errors gatekeeper proxy_logging memcache s3api tempauth copy slo dlo proxy_logging proxy-server\n' +
        '[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\nallow_account_management = true\n' +
        '[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = testing .admin\n' +
        '[filter:s3api]\nuse = egg:swift#s3api\nlocation = us-east-1\n' +
        `[filter:memcache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:${await freePort()}\n` +
        filters
          .filter((f) => f !== 'memcache')
          .map((f) => `[filter:${f}]\nuse = egg:swift#${f}\n`)
          .join(''),
    );
    const servers = ['account', 'container', 'object', 'proxy'] as const;
    for (const kind of servers) {
      const child = spawn(`/usr/bin/swift-${kind}-server`, [join(dir, `${kind}-server.conf`)], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.once('error', () => {});
      for (const s of [child.stdout!, child.stderr!]) s.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-20_000)));
      children.push(child);
    }
    await Promise.all(servers.map((kind, i) => waitForPort(ports[kind], once(children[i]!, 'exit'), `swift-${kind}-server`)));
    return { endpoint: `http://127.0.0.1:${ports.proxy}`, accessKeyId: 'test:tester', secretAccessKey: 'testing', stop };
  } catch (err) {
    await stop();
    throw new Error(`Swift did not start: ${(err as Error).message}\n${output}`);
  }
}

function execOk(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    for (const s of [child.stdout!, child.stderr!]) s.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`))));
  });
}

export const REDIS_SERVER = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server';

export interface RedisServer {
  /** redis://127.0.0.1:PORT */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A throwaway redis-server on a free loopback port: no persistence, its dir under a temp dir. */
export async function startRedis(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    for (const s of [child.stdout!, child.stderr!]) s.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-10_000)));
    child.once('error', () => {});
    const exited = once(child, 'exit');
    try {
      await waitForPort(port, exited, 'redis-server');
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 3 && /Address already in use/.test(output)) continue;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start: ${(err as Error).message}\n${output}`);
    }
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}
