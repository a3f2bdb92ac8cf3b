// `pipeline cancel` on the built CLI: a local run cancelled mid-stage (its command's process group
// is gone, the record says cancelled, verify trusts the store, the next run reuses what finished),
// the errors for no such run / a run that is not running, and with a real redis-server and nginx
// (WebDAV remote): a queue run cancelled with one job running on a worker and one queued (the
// worker stops its job, the queued one is removed), and a stage's output on a queue worker read
// back with `pipeline logs` on the coordinator. Stages coordinate with the test through files.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { CLI, runCli, workspace } from './helpers/cli.js';
import { NGINX, REDIS_SERVER, serverAvailable, startNginx, startRedis, type Nginx, type RedisServer } from './helpers/servers.js';
import type { RunRecord } from '../engine/store/runs.js';
import { groupAlive } from './helpers/process-groups.js';

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

/** Waits until `check` holds, re-checking as files change (polling: no fixed sleep decides anything). */
async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function lines(file: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean);
}

async function records(cwd: string): Promise<RunRecord[]> {
  return JSON.parse((await runCli(['runs', '--json', '--limit', '0'], { cwd })).stdout || '[]') as RunRecord[];
}

describe('pipeline cancel of a local run', () => {
  test('a run cancelled mid-stage: the group is gone, the record says cancelled, verify exits 0, the next run reuses what finished', async () => {
    const dir = await workspace(
      `stages:
  first:
    cmd: echo first > first.txt
    outs: [first.txt]
  hang:
    # Its group id (field 5 of /proc/self/stat), a child that would outlive a killed shell, then wait for go.
    cmd: cut -d' ' -f5 /proc/$$/stat > pgid; sleep 300 & while [ ! -e go ]; do sleep 0.05; done; echo done > hang.txt
    needs: [first]
    outs: [hang.txt]
`,
      'cancel-',
    );
    made.push(dir);
    const nothing = await runCli(['cancel'], { cwd: dir });
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/^error: no run is running in the store \S+/m);

    const run = runCli(['run'], { cwd: dir });
    const pgid = Number(await until('the hung stage to start', async () => (await lines(join(dir, 'pgid')))[0]));
    expect(await groupAlive(pgid)).toBe(true);
    const cancel = await runCli(['cancel'], { cwd: dir });
    expect(cancel.stderr).toBe('');
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(/^cancelled run \S+ in \S+: stopped hang; 1 finished stage kept for the next run$/m);
    const r = await run;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/is cancelled \(pipeline cancel\): stopping running stages/);
    expect(r.stderr).toMatch(/^error: cancelled \(pipeline cancel\)/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await groupAlive(pgid)).toBe(false);

    const [record] = await records(dir);
    expect(record).toMatchObject({ outcome: 'cancelled' });
    expect(record!.stages.map((s) => [s.stage, s.outcome])).toEqual([
      ['first', 'ran'],
      ['hang', 'aborted'],
    ]);
    expect((await runCli(['runs'], { cwd: dir })).stdout).toMatch(new RegExp(`^${record!.id} .* cancelled `, 'm'));
    // No request left behind, nothing partial committed, and the store is one verify trusts.
    expect(existsSync(join(dir, 'artifacts', 'runs', record!.id, 'cancel'))).toBe(false);
    expect(existsSync(join(dir, 'artifacts', 'stages', 'hang'))).toBe(false);
    expect(await runCli(['verify'], { cwd: dir })).toMatchObject({ code: 0 });

    // The run is over: cancelling it again says so.
    const again = await runCli(['cancel', record!.id], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`run ${record!.id} is not running (it ended cancelled`);
    const unknown = await runCli(['cancel', '19990101T000000000Z-1'], { cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no run '19990101T000000000Z-1'/);

    // The next run reuses what finished and completes the rest.
    await writeFile(join(dir, 'go'), '');
    const next = await runCli(['run'], { cwd: dir });
    expect(next.code).toBe(0);
    expect(next.stdout).toMatch(/^cached\s+first/m);
    expect(next.stdout).toMatch(/^ran\s+hang/m);
    expect(await readFile(join(dir, 'hang.txt'), 'utf8')).toBe('done\n');
  }, 900_000);
});

const available =
  serverAvailable('cancel (queue)', REDIS_SERVER, 'apt-get install redis-server') && serverAvailable('cancel (queue)', NGINX, 'apt-get install nginx');
const withServers = available ? describe : describe.skip;

/** The shared secret of coordinators and workers in these tests (PIPELINE_QUEUE_SECRET). */
const SECRET = 'cancel-test-secret-5d1e0a9b7c3f4e21';

interface Worker {
  child: ChildProcess;
  output: () => string;
  exited: Promise<unknown>;
}

