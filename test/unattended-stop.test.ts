// `pipeline worker` and `pipeline schedule` stop within seconds of SIGTERM whatever state Redis is
// in: a real redis-server on a free loopback port is stopped under them first. (Before: a worker
// whose Redis had gone away was still running 25 s after SIGTERM.) The bound below only catches such
// a hang; the test coordinates on output and process exit.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './helpers/cli.js';
import { REDIS_SERVER, serverAvailable, startRedis, type RedisServer } from './helpers/servers.js';
import type { RunRecord } from '../engine/store/runs.js';

const withRedis = serverAvailable('unattended-stop', REDIS_SERVER, 'apt-get install redis-server') ? describe : describe.skip;

/** Far above "a few seconds", far below the 25 s hang it catches. */
const HANG_MS = 20_000;

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** Resolves once the output matches. */
  said(re: RegExp): Promise<void>;
}

function start(args: string[], cwd: string): Started {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', PIPELINE_QUEUE_SECRET: 'unattended-stop-secret-0123456789' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  for (const s of [child.stdout!, child.stderr!])
    s.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      for (const w of waiters.splice(0))
        if (w.re.test(output)) w.resolve();
        else waiters.push(w);
    });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return {
    child,
    output: () => output,
    exited,
    said: (re) =>
      new Promise<void>((resolve, reject) => {
        if (re.test(output)) return resolve();
        waiters.push({ re, resolve });
        void exited.then(() => reject(new Error(`exited before saying ${re}:\n${output}`)));
      }),
  };
}

/** The exit, or 'hung' if the process is still running after HANG_MS. */
async function exitOrHang(p: Started): Promise<[number | null, NodeJS.Signals | null] | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), HANG_MS)));
  try {
    return await Promise.race([p.exited, hung]);
  } finally {
    clearTimeout(timer);
  }
}

withRedis('stopping with Redis gone', () => {
  let redis: RedisServer | undefined;
  let dir: string;
  const started: Started[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'unattended-stop-'));
  });
  afterEach(async () => {
    for (const p of started.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await redis?.stop();
    redis = undefined;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a worker SIGTERMed after its Redis was stopped exits promptly (exit 0)', async () => {
    redis = await startRedis();
    const cwd = await mkdtemp(join(dir, 'worker-'));
    await writeFile(join(cwd, 'pipeline.yaml'), 'stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n');
    const worker = start(['worker', '--queue', redis.url, '--remote', 'http://127.0.0.1:1/', '--name', 'w1'], cwd);
    started.push(worker);
    await worker.said(/waiting for stages/);
    await redis.stop();
    redis = undefined;
    worker.child.kill('SIGTERM');
    const exit = await exitOrHang(worker);
    expect(exit).toEqual([0, null]);
    expect(worker.output()).toMatch(/worker w1: stopped/);
  });

  test('a scheduled queue run waiting on a Redis that went away: SIGTERM stops the scheduler, the run is recorded as interrupted', async () => {
    redis = await startRedis();
    const cwd = await mkdtemp(join(dir, 'schedule-'));
    await writeFile(
      join(cwd, 'pipeline.yaml'),
      'remote:\n  url: http://127.0.0.1:1/\nstages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\nschedule:\n  nightly:\n    cron: "0 3 * * *"\n',
    );
    // No worker: the run's job waits in the queue.
    const scheduler = start(['--verbose', 'schedule', '--once', '--executor', 'queue', '--queue', redis.url], cwd);
    started.push(scheduler);
    await scheduler.said(/a: queued on /);
    await redis.stop();
    redis = undefined;
    scheduler.child.kill('SIGTERM');
    const exit = await exitOrHang(scheduler);
    expect(exit).not.toBe('hung');
    const names = (await readdir(join(cwd, 'artifacts', 'runs'))).filter((n) => n.endsWith('.json'));
    const records = await Promise.all(names.map(async (n) => JSON.parse(await readFile(join(cwd, 'artifacts', 'runs', n), 'utf8')) as RunRecord));
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ outcome: 'interrupted', trigger: { entry: 'nightly' } });
  });
});
