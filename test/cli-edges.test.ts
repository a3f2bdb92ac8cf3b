// Rough edges of the CLI: output into a pipe whose reader leaves (`pipeline runs | head -1`), and a
// fetch whose host cannot be reached (offline) saying how to use a local copy.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CLI, runCli, workspace } from './helpers/cli.js';
import type { RunRecord } from '../engine/store/runs.js';

let dir: string;
beforeAll(async () => {
  dir = await workspace(
    `stages:
  fetch:
    uses: fetch
    with:
      url: http://nonexistent.invalid/cifar.tar.gz
      md5: c32a1d4ab5d03f1284b67883e8d87530
      retries: 0
`,
    'cli-edges-',
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a pipe whose reader leaves', () => {
  test('pipeline runs | head -1: one line, no stack trace, exit 0', async () => {
    // Far more than a pipe holds (64 KiB), so `runs` is still writing when head has left.
    const runs = join(dir, 'artifacts', 'runs');
    await mkdir(runs, { recursive: true });
    for (let i = 0; i < 400; i++) {
      const id = `20260101T0000${String(i).padStart(5, '0')}Z-1`;
      const record: RunRecord = {
        id,
        command: ['run'],
        pid: 1,
        startedAt: '2026-01-01T00:00:00.000Z',
        outcome: 'ok',
        durationMs: 1000,
        stages: Array.from({ length: 8 }, (_, s) => ({ stage: `stage${s}`, outcome: 'cached' as const, durationMs: 5, key: 'ab'.repeat(32) })),
      };
      await writeFile(join(runs, `${id}.json`), JSON.stringify(record));
    }
    const child = spawn('bash', ['-c', `node "${CLI}" runs --limit 0 | head -1; echo "exit=\${PIPESTATUS[0]}" >&2`], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    await once(child, 'close');
    expect(stdout).toMatch(/^20260101T000000399Z-1 .*\n$/);
    expect(stderr).toBe('exit=0\n');
    await rm(runs, { recursive: true });
  });
});

describe('fetch from a host that cannot be reached', () => {
  const hint = 'offline or behind a firewall? Point the stage at a local copy: --set fetch.url=/path/to/archive (README: "Offline or behind a firewall?")';

  test('no such host: the error says how to use a local copy', async () => {
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: stage fetch: download http://nonexistent.invalid/cifar.tar.gz: getaddrinfo ENOTFOUND nonexistent.invalid; ${hint}\n`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  test('nothing listening: the same hint, after the retries', async () => {
    // A port that was just free: connecting to it is refused.
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    server.close();
    await once(server, 'close');
    const r = await runCli(['run', '--set', `fetch.url=http://127.0.0.1:${port}/cifar.tar.gz`], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`failed after 1 attempt(s): connect ECONNREFUSED 127.0.0.1:${port}; ${hint}\n`);
    // Nothing of it in the store.
    expect(await readdir(join(dir, 'artifacts', 'manifests'))).toEqual([]);
  });

  test('a host that answers with an error is not called unreachable', async () => {
    const server = (await import('node:http')).createServer((_req, res) => res.writeHead(404).end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as { port: number };
      const r = await runCli(['run', '--set', `fetch.url=http://127.0.0.1:${port}/cifar.tar.gz`], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/HTTP 404/);
      expect(r.stderr).not.toContain('offline');
    } finally {
      server.close();
    }
  });
});