withServers('queue runs: cancel and logs', () => {
  let redis: RedisServer;
  let nginx: Nginx;
  let base: string;
  const workers: Worker[] = [];
  let n = 0;
  const secretBefore = process.env.PIPELINE_QUEUE_SECRET;

  beforeAll(async () => {
    [redis, nginx] = await Promise.all([startRedis(), startNginx()]);
    base = await mkdtemp(join(tmpdir(), 'cancel-queue-'));
    process.env.PIPELINE_QUEUE_SECRET = SECRET;
  }, 120_000);
  afterEach(async () => {
    for (const w of workers.splice(0)) {
      if (w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill('SIGKILL');
        await w.exited;
      }
    }
  });
  afterAll(async () => {
    if (secretBefore === undefined) delete process.env.PIPELINE_QUEUE_SECRET;
    else process.env.PIPELINE_QUEUE_SECRET = secretBefore;
    await Promise.all([redis?.stop(), nginx?.stop()]);
    if (base) await rm(base, { recursive: true, force: true });
  });

  /** A test area: its own queue name and remote prefix, a signals dir, and a coordinator and a worker workspace. */
  async function area(pipeline: (signals: string) => string) {
    n++;
    const dir = join(base, `t${n}`);
    const signals = join(dir, 'signals');
    await mkdir(signals, { recursive: true });
    const yaml = `remote:\n  url: ${nginx.url}t${n}/\n${pipeline(signals)}`;
    const make = async (name: string) => {
      const ws = join(dir, name);
      await mkdir(ws, { recursive: true });
      await writeFile(join(ws, 'pipeline.yaml'), yaml);
      return ws;
    };
    return { signals, queue: `${redis.url}?name=t${n}`, queueName: `t${n}`, coordinator: await make('coordinator'), host: await make('host') };
  }

  async function startWorker(ws: string, name: string, queue: string): Promise<Worker> {
    const child = spawn(process.execPath, [CLI, 'worker', '--queue', queue, '--name', name, '--lock-seconds', '3'], {
      cwd: ws,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    for (const s of [child.stdout, child.stderr]) s.setEncoding('utf8').on('data', (d: string) => (output += d));
    const worker: Worker = { child, output: () => output, exited: once(child, 'exit') };
    workers.push(worker);
    await until(`worker ${name} to start`, async () => output.includes('waiting for stages') || (child.exitCode !== null && Promise.reject(new Error(output))));
    return worker;
  }

  test('a queue run cancelled with a job running on a worker and one queued: the worker stops its job, the queued one is removed', async () => {
    const gated = (name: string, signals: string) => `  ${name}:
    cmd: echo ${name} >> ${signals}/started && while [ ! -e ${signals}/go ]; do sleep 0.05; done && echo ${name} > ${name}.txt
    outs: [${name}.txt]
`;
    const a = await area((signals) => `stages:\n${gated('one', signals)}${gated('two', signals)}`);
    const worker = await startWorker(a.host, 'wA', a.queue);
    const run = runCli(['run', '--executor', 'queue', '--queue', a.queue, '--jobs', '2'], { cwd: a.coordinator });
    // One worker with concurrency 1: one stage runs, the other waits in the queue.
    const queue = new Queue(a.queueName, { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      const first = await until('a stage to start on the worker', async () => (await lines(join(a.signals, 'started')))[0]);
      await until('the other job to be queued', async () => (await queue.getJobCounts('waiting')).waiting === 1);
      const cancel = await runCli(['cancel'], { cwd: a.coordinator });
      expect(cancel.stderr).toBe('');
      expect(cancel.code).toBe(0);
      expect(cancel.stdout).toMatch(/^cancelled run \S+ in \S+: stopped (one, two|two, one)$/m);
      const r = await run;
      expect(r.code).toBe(130);
      expect(r.stderr).toMatch(/^queue: removed 1 queued job; stopped 1 of 1 running on workers$/m);
      // The worker stopped its job (not put back for another worker), and nothing is left queued.
      expect(worker.output()).toMatch(new RegExp(`^\\S+ ${first} \\S+: its run was cancelled; stopping it$`, 'm'));
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
      expect(counts).toMatchObject({ waiting: 0, active: 0, delayed: 0, prioritized: 0, completed: 0, failed: 1 });
      // Only the started stage ever ran.
      expect(await lines(join(a.signals, 'started'))).toEqual([first]);
      const [record] = await records(a.coordinator);
      expect(record).toMatchObject({ outcome: 'cancelled' });
      expect(record!.stages.map((s) => s.outcome)).toEqual(['aborted', 'aborted']);
      // The worker's own run of the stage was stopped as on SIGTERM; the worker goes on working.
      const [hostRecord] = await records(a.host);
      expect(hostRecord).toMatchObject({ outcome: 'interrupted' });
      expect(worker.child.exitCode).toBeNull();
      expect(await runCli(['verify'], { cwd: a.coordinator })).toMatchObject({ code: 0 });
      expect(await runCli(['verify'], { cwd: a.host })).toMatchObject({ code: 0 });

      // The next run completes on the same worker.
      await writeFile(join(a.signals, 'go'), '');
      const next = await runCli(['run', '--executor', 'queue', '--queue', a.queue], { cwd: a.coordinator });
      expect(next.stderr).not.toMatch(/^(error|warning):/m);
      expect(next.code).toBe(0);
      expect(next.stdout).toMatch(/^ran\s+one\s+\S+\s+\(on wA/m);
      expect(next.stdout).toMatch(/^ran\s+two\s+\S+\s+\(on wA/m);
    } finally {
      await queue.close();
    }
  }, 900_000);

  test("logs on the coordinator show a stage's output from the queue worker that ran it, also of a failed stage", async () => {
    const a = await area(
      () => `stages:
  talk:
    cmd: echo "hello from the worker"; echo "to stderr" >&2; echo ok > talk.txt
    outs: [talk.txt]
  broken:
    cmd: echo "about to fail"; exit 3
    needs: [talk]
`,
    );
    await startWorker(a.host, 'wA', a.queue);
    const r = await runCli(['run', '--executor', 'queue', '--queue', a.queue], { cwd: a.coordinator });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ran\s+talk\s+\S+\s+\(on wA/m);
    const talk = await runCli(['logs', 'talk'], { cwd: a.coordinator });
    expect(talk.code).toBe(0);
    expect(talk.stdout).toContain('hello from the worker\n');
    expect(talk.stdout).toContain('to stderr\n');
    const [record] = await records(a.coordinator);
    const broken = await runCli(['logs', record!.id, 'broken'], { cwd: a.coordinator });
    expect(broken.code).toBe(0);
    expect(broken.stdout).toContain('about to fail\n');
    expect(broken.stdout).toMatch(/^error: .*exit(ed with)? code 3/m);
  }, 400_000);
});
