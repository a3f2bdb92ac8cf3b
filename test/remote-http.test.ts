// The remote artifact cache over HTTP, end to end on the built CLI against a real nginx (WebDAV PUT)
// started on a free loopback port: two workspaces ("machines") sharing one remote, push / pull,
// corrupt and partial remote objects, and remotes that are down, refuse access or fail.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { formatBytes as formatBytesLikeCli } from '../cli/output.js';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { runCli, workspace, type CliResult } from './helpers/cli.js';
import { freePort, NGINX, serverAvailable, startNginx, type Nginx } from './helpers/servers.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A workspace ("machine") with the test pipeline, its own store, and the same input files. */
async function machine(remoteUrl: string | undefined, timeout = 10): Promise<string> {
  const remote = remoteUrl === undefined ? '' : `remote:\n  url: ${remoteUrl}\n  timeout: ${timeout}\n`;
  const dir = await workspace(
    `${remote}stages:
  fetch:
    uses: fetch
    with:
      url: images
  gen:
    cmd: mkdir -p out && seq 1 20000 > out/nums.txt && echo hi > out/hi.txt && echo gen >> ran.log
    outs: [out]
  sum:
    cmd: awk '{s+=$1} END {print s}' out/nums.txt > sum.txt && echo sum >> ran.log
    deps: [out]
    outs: [sum.txt]
`,
    'remote-http-',
  );
  dirs.push(dir);
  await mkdir(join(dir, 'images', 'train', 'cat'), { recursive: true });
  await writeFile(join(dir, 'images', 'train', 'cat', 'a.jpg'), 'not really a jpeg, but bytes to carry');
  return dir;
}

async function cli(args: string[], cwd: string, code = 0): Promise<CliResult> {
  const r = await runCli(args, { cwd });
  expect(r).toMatchObject({ code });
  return r;
}

/** stage → the outcome word of its line (`ran`, `cached`, `pushed`, `pulled`, `present`, `missing`, `failed`...). */
function lines(r: CliResult): Record<string, string> {
  const found: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(cached|ran|failed|skipped|pushed|pulled|present|missing)\s+(fetch|gen|sum)\b/.exec(line);
    if (m) found[m[2]!] = m[1]!;
  }
  return found;
}

/** The committed manifest of a stage in a workspace's store. */
async function manifestOf(dir: string, stage: string): Promise<{ key: string; files: Record<string, { digest: string; size: number }> }> {
  const refs = JSON.parse(await readFile(join(dir, 'artifacts', 'refs.json'), 'utf8')) as Record<string, { key: string }>;
  return JSON.parse(await readFile(join(dir, 'artifacts', 'manifests', `${refs[stage]!.key}.json`), 'utf8'));
}

const localManifests = async (dir: string) => (await readdir(join(dir, 'artifacts', 'manifests'))).filter((n) => n.endsWith('.json'));

const available = serverAvailable('remote-http', NGINX, 'apt-get install nginx');
const withServer = available ? describe : describe.skip;

withServer('HTTP remote on nginx', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await startNginx();
  });
  afterAll(async () => {
    await nginx?.stop();
  });
  let n = 0;
  /** A fresh prefix on the shared server per test. */
  const fresh = () => `${nginx.url}t${++n}/`;
  const remoteFile = (url: string, path: string) => join(nginx.dataDir, url.slice(nginx.url.length), path);
  const objectFile = (url: string, digest: string) => remoteFile(url, `objects/${digest.slice(0, 2)}/${digest.slice(2)}`);

  test('a second machine computes nothing that the first pushed', async () => {
    const url = fresh();
    const a = await machine(url);
    const b = await machine(url);
    const first = await cli(['run', '--push'], a);
    expect(lines(first)).toEqual({ fetch: 'ran', gen: 'ran', sum: 'ran' });
    expect(first.stdout).toContain(`pushed 3 of 3 computed results to ${url}`);
    expect(existsSync(remoteFile(url, 'manifests'))).toBe(true);

    // The dry run counts on the remote as the run will, level by level (sum's key needs gen's outputs).
    const dry = await cli(['run', '--dry-run'], b);
    expect(dry.stdout).toMatch(/cached\s+sum\s+would pull from the remote/);
    expect(dry.stdout).toContain('dry run: 0 to run, 3 cached, 3 of them from the remote');
    expect(existsSync(join(b, 'artifacts'))).toBe(false);
    expect(await cli(['run', '--dry-run', '--no-remote'], b)).toMatchObject({ stdout: expect.stringContaining('dry run: 3 to run, 0 cached') });

    const second = await cli(['run'], b);
    expect(lines(second)).toEqual({ fetch: 'cached', gen: 'cached', sum: 'cached' });
    expect(second.stdout).toMatch(/cached\s+sum\s+\S+\s+\(pulled from the remote, restored sum.txt\)/);
    expect(existsSync(join(b, 'ran.log'))).toBe(false); // no command ran on the second machine
    expect(await readFile(join(b, 'sum.txt'), 'utf8')).toBe('200010000\n');
    expect(await readFile(join(b, 'out', 'hi.txt'), 'utf8')).toBe('hi\n');
    // The fetched folder arrived as fetch stored it: a pack whose index lists the file.
    const index = JSON.parse(await readFile(join(b, 'artifacts', 'stages', 'fetch', 'pack', 'index.json'), 'utf8')) as { entries: { path: string }[] };
    expect(index.entries.map((e) => e.path).filter((p) => p.startsWith('train/cat/'))).toEqual(['train/cat/a.jpg']);
    expect((await manifestOf(b, 'sum')).key).toBe((await manifestOf(a, 'sum')).key);
    await cli(['verify'], b);

    // Now local: a rerun neither pulls nor runs.
    const third = await cli(['run'], b);
    expect(lines(third)).toEqual({ fetch: 'cached', gen: 'cached', sum: 'cached' });
    expect(third.stdout).not.toContain('pulled');

    // --no-remote computes locally.
    const c = await machine(url);
    expect(lines(await cli(['run', '--no-remote'], c))).toEqual({ fetch: 'ran', gen: 'ran', sum: 'ran' });
  });

  test('push and pull: selected stages, idempotent, resuming an interrupted push', async () => {
    const url = fresh();
    const a = await machine(url);
    const b = await machine(url);
    await cli(['run', '--no-remote'], a);
    const pushed = await cli(['push', 'gen'], a);
    expect(lines(pushed)).toEqual({ gen: 'pushed' });
    expect(pushed.stdout).toMatch(/pushed\s+gen\s+2 objects \(\S+ \S+\) uploaded, 0 already there/);

    const all = await cli(['push'], a);
    expect(lines(all)).toEqual({ fetch: 'pushed', gen: 'pushed', sum: 'pushed' });
    expect(all.stdout).toMatch(/pushed\s+gen\s+already on the remote/);
    const again = await cli(['push'], a);
    expect(again.stdout).toMatch(/: 0 objects \(0 B\) uploaded/);

    // An interrupted push: an object is gone and the manifest was never written. Pushing again
    // uploads exactly what is missing.
    const sum = await manifestOf(a, 'sum');
    await unlink(objectFile(url, sum.files['sum.txt']!.digest));
    await unlink(remoteFile(url, `manifests/${sum.key}.json`));
    const resumed = await cli(['push'], a);
    expect(resumed.stdout).toMatch(/pushed\s+sum\s+1 object \(10 B\) uploaded, 0 already there/);
    expect(resumed.stdout).toMatch(/: 1 object \(10 B\) uploaded/);

    // Pull one stage (and what it needs), then the rest.
    const one = await cli(['pull', 'sum'], b);
    expect(lines(one)).toEqual({ gen: 'pulled', sum: 'pulled' });
    expect(one.stdout).toMatch(/pulled\s+gen\s+2 objects \(\S+ \S+\) downloaded and verified, 0 already here/);
    expect(await localManifests(b)).toHaveLength(2);
    const rest = await cli(['pull'], b);
    expect(lines(rest)).toEqual({ fetch: 'pulled', gen: 'present', sum: 'present' });
    expect(lines(await cli(['pull'], b))).toEqual({ fetch: 'present', gen: 'present', sum: 'present' });
    await cli(['verify'], b);

    const run = await cli(['run'], b);
    expect(lines(run)).toEqual({ fetch: 'cached', gen: 'cached', sum: 'cached' });
    expect(run.stdout).not.toContain('pulled from the remote');
    expect(existsSync(join(b, 'ran.log'))).toBe(false);
    expect(await readFile(join(b, 'sum.txt'), 'utf8')).toBe('200010000\n');

    // Nothing to pull for a stage no machine has computed.
    const c = await machine(fresh());
    const none = await cli(['pull'], c);
    expect(lines(none)).toEqual({ fetch: 'missing', gen: 'missing', sum: 'missing' });
    expect(none.stdout).toMatch(/missing\s+sum\s+\(needs gen, not available\)/);
  });

  test('a corrupt or partial remote object is reported and never committed', async () => {
    const url = fresh();
    const a = await machine(url);
    await cli(['run', '--push'], a);
    const sum = await manifestOf(a, 'sum');
    const gen = await manifestOf(a, 'gen');
    // A flipped byte (same size) in sum's object, a truncated object of gen.
    await writeFile(objectFile(url, sum.files['sum.txt']!.digest), '200010001\n');
    await truncate(objectFile(url, gen.files['out/nums.txt']!.digest), 1000);

    const b = await machine(url);
    const pulled = await cli(['pull'], b, 1);
    expect(lines(pulled)).toEqual({ fetch: 'pulled', gen: 'failed', sum: 'missing' });
    expect(pulled.stderr).toMatch(/remote object \S+ is corrupt: 1000 bytes instead of 108894; not stored/);
    expect(pulled.stderr).toContain('1 result could not be pulled (nothing of them was committed): gen');
    expect(await localManifests(b)).toHaveLength(1);
    expect(existsSync(join(b, 'artifacts', 'objects', gen.files['out/nums.txt']!.digest.slice(0, 2)))).toBe(false);
    await cli(['verify'], b);

    // run: the damaged results are computed locally, with a warning; the store stays sound.
    const run = await cli(['run', '--push'], b);
    expect(lines(run)).toEqual({ fetch: 'cached', gen: 'ran', sum: 'ran' });
    expect(run.stderr).toMatch(/\[gen\] warning: remote \S+: remote object \S+ is corrupt: 1000 bytes instead of 108894; not stored; computing gen locally/);
    expect(await readFile(join(b, 'ran.log'), 'utf8')).toBe('gen\nsum\n');
    expect(await readFile(join(b, 'sum.txt'), 'utf8')).toBe('200010000\n');
    await cli(['verify'], b);

    // `run --push` after finding damage uploads the damaged objects again: a third machine pulls all.
    const c = await machine(url);
    const healed = await cli(['run'], c);
    expect(lines(healed)).toEqual({ fetch: 'cached', gen: 'cached', sum: 'cached' });
    expect(existsSync(join(c, 'ran.log'))).toBe(false);

    // A damaged manifest is not used either.
    await writeFile(remoteFile(url, `manifests/${sum.key}.json`), '{"format": 1, "key": "trunc');
    const d = await machine(url);
    const run2 = await cli(['run'], d);
    expect(lines(run2)).toEqual({ fetch: 'cached', gen: 'cached', sum: 'ran' });
    expect(run2.stderr).toMatch(/remote manifest \S+ is not usable: not JSON \(truncated or damaged\); computing sum locally/);
    await cli(['verify'], d);
  });

  test('an unreachable, refusing or failing remote degrades to local computation', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/cache/`;
    for (const [url, expected] of [
      [closed, /ECONNREFUSED.*; computing fetch locally \(remote not used for the rest of this run\)/],
      [`${nginx.origin}/forbidden/`, /HTTP 403 Forbidden; computing fetch locally \(remote not used for the rest of this run\)/],
      [`${nginx.origin}/broken/`, /HTTP 503 .*; computing fetch locally$/m],
    ] as const) {
      const a = await machine(url);
      // Computed, but not pushed: exit 3 (see the next suite).
      const r = await cli(['run', '--push'], a, 3);
      expect(lines(r)).toEqual({ fetch: 'ran', gen: 'ran', sum: 'ran' });
      expect(r.stderr).toMatch(expected);
      expect(r.stderr).toMatch(/^error: --push uploaded 0 of the 3 results this run computed/m);
      if (url !== `${nginx.origin}/broken/`) {
        // Given up after the first failure: sum (which starts after gen) does not ask, push warns once.
        // (fetch and gen start together, so both may have asked before the first answer.)
        expect(r.stderr).not.toContain('[sum] warning');
        expect(r.stderr.match(/; not pushed/g)).toHaveLength(1);
        expect(r.stdout).toContain('pushed 0 of 3 computed results');
      }
      await cli(['verify'], a);
      const pushed = await cli(['push'], a, 1);
      expect(pushed.stderr).toMatch(/^error: (HEAD|PUT) /m);
    }
  });

  test('Ctrl-C during a pull stops it with nothing partial committed; the next pull completes', async () => {
    const url = fresh();
    const a = await machine(url);
    await cli(['run', '--push'], a);
    const b = await machine(url);
    const slow = nginx.slowUrl + url.slice(nginx.url.length);
    // gen's 109 KB object takes about two seconds at 50 KB/s: interrupt once its progress shows.
    let interrupted = false;
    const r = await runCli(['pull', 'gen', '--remote', slow], {
      cwd: b,
      onOutput: (chunk, child) => {
        if (!interrupted && /\[gen\] pull /.test(chunk)) {
          interrupted = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(interrupted).toBe(true);
    expect(r).toMatchObject({ code: 130 });
    expect(r.stderr).toMatch(/interrupted: transfers were stopped; nothing partial was committed/);
    expect(await localManifests(b)).toEqual([]);
    expect(await readdir(join(b, 'artifacts', 'tmp'))).toEqual([]);
    expect(existsSync(join(b, 'artifacts', 'lock'))).toBe(false);
    await cli(['verify'], b);
    // What arrived is kept aside (not in the store) and the next pull asks only for the rest.
    const partial = join(b, 'artifacts', 'resume', 'remote-objects', `${(await manifestOf(a, 'gen')).files['out/nums.txt']!.digest}.part`);
    const kept = (await stat(partial)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(108894);
    const resumed = await cli(['pull', 'gen'], b);
    expect(lines(resumed)).toEqual({ gen: 'pulled' });
    expect(resumed.stdout).toContain(`(${formatBytesLikeCli(kept)} resumed from an interrupted pull)`);
    expect(existsSync(partial)).toBe(false);
    await cli(['verify'], b);
    expect(await readFile(join(b, 'artifacts', 'stages', 'gen', 'out', 'nums.txt'), 'utf8')).toBe(await readFile(join(a, 'out', 'nums.txt'), 'utf8'));
  });

  test('a remote that accepts connections and never answers times out, and the run computes locally', async () => {
    // Not nginx: a listener that swallows requests, as a hung server or a black-holing proxy does.
    const held: Socket[] = [];
    const silent = createServer((sock) => held.push(sock.on('error', () => {})));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/cache/`;
      const a = await machine(url, 0.5);
      const r = await cli(['run'], a);
      expect(lines(r)).toEqual({ fetch: 'ran', gen: 'ran', sum: 'ran' });
      expect(r.stderr).toMatch(
        /\[fetch\] warning: remote \S+: GET \S+: no answer for 0.5s; computing fetch locally \(remote not used for the rest of this run\)/,
      );
      expect(r.stderr).not.toContain('[sum] warning');
      await cli(['verify'], a);
    } finally {
      for (const s of held) s.destroy();
      silent.close();
    }
  });
});

describe('remote configuration', () => {
  test('credentials never go in pipeline.yaml or --remote; bad remotes are config errors', async () => {
    const a = await machine('https://user:secret@cache.example/x/');
    const r = await cli(['run'], a, 2);
    expect(r.stderr).toMatch(/^error: pipeline.yaml:2:8: remote.url: credentials do not go in the remote URL: set PIPELINE_REMOTE_TOKEN/m);
    expect(existsSync(join(a, 'artifacts'))).toBe(false);

    const b = await workspace('remote:\n  url: s3://bucket/p\n  secret_key: abc\nstages:\n  s:\n    cmd: "true"\n', 'remote-conf-');
    dirs.push(b);
    const r2 = await cli(['run'], b, 2);
    expect(r2.stderr).toMatch(/pipeline.yaml:3:3: remote: unknown key 'secret_key' \(credentials never go in pipeline.yaml/m);

    const c = await machine(undefined);
    expect((await cli(['run', '--remote', 'ftp://host/x'], c, 2)).stderr).toMatch(/--remote: unsupported remote ftp:/);
    expect((await cli(['run', '--remote', 'http://u:p@host/x'], c, 2)).stderr).toMatch(/--remote: credentials do not go in the remote URL/);
    expect((await cli(['push'], c, 2)).stderr).toMatch(/no remote: add a remote: section to pipeline.yaml or pass --remote URL/);
    expect((await cli(['run', '--push'], c, 2)).stderr).toMatch(/--push needs a remote/);
    expect(existsSync(join(c, 'artifacts'))).toBe(false);
  });
});

/**
 * A remote that stores what is PUT (in memory) but answers 500 to the PUT of any manifest whose
 * stage is in `failing`: some results of a run reach it, others do not.
 */
async function flakyRemote(failing: ReadonlySet<string>): Promise<{ url: string; manifests: () => string[]; close: () => Promise<void> }> {
  const stored = new Map<string, Buffer>();
  const server = createHttpServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const stage = path.includes('/manifests/') ? (JSON.parse(body.toString('utf8')) as { stage: string }).stage : undefined;
        if (stage !== undefined && failing.has(stage)) return void res.writeHead(500).end();
        stored.set(path, body);
        res.writeHead(201).end();
      });
      return;
    }
    const body = stored.get(path);
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cache/`,
    manifests: () => [...stored.keys()].filter((p) => p.includes('/manifests/')),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('run --push that pushes less than it computed', () => {
  test('a remote that is down: exit 3 naming the shortfall; the results stay in the local store and push later', async () => {
    const port = await freePort();
    const a = await machine(`http://127.0.0.1:${port}/cache/`);
    const r = await cli(['run', '--push'], a, 3);
    expect(lines(r)).toEqual({ fetch: 'ran', gen: 'ran', sum: 'ran' });
    expect(r.stdout).toContain(`pushed 0 of 3 computed results to http://127.0.0.1:${port}/cache/`);
    expect(r.stderr).toMatch(
      new RegExp(
        `^error: --push uploaded 0 of the 3 results this run computed to http://127\\.0\\.0\\.1:${port}/cache/ .*; they are in the local store: \`pipeline push\` uploads them`,
        'm',
      ),
    );
    const [record] = JSON.parse((await cli(['runs', '--json'], a)).stdout) as { outcome: string; push?: unknown }[];
    expect(record).toMatchObject({ outcome: 'ok', push: { pushed: 0, of: 3, remote: `http://127.0.0.1:${port}/cache/` } });
    expect((await cli(['runs'], a)).stdout).toMatch(/^ {4}push: 0 of 3 computed results to http:\S+ \(incomplete\)$/m);
    expect(lines(await cli(['run', '--no-remote'], a))).toEqual({ fetch: 'cached', gen: 'cached', sum: 'cached' });
    await cli(['verify'], a);

    // Once the remote is back, `pipeline push` sends what the run could not.
    const remote = await flakyRemote(new Set());
    try {
      await cli(['push', '--remote', remote.url], a);
      expect(remote.manifests()).toHaveLength(3);
    } finally {
      await remote.close();
    }
  });

  test('a remote that fails some uploads: exit 3, and the ones that made it are counted', async () => {
    const remote = await flakyRemote(new Set(['sum']));
    try {
      const a = await machine(remote.url);
      const r = await cli(['run', '--push'], a, 3);
      expect(lines(r)).toEqual({ fetch: 'ran', gen: 'ran', sum: 'ran' });
      expect(r.stderr).toMatch(/\[sum\] warning: remote \S+: PUT \S+: HTTP 500.*; not pushed/);
      expect(r.stdout).toContain(`pushed 2 of 3 computed results to ${remote.url}`);
      expect(r.stderr).toMatch(/^error: --push uploaded 2 of the 3 results this run computed to \S+ \(not sum\)/m);
      expect(remote.manifests()).toHaveLength(2);
      // A run that pushed all it computed exits 0.
      const b = await machine(remote.url);
      await writeFile(join(b, 'pipeline.yaml'), (await readFile(join(b, 'pipeline.yaml'), 'utf8')).replace('echo hi', 'echo ho'));
      const ok = await cli(['run', '--push', 'gen'], b);
      expect(ok.stdout).toMatch(/pushed 1 of 1 computed result to /);
    } finally {
      await remote.close();
    }
  });
});
