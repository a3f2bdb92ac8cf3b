// Distributed execution end to end on the built CLI: a real redis-server and a real nginx (WebDAV)
// remote started on free loopback ports; a coordinator workspace and two worker workspaces with
// separate stores (separate "hosts"). Stages coordinate with the test through files: a gated stage
// writes who runs it to `started` and waits for the test to create `go`.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Queue, QueueEvents, type Job } from 'bullmq';
import { CLI, runCli, type CliOptions, type CliResult } from './helpers/cli.js';
import { cifarSource, extractSubset } from './helpers/dataset.js';
import { HoldingProxy } from './helpers/hold-proxy.js';
import { NGINX, REDIS_SERVER, serverAvailable, startNginx, startRedis, type Nginx, type RedisServer } from './helpers/servers.js';

const REPO_PIPELINE = new URL('../../pipeline.yaml', import.meta.url).pathname;
const available = serverAvailable('queue', REDIS_SERVER, 'apt-get install redis-server') && serverAvailable('queue', NGINX, 'apt-get install nginx');
const withServers = available ? describe : describe.skip;

/** Lines a file has so far ([] while it does not exist). */
async function linesOf(file: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean);
}

/** Waits until `check` holds, re-checking as files change (polling them: no fixed sleep decides anything). */
async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Worker {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<unknown>;
}

/** The shared secret of coordinators and workers in these tests (PIPELINE_QUEUE_SECRET). */
const SECRET = 'queue-test-secret-3f9a1c07d2e84b6b';

/** JSON with object keys sorted at every level: the bytes a job's signature covers. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

/** A job as a coordinator holding `secret` signs it for queue `queueName` (written here from the documented format, not imported). */
function signed(payload: Record<string, unknown>, queueName: string, secret = SECRET): Record<string, unknown> {
  const signature = createHmac('sha256', secret)
    .update(`pipeline stage job v1\n${queueName}\n${canonicalJson(payload)}`)
    .digest('hex');
  return { ...payload, signature };
}

/** Whether process `pid` still runs (a zombie waiting to be reaped does not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Preloaded (NODE_OPTIONS=--import) into a worker's stage processes only: records the process's
 * pid as `child-PID` in GATE_DIR and, with GATE_HOLD_START, blocks its start until GATE_DIR/release
 * exists (so a test can kill the worker while its stage process is still starting).
 */
const GATE_PRELOAD = `import { existsSync, writeFileSync } from 'node:fs';
if (process.env.PIPELINE_WORKER_CHILD && process.env.GATE_DIR) {
  writeFileSync(process.env.GATE_DIR + '/child-' + process.pid, '');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  if (process.env.GATE_HOLD_START) while (!existsSync(process.env.GATE_DIR + '/release')) Atomics.wait(nap, 0, 0, 20);
}
`;

withServers('stage execution on a Redis queue', () => {
  let redis: RedisServer;
  let nginx: Nginx;
  let base: string;
  const workers: Worker[] = [];
  let n = 0;

  const secretBefore = process.env.PIPELINE_QUEUE_SECRET;

  beforeAll(async () => {
    [redis, nginx] = await Promise.all([startRedis(), startNginx()]);
    base = await mkdtemp(join(tmpdir(), 'queue-'));
    // Every coordinator and worker started here shares it, unless a test says otherwise.
    process.env.PIPELINE_QUEUE_SECRET = SECRET;
  }, 120_000);
  afterEach(async () => {
    await Promise.all(workers.splice(0).map(stopWorker));
  });
  afterAll(async () => {
    if (secretBefore === undefined) delete process.env.PIPELINE_QUEUE_SECRET;
    else process.env.PIPELINE_QUEUE_SECRET = secretBefore;
    await Promise.all([redis?.stop(), nginx?.stop()]);
    if (base) await rm(base, { recursive: true, force: true });
  });

  /** A fresh test area: a queue name and remote prefix of its own, a signals dir, and workspaces. */
  async function area(pipeline: (signals: string) => string, remoteBase = nginx.url) {
    n++;
    const dir = join(base, `t${n}`);
    const signals = join(dir, 'signals');
    await mkdir(signals, { recursive: true });
    const remote = `${remoteBase}t${n}/`;
    const yaml = `remote:\n  url: ${remote}\n${pipeline(signals)}`;
    const make = async (name: string, text = yaml) => {
      const ws = join(dir, name);
      await mkdir(ws, { recursive: true });
      await writeFile(join(ws, 'pipeline.yaml'), text);
      return ws;
    };
    const queue = `${redis.url}?name=t${n}`;
    return { dir, signals, remote, queue, queueName: `t${n}`, make, coordinator: await make('coordinator') };
  }

  async function startWorker(ws: string, name: string, queue: string, options: { env?: Record<string, string>; args?: string[] } = {}): Promise<Worker> {
    const child = spawn(process.execPath, [CLI, 'worker', '--queue', queue, '--name', name, '--lock-seconds', '3', ...(options.args ?? [])], {
      cwd: ws,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    for (const s of [child.stdout!, child.stderr!]) s.setEncoding('utf8').on('data', (d: string) => (output += d));
    const worker: Worker = { name, child, output: () => output, exited: once(child, 'exit') };
    workers.push(worker);
    await until(
      `worker ${name} to start`,
      async () => output.includes('waiting for stages') || (child.exitCode !== null && Promise.reject(new Error(`worker ${name} exited: ${output}`))),
    );
    return worker;
  }

  async function stopWorker(w: Worker): Promise<void> {
    if (w.child.exitCode === null && w.child.signalCode === null) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
  }

  const coordinate = (ws: string, queue: string, extra: string[] = [], more: Partial<CliOptions> = {}) =>
    runCli(['run', '--executor', 'queue', '--queue', queue, ...extra], { cwd: ws, ...more });

  /** stage → `ran`/`cached`/... and the worker named on its line. */
  function outcomes(r: CliResult): Record<string, string> {
    const found: Record<string, string> = {};
    for (const line of r.stdout.split('\n')) {
      const m = /^(cached|ran|failed|skipped|aborted)\s+(\S+(?: \S+)?)\s+\S+\s*(?:\(on (\w+))?/.exec(line);
      if (m && !/^\d/.test(m[2]!)) found[m[2]!.replace(/\s+\d.*$/, '')] = m[3] ? `${m[1]} on ${m[3]}` : m[1]!;
    }
    return found;
  }

  const GATED = (signals: string) => `
stages:
  prep:
    cmd: mkdir -p out && seq 1 1000 > out/nums.txt && echo prep >> ${signals}/ran
    outs: [out]
  slow:
    cmd: echo "$PIPELINE_WORKER_CHILD" >> ${signals}/started && while [ ! -e ${signals}/go ]; do sleep 0.05; done && awk '{s+=$1} END {print s}' out/nums.txt > slow.txt
    deps: [out]
    outs: [slow.txt]
`;

  test('two workers compute the pipeline; the coordinator ends with the results and records who ran what', async () => {
    const a = await area(GATED);
    await writeFile(join(a.signals, 'go'), '');
    await Promise.all([startWorker(await a.make('hostA'), 'wA', a.queue), startWorker(await a.make('hostB'), 'wB', a.queue)]);
    const r = await coordinate(a.coordinator, a.queue);
    expect(r).toMatchObject({ code: 0 });
    expect(Object.keys(outcomes(r)).sort()).toEqual(['prep', 'slow']);
    expect(outcomes(r).slow).toMatch(/^ran on w[AB]$/);
    expect(await readFile(join(a.coordinator, 'slow.txt'), 'utf8')).toBe('500500\n');
    const runs = JSON.parse((await runCli(['runs', '--json', '--limit', '1'], { cwd: a.coordinator })).stdout) as {
      queue: string;
      stages: { stage: string; worker?: string }[];
    }[];
    expect(runs[0]!.queue).toContain('redis://127.0.0.1');
    expect(runs[0]!.stages.map((s) => s.worker)).toEqual([expect.stringMatching(/^w[AB]$/), expect.stringMatching(/^w[AB]$/)]);
    expect((await runCli(['runs', '--limit', '1'], { cwd: a.coordinator })).stdout).toMatch(/ran\s+slow\s+\S+\s+on w[AB]/);
    // The coordinator's store is a store like any other: verify trusts it, and a local rerun computes nothing.
    expect(await runCli(['verify'], { cwd: a.coordinator })).toMatchObject({ code: 0 });
    const again = await runCli(['run'], { cwd: a.coordinator });
    expect(outcomes(again)).toEqual({ prep: 'cached', slow: 'cached' });
    // --force recomputes on a worker, even one that has the result in its own store.
    const forced = await coordinate(a.coordinator, a.queue, ['--force', 'slow']);
    expect(outcomes(forced)).toEqual({ prep: 'cached', slow: expect.stringMatching(/^ran on w[AB]$/) });
    expect(await linesOf(join(a.signals, 'started'))).toHaveLength(2);
  }, 120_000);

  test("stages in flight are not capped by the coordinator's cores: three independent stages run on three workers at once", async () => {
    const a = await area(
      (signals) => `
stages:
${['a', 'b', 'c']
  .map(
    (n) => `  ${n}:
    cmd: echo "$PIPELINE_WORKER_CHILD" >> ${signals}/started && while [ $(sort -u ${signals}/started | wc -l) -lt 3 ]; do sleep 0.05; done && echo ${n} > ${n}.txt
    outs: [${n}.txt]
`,
  )
  .join('')}`,
    );
    await Promise.all(['wA', 'wB', 'wC'].map(async (w) => startWorker(await a.make(`host${w}`), w, a.queue)));
    const r = await coordinate(a.coordinator, a.queue);
    expect(r).toMatchObject({ code: 0 });
    expect(new Set(await linesOf(join(a.signals, 'started')))).toEqual(new Set(['wA', 'wB', 'wC']));
  }, 120_000);

  test('a worker killed mid-stage: the stage is retried on the other worker and the run completes', async () => {
    const a = await area(GATED);
    const wA = await startWorker(await a.make('hostA'), 'wA', a.queue);
    const run = coordinate(a.coordinator, a.queue);
    const first = await until('the slow stage to start', async () => (await linesOf(join(a.signals, 'started')))[0]);
    // The other worker joins only now, so the first attempt is surely wA's.
    expect(first).toBe('wA');
    wA.child.kill('SIGKILL');
    await wA.exited;
    // Its orphaned stage process notices and stops itself (recording the run as interrupted).
    const hostA = join(a.dir, 'hostA');
    await until("the killed worker's stage to stop", async () => {
      const runs = await runCli(['runs', '--json', '--limit', '1'], { cwd: hostA });
      return (JSON.parse(runs.stdout || '[]') as { outcome: string }[])[0]?.outcome === 'interrupted';
    });
    await startWorker(await a.make('hostB'), 'wB', a.queue);
    await until('the stage to be retried on wB', async () => (await linesOf(join(a.signals, 'started'))).includes('wB'));
    await writeFile(join(a.signals, 'go'), '');
    const r = await run;
    expect(r).toMatchObject({ code: 0 });
    expect(outcomes(r).slow).toBe('ran on wB');
    expect(await readFile(join(a.coordinator, 'slow.txt'), 'utf8')).toBe('500500\n');
    expect(await linesOf(join(a.signals, 'started'))).toEqual(['wA', 'wB']);
  }, 120_000);

  test('a worker SIGTERMed mid-stage stops within seconds: the stage is recorded as interrupted, its job goes back to the queue and another worker completes the run', async () => {
    const a = await area(GATED);
    const metricsFile = join(a.dir, 'wA.prom');
    const wA = await startWorker(await a.make('hostA'), 'wA', a.queue, { args: ['--metrics-port', '0', '--metrics-file', metricsFile] });
    expect(wA.output()).toMatch(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const run = coordinate(a.coordinator, a.queue);
    expect(await until('the slow stage to start', async () => (await linesOf(join(a.signals, 'started')))[0])).toBe('wA');
    wA.child.kill('SIGTERM');
    // Far above "a few seconds", far below a stage that would have to finish first (it never does here).
    const exit = await Promise.race([wA.exited, new Promise((resolve) => setTimeout(() => resolve('hung'), 20_000).unref())]);
    expect(exit).toEqual([0, null]);
    expect(wA.output()).toMatch(/slow \S+: stopped; its job goes back to the queue/);
    const [record] = JSON.parse((await runCli(['runs', '--json', '--limit', '1'], { cwd: join(a.dir, 'hostA') })).stdout) as { outcome: string }[];
    expect(record!.outcome).toBe('interrupted');
    // Its metrics textfile ends with the job it handed back and the queue's depth.
    const metrics = await readFile(metricsFile, 'utf8');
    expect(metrics).toMatch(/^pipeline_worker_jobs_total\{outcome="requeued"\} 1$/m);
    expect(metrics).toMatch(/^pipeline_queue_jobs\{state="wait"\} \d+$/m);
    // The job was handed back (not failed): the next worker takes it and the run completes.
    await startWorker(await a.make('hostB'), 'wB', a.queue);
    await until('the stage to be retried on wB', async () => (await linesOf(join(a.signals, 'started'))).includes('wB'));
    await writeFile(join(a.signals, 'go'), '');
    const r = await run;
    expect(r).toMatchObject({ code: 0 });
    expect(outcomes(r).slow).toBe('ran on wB');
  }, 120_000);

  test("a stage that fails on a worker fails the run once, with the worker's error, and is not retried", async () => {
    const a = await area(
      (signals) => `
stages:
  bad:
    cmd: echo "$PIPELINE_WORKER_CHILD" >> ${signals}/tries && echo "no such dataset" >&2 && exit 3
    outs: [never.txt]
`,
    );
    await Promise.all([startWorker(await a.make('hostA'), 'wA', a.queue), startWorker(await a.make('hostB'), 'wB', a.queue)]);
    const r = await coordinate(a.coordinator, a.queue);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: stage bad failed on worker w[AB]: .*(exit|code) 3\n  last output on w[AB]:\n    no such dataset\n/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await linesOf(join(a.signals, 'tries'))).toHaveLength(1);
    // Asking again (say, after fixing the data) runs it again rather than repeating the old failure.
    const again = await coordinate(a.coordinator, a.queue);
    expect(again.code).toBe(1);
    expect(await linesOf(join(a.signals, 'tries'))).toHaveLength(2);
  }, 120_000);

  test('a coordinator killed and restarted resumes: finished stages are not redone, the running one is joined', async () => {
    const a = await area(GATED);
    await startWorker(await a.make('hostA'), 'wA', a.queue);
    // This test's environment (with the queue secret), not the test runner's own.
    const first = spawn(process.execPath, [CLI, 'run', '--executor', 'queue', '--queue', a.queue], {
      cwd: a.coordinator,
      env: { ...process.env },
      stdio: 'ignore',
    });
    const firstExited = once(first, 'exit');
    await until('the slow stage to start', async () => (await linesOf(join(a.signals, 'started'))).length === 1);
    first.kill('SIGKILL');
    await firstExited;
    let stderr = '';
    const second = runCli(['--verbose', 'run', '--executor', 'queue', '--queue', a.queue], {
      cwd: a.coordinator,
      onOutput: (chunk) => (stderr += chunk),
    });
    await until('the restarted coordinator to wait on the slow stage', async () => stderr.includes('slow: queued on'));
    await writeFile(join(a.signals, 'go'), '');
    const r = await second;
    expect(r).toMatchObject({ code: 0 });
    expect(outcomes(r)).toEqual({ prep: 'cached', slow: 'ran on wA' });
    expect(await linesOf(join(a.signals, 'started'))).toEqual(['wA']);
    expect(await linesOf(join(a.signals, 'ran'))).toEqual(['prep']);
    expect(await readFile(join(a.coordinator, 'slow.txt'), 'utf8')).toBe('500500\n');
  }, 120_000);

  test('a sweep of 4 experiments spreads over both workers; the shared stage is computed once', async () => {
    const a = await area(
      (signals) => `
params:
  scale: 1
  offset: 0
stages:
  prep:
    cmd: mkdir -p out && seq 1 100 > out/nums.txt && echo prep >> ${signals}/ran
    outs: [out]
  fit:
    cmd: echo "$PIPELINE_WORKER_CHILD" >> ${signals}/started && while [ $(sort -u ${signals}/started | wc -l) -lt 2 ]; do sleep 0.05; done && awk -v k="\${params.scale}" -v b="\${params.offset}" '{s+=$1*k+b} END {print s}' out/nums.txt > fit.txt
    deps: [out]
    outs: [fit.txt]
`,
    );
    await Promise.all([startWorker(await a.make('hostA'), 'wA', a.queue), startWorker(await a.make('hostB'), 'wB', a.queue)]);
    const r = await coordinate(a.coordinator, a.queue, ['--matrix', 'params.scale=1,2', '--matrix', 'params.offset=0,1']);
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toContain('exp4: params.scale=2 params.offset=1');
    expect(r.stdout).toMatch(/params\.scale\s+params\.offset\s+outcome\s+run/);
    expect(await linesOf(join(a.signals, 'ran'))).toEqual(['prep']);
    const started = await linesOf(join(a.signals, 'started'));
    expect(started).toHaveLength(4);
    expect(new Set(started)).toEqual(new Set(['wA', 'wB']));
    // Each experiment has its own run record with its assignments and its own fit result.
    const runs = JSON.parse((await runCli(['runs', '--json', '--limit', '4'], { cwd: a.coordinator })).stdout) as {
      experiment: { assignments: Record<string, string> };
      stages: { stage: string; key: string }[];
    }[];
    expect(runs.map((x) => `${x.experiment.assignments['params.scale']},${x.experiment.assignments['params.offset']}`).sort()).toEqual([
      '1,0',
      '1,1',
      '2,0',
      '2,1',
    ]);
    const fitKeys = runs.map((x) => x.stages.find((s) => s.stage === 'fit')!.key);
    expect(new Set(fitKeys).size).toBe(4);
    const sums: string[] = [];
    for (const key of fitKeys) {
      const m = JSON.parse(await readFile(join(a.coordinator, 'artifacts', 'manifests', `${key}.json`), 'utf8')) as {
        files: Record<string, { digest: string }>;
      };
      const d = m.files['fit.txt']!.digest;
      sums.push((await readFile(join(a.coordinator, 'artifacts', 'objects', d.slice(0, 2), d.slice(2)), 'utf8')).trim());
    }
    expect(sums.sort()).toEqual(['10100', '5050', '5150', '10200'].sort());
  }, 120_000);

  test('the reference pipeline swept over train.batch_size on the workers: real training, one shared fetch/decode/normalize', async () => {
    const source = await cifarSource({ perClassTrain: 20, perClassTest: 5 });
    const a = await area(() => '');
    const reference = (await readFile(REPO_PIPELINE, 'utf8')).replace(/^stages:/m, `remote:\n  url: ${a.remote}\nstages:`);
    const hosts = [a.coordinator, await a.make('hostA', reference), await a.make('hostB', reference)];
    await writeFile(join(a.coordinator, 'pipeline.yaml'), reference);
    // Each checkout has the same local data folder (fetch reads it by path).
    for (const ws of hosts) await extractSubset(source.archive, join(ws, 'images'), 20, 5);
    await Promise.all([startWorker(hosts[1]!, 'wA', a.queue), startWorker(hosts[2]!, 'wB', a.queue)]);
    const r = await runCli(
      [
        '--backend',
        'wasm',
        'run',
        'evaluate',
        '--executor',
        'queue',
        '--queue',
        a.queue,
        '--set',
        'fetch.url=images',
        '--unset',
        'fetch.md5',
        '--set',
        'train.epochs=1',
        '--matrix',
        'train.batch_size=32,64',
      ],
      { cwd: a.coordinator },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r).toMatchObject({ code: 0 });
    // fetch, decode and normalize once for both experiments; train and evaluate per experiment, all on the workers.
    for (const stage of ['fetch', 'decode', 'normalize']) expect(r.stdout.match(new RegExp(`^ran\\s+exp\\d ${stage}\\s.*on w[AB]`, 'gm'))).toHaveLength(1);
    for (const stage of ['train', 'evaluate']) expect(r.stdout.match(new RegExp(`^ran\\s+exp\\d ${stage}\\s.*on w[AB]`, 'gm'))).toHaveLength(2);
    const table = r.stdout.split('\n').filter((l) => /^exp[12]\s+(32|64)\s+\d\.\d{4}\s+\d+\.\d{4}\s+ok\s/.test(l));
    expect(table).toHaveLength(2);
    // The coordinator holds both experiments' evaluations, as it would after a local run.
    const runs = JSON.parse((await runCli(['runs', '--json', '--limit', '2'], { cwd: a.coordinator })).stdout) as {
      stages: { stage: string; key: string; worker?: string }[];
    }[];
    const evalKeys = runs.map((x) => x.stages.find((st) => st.stage === 'evaluate')!.key);
    expect(new Set(evalKeys).size).toBe(2);
    for (const key of evalKeys) expect(existsSync(join(a.coordinator, 'artifacts', 'manifests', `${key}.json`))).toBe(true);
    expect(await runCli(['verify'], { cwd: a.coordinator })).toMatchObject({ code: 0 });
  }, 600_000);

  test('a scheduled retrain runs its stages on the cluster', async () => {
    const a = await area((signals) => `${GATED(signals)}schedule:\n  nightly:\n    cron: "0 3 * * *"\n`);
    await writeFile(join(a.signals, 'go'), '');
    await startWorker(await a.make('hostA'), 'wA', a.queue);
    const r = await runCli(['schedule', '--once', '--executor', 'queue', '--queue', a.queue], { cwd: a.coordinator });
    expect(r).toMatchObject({ code: 0 });
    const runs = JSON.parse((await runCli(['runs', '--json', '--limit', '1'], { cwd: a.coordinator })).stdout) as {
      trigger: { entry: string; result: string };
      stages: { worker?: string }[];
    }[];
    expect(runs[0]!.trigger).toMatchObject({ entry: 'nightly', result: 'ran' });
    expect(runs[0]!.stages.map((s) => s.worker)).toEqual(['wA', 'wA']);
    expect(await readFile(join(a.coordinator, 'slow.txt'), 'utf8')).toBe('500500\n');
  }, 120_000);

  test('a worker whose checkout differs refuses the job with both keys instead of computing something else', async () => {
    const a = await area(GATED);
    await writeFile(join(a.signals, 'go'), '');
    const other = (await readFile(join(a.coordinator, 'pipeline.yaml'), 'utf8')).replace('seq 1 1000', 'seq 1 999');
    await startWorker(await a.make('hostA', other), 'wA', a.queue);
    const r = await coordinate(a.coordinator, a.queue);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /stage prep failed on worker wA: stage prep: this checkout computes cache key [0-9a-f]{12} where the coordinator has [0-9a-f]{12}/,
    );
  }, 120_000);

  test('bad queue settings: one clear error, exit 2, nothing written', async () => {
    const a = await area(GATED);
    const noRemote = join(a.dir, 'noremote');
    await mkdir(noRemote);
    await writeFile(join(noRemote, 'pipeline.yaml'), GATED(a.signals));
    const cases: [string, string[], RegExp][] = [
      [noRemote, ['run', '--executor', 'queue', '--queue', a.queue], /needs a remote cache/],
      [a.coordinator, ['run', '--executor', 'queue'], /needs --queue redis:\/\/HOST:PORT/],
      [a.coordinator, ['run', '--executor', 'queue', '--queue', 'http://x'], /unsupported http:\/\//],
      [a.coordinator, ['run', '--queue', a.queue], /--queue is for --executor queue/],
      [a.coordinator, ['run', '--matrix', 'params.lr'], /expected STAGE\.PARAM=V1,V2/],
      [a.coordinator, ['run', '--matrix', 'prep.x=1,2'], /only uses: stages have params/],
    ];
    for (const [cwd, args, message] of cases) {
      const r = await runCli(args, { cwd });
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(message);
      expect(existsSync(join(cwd, 'artifacts'))).toBe(false);
    }
    // A Redis nobody listens on: the same, without hanging.
    const down = await runCli(['run', '--executor', 'queue', '--queue', `redis://127.0.0.1:${await (await import('./helpers/servers.js')).freePort()}`], {
      cwd: a.coordinator,
    });
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/);
    expect(await runCli(['run', '--executor', 'queue', '--queue', a.queue, '--queue-timeout', 'soon'], { cwd: a.coordinator })).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--queue-timeout.*expected a duration/),
    });
    expect(await runCli(['run', '--queue-timeout', '10s'], { cwd: a.coordinator })).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--queue-timeout is for --executor queue/),
    });
  }, 120_000);

  test('PIPELINE_QUEUE_SECRET is required by coordinators (run, schedule) and workers: one clear error, exit 2', async () => {
    const a = await area((signals) => `${GATED(signals)}schedule:\n  nightly:\n    cron: "0 3 * * *"\n`);
    const host = await a.make('hostA');
    for (const secret of ['', 'short']) {
      const env = { PIPELINE_QUEUE_SECRET: secret };
      const why = secret ? /PIPELINE_QUEUE_SECRET is too short/ : /needs PIPELINE_QUEUE_SECRET/;
      for (const [cwd, args] of [
        [a.coordinator, ['run', '--executor', 'queue', '--queue', a.queue]],
        [a.coordinator, ['schedule', '--once', '--executor', 'queue', '--queue', a.queue]],
        [host, ['worker', '--queue', a.queue]],
      ] as const) {
        const r = await runCli([...args], { cwd, env });
        expect({ args, code: r.code }).toEqual({ args, code: 2 });
        expect(r.stderr).toMatch(why);
        expect(existsSync(join(cwd, 'artifacts'))).toBe(false);
      }
    }
    // --help says so.
    for (const command of ['run', 'schedule', 'worker'])
      expect((await runCli([command, '--help'], { cwd: a.coordinator })).stdout).toContain('PIPELINE_QUEUE_SECRET');
  }, 120_000);

  test('a worker with another PIPELINE_QUEUE_SECRET refuses the jobs: the run fails once, saying why, and nothing runs', async () => {
    const a = await area(GATED);
    await writeFile(join(a.signals, 'go'), '');
    const w = await startWorker(await a.make('hostA'), 'wA', a.queue, { env: { PIPELINE_QUEUE_SECRET: 'another-secret-of-32-characters!' } });
    const r = await coordinate(a.coordinator, a.queue);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stage prep failed on worker wA: refused: its signature does not match .*PIPELINE_QUEUE_SECRET/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(w.output()).toMatch(/refused job prep-[0-9a-f]{12}.*: its signature does not match/);
    expect(await linesOf(join(a.signals, 'ran'))).toEqual([]);
  }, 120_000);

  test('no worker takes the jobs: the coordinator warns (queue, connected workers), then fails after --queue-timeout', async () => {
    const a = await area((signals) => `${GATED(signals)}schedule:\n  nightly:\n    cron: "0 3 * * *"\n`);
    const r = await coordinate(a.coordinator, a.queue, ['--queue-timeout', '3s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`warning: no worker has taken a job from queue ${a.queueName} on redis://127\\.0\\.0\\.1:\\d+ for \\d+s; 0 workers connected`),
    );
    expect(r.stderr).toMatch(
      new RegExp(`error: stage prep: no worker took its job from queue ${a.queueName} on redis://\\S+ within 3s \\(--queue-timeout\\); 0 workers connected`),
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // A scheduled run gives up the same way (and is recorded as failed).
    const s = await runCli(['schedule', '--once', '--executor', 'queue', '--queue', a.queue, '--queue-timeout', '2s'], { cwd: a.coordinator });
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(/no worker took its job from queue .* within 2s \(--queue-timeout\)/);
  }, 120_000);

  test('a stage computed by one worker and only found on the remote by another is credited to the one that computed it', async () => {
    const a = await area(GATED);
    const wA = await startWorker(await a.make('hostA'), 'wA', a.queue);
    const run = coordinate(a.coordinator, a.queue);
    await until('wA to start the slow stage', async () => (await linesOf(join(a.signals, 'started'))).includes('wA'));
    // wA stops renewing its job's lock (as if cut off), while its stage process finishes and pushes.
    wA.child.kill('SIGSTOP');
    await writeFile(join(a.signals, 'go'), '');
    const manifests = join(nginx.dataDir, a.queueName, 'manifests');
    await until('the slow result on the remote', async () => existsSync(manifests) && (await readdir(manifests)).length === 2);
    // wB takes the stalled job and finds the result already there.
    await startWorker(await a.make('hostB'), 'wB', a.queue);
    const r = await run;
    expect(r).toMatchObject({ code: 0 });
    expect(outcomes(r).slow).toBe('ran on wA');
    const runs = JSON.parse((await runCli(['runs', '--json', '--limit', '1'], { cwd: a.coordinator })).stdout) as {
      stages: { stage: string; worker?: string }[];
    }[];
    expect(runs[0]!.stages.find((s) => s.stage === 'slow')!.worker).toBe('wA');
    expect(await linesOf(join(a.signals, 'started'))).toEqual(['wA']);
  }, 120_000);

  const KILLABLE = (signals: string) => `
stages:
  prep:
    cmd: mkdir -p out && seq 1 1000 > out/nums.txt
    outs: [out]
  slow:
    cmd: echo $$ > ${signals}/computing && while [ ! -e ${signals}/go ]; do sleep 0.05; done && awk '{s+=$1} END {print s}' out/nums.txt > slow.txt
    deps: [out]
    outs: [slow.txt]
`;

  test.each(['starting', 'pulling its inputs', 'computing', 'pushing its result'])(
    'a worker SIGKILLed while its stage process is %s: that process stops too',
    async (phase) => {
      const proxy = await HoldingProxy.start(nginx.origin);
      let coordinator: ChildProcess | undefined;
      try {
        const a = await area(KILLABLE, proxy.url('/cache/'));
        if (phase.startsWith('pushing')) await writeFile(join(a.signals, 'go'), '');
        // The job's one input is on the remote already.
        expect(await runCli(['run', 'prep', '--push'], { cwd: a.coordinator })).toMatchObject({ code: 0 });
        const preload = join(a.dir, 'gate.mjs');
        await writeFile(preload, GATE_PRELOAD);
        const env: Record<string, string> = { NODE_OPTIONS: `--import ${pathToFileURL(preload).href}`, GATE_DIR: a.signals };
        if (phase === 'starting') env.GATE_HOLD_START = '1';
        const w = await startWorker(await a.make('hostA'), 'wA', a.queue, { env });
        let arrived = false;
        if (phase.startsWith('pulling')) void proxy.holdNext('GET', /\/objects\//).then(() => (arrived = true));
        if (phase.startsWith('pushing')) void proxy.holdNext('PUT', /\/objects\//).then(() => (arrived = true));
        const run = coordinate(a.coordinator, a.queue, ['slow'], { onSpawn: (c) => (coordinator = c) });
        const file = await until('the stage process to start', async () => (await readdir(a.signals)).find((f) => f.startsWith('child-')));
        const pid = Number(file.slice('child-'.length));
        if (phase.startsWith('pulling') || phase.startsWith('pushing')) await until(`the stage process to be ${phase}`, async () => arrived);
        let shell: number | undefined;
        if (phase === 'computing') shell = Number(await until('the command to run', async () => (await linesOf(join(a.signals, 'computing')))[0]));
        expect(running(pid)).toBe(true);
        w.child.kill('SIGKILL');
        await w.exited;
        if (phase === 'starting') await writeFile(join(a.signals, 'release'), '');
        await until(`the stage process ${pid} to stop`, async () => !running(pid));
        if (shell !== undefined) await until(`its command ${shell} to stop`, async () => !running(shell));
        expect(await linesOf(join(a.signals, 'go'))).toEqual([]); // nothing released it meanwhile
        coordinator?.kill('SIGKILL');
        await run;
      } finally {
        coordinator?.kill('SIGKILL');
        await proxy.close();
      }
    },
    120_000,
  );

  describe('forged jobs (anyone who can write to Redis)', () => {
    const FORGE = (signals: string) => `
params:
  n: 1000
stages:
  prep:
    cmd: mkdir -p out && seq 1 \${params.n} > out/nums.txt && echo "$PIPELINE_WORKER_CHILD" >> ${signals}/prep
    outs: [out]
`;
    const EVIL = (signals: string) => `
stages:
  pwn:
    cmd: echo owned > ${signals}/pwned-$PIPELINE_WORKER_CHILD
    outs: [never.txt]
`;
    let forgeArea = 0;
    let fixture:
      Promise<{ a: Awaited<ReturnType<typeof area>>; host: string; worker: Worker; queue: Queue; events: QueueEvents; foreign: HoldingProxy }> | undefined;
    const setUp = () =>
      (fixture ??= (async () => {
        const a = await area(FORGE);
        forgeArea = n;
        const host = await a.make('hostF');
        // Where a forged config could point: outside the checkout, through a symlink, into the
        // store (as a fetch stage's output would be), into a cmd stage's outs.
        for (const rel of ['../evil/pipeline.yaml', 'artifacts/views/fetched/pipeline.yaml', 'out/evil.yaml']) {
          await mkdir(join(host, rel, '..'), { recursive: true });
          await writeFile(join(host, rel), EVIL(a.signals));
        }
        await (await import('node:fs/promises')).symlink('../evil/pipeline.yaml', join(host, 'linked.yaml'));
        const worker = await startWorker(host, 'wF', a.queue, { env: { PIPELINE_REMOTE_TOKEN: 'worker-token' } });
        workers.splice(workers.indexOf(worker), 1); // shared by the tests below; stopped after them
        const connection = { host: '127.0.0.1', port: redis.port };
        const queue = new Queue(a.queueName, { connection });
        const events = new QueueEvents(a.queueName, { connection });
        await events.waitUntilReady();
        return { a, host, worker, queue, events, foreign: await HoldingProxy.start() };
      })());
    afterAll(async () => {
      if (!fixture) return;
      const f = await fixture;
      await Promise.all([f.events.close(), f.queue.close(), f.foreign.close(), stopWorker(f.worker)]);
    });

    /** The cache key the worker's checkout computes for `stage` of `config` (what a forger can compute too). */
    async function keyOf(host: string, config: string, stage: string): Promise<string> {
      const r = await runCli(['-c', config, 'status', '--json', stage], { cwd: host });
      return (JSON.parse(r.stdout) as { stages: { stage: string; key: string }[] }).stages.find((s) => s.stage === stage)!.key;
    }

    let forged = 0;
    /** Adds a job as anyone with access to Redis can, and waits until the worker is done with it. */
    async function submit(data: Record<string, unknown>) {
      const { queue, events } = await setUp();
      const job = (await queue.add(String(data.stage), data, { jobId: `forged-${++forged}`, attempts: 3 })) as Job;
      let result: { state: 'completed' | 'failed'; reason?: string };
      try {
        await job.waitUntilFinished(events, 60_000);
        result = { state: 'completed' };
      } catch (e) {
        result = { state: 'failed', reason: (e as Error).message };
      }
      return { ...result, attempts: (await queue.getJob(job.id!))!.attemptsMade };
    }

    // As a forger would write it, with the field older coordinators sent: the remote to use.
    const job = (over: Record<string, unknown>) => ({
      remote: `${nginx.url}t${forgeArea}/`,
      stage: 'prep',
      key: '0'.repeat(64),
      config: 'pipeline.yaml',
      sets: [],
      unset: [],
      runId: 'forged',
      coordinator: 'mallory',
      ...over,
    });

    test.each([
      ['a pipeline file outside the checkout', '../evil/pipeline.yaml', /outside this checkout/],
      ['a pipeline file reached through a symlink out of the checkout', 'linked.yaml', /outside this checkout/],
      ['a pipeline file inside the store (what a fetch stage downloaded)', 'artifacts/views/fetched/pipeline.yaml', /inside the store/],
      ["a pipeline file inside a stage's outputs", 'out/evil.yaml', /inside the outputs of stage prep/],
    ])('signed, naming %s: refused, nothing runs', async (_what, config, why) => {
      const { a, host, worker } = await setUp();
      const key = await keyOf(host, config, 'pwn');
      const r = await submit(signed(job({ stage: 'pwn', key, config }), a.queueName));
      expect(r).toMatchObject({ state: 'failed', attempts: 1 });
      expect(r.reason).toMatch(/^on worker wF: refused: /);
      expect(r.reason).toMatch(why);
      expect(worker.output()).toMatch(new RegExp(`refused job forged-${forged} .*${why.source}`));
      expect((await readdir(a.signals)).filter((f) => f.startsWith('pwned'))).toEqual([]);
    });

    test.each([
      ['an unknown stage', { stage: 'nosuch' }, /no stage 'nosuch' in pipeline\.yaml/],
      ["stage '--help'", { stage: '--help' }, /no stage '--help'/],
      ['an undeclared param', { sets: ['params.nosuch=1'] }, /--set params\.nosuch=1: pipeline\.yaml declares no param 'nosuch'/],
      ['a param of a stage that has none', { sets: ['prep.n=5'] }, /--set prep\.n=5: .*cmd: stage/],
      ['an unknown backend', { backend: 'bogus' }, /backend 'bogus'/],
      ['a malformed job', { sets: 'params.n=5' }, /not a stage job/],
    ])('signed, with %s: refused before anything starts', async (_what, over, why) => {
      const { a, host, worker } = await setUp();
      const started = (worker.output().match(/: started/g) ?? []).length;
      const r = await submit(signed(job({ key: await keyOf(host, 'pipeline.yaml', 'prep'), ...over }), a.queueName));
      expect(r).toMatchObject({ state: 'failed', attempts: 1 });
      expect(r.reason).toMatch(/^on worker wF: refused: /);
      expect(r.reason).toMatch(why);
      expect((worker.output().match(/: started/g) ?? []).length).toBe(started);
    });

    test.each([
      ['unsigned', (d: Record<string, unknown>, q: string) => (void q, d), /unsigned/],
      ['signed with another secret', (d: Record<string, unknown>, q: string) => signed(d, q, 'not-the-secret-0123456789abcdef'), /signature does not match/],
      ['signed for another queue', (d: Record<string, unknown>) => signed(d, 'another-queue'), /signature does not match/],
      ['altered after signing', (d: Record<string, unknown>, q: string) => ({ ...signed(d, q), sets: ['params.n=5'] }), /signature does not match/],
    ])('a valid job %s: refused, logged on the worker, not retried, nothing runs', async (_what, sign, why) => {
      const { a, host, worker } = await setUp();
      const key = await keyOf(host, 'pipeline.yaml', 'prep');
      const r = await submit(sign(job({ key }), a.queueName));
      expect(r).toMatchObject({ state: 'failed', attempts: 1 });
      expect(r.reason).toMatch(/^on worker wF: refused: /);
      expect(r.reason).toMatch(why);
      expect(worker.output()).toMatch(new RegExp(`refused job forged-${forged}.*${why.source}`));
      expect(await linesOf(join(a.signals, 'prep'))).toEqual([]);
    });

    test('signed, naming another remote: the worker uses its own remote, and its credentials go nowhere else', async () => {
      const { a, host, foreign } = await setUp();
      const key = await keyOf(host, 'pipeline.yaml', 'prep');
      const r = await submit(signed(job({ key, remote: foreign.url('/stolen/') }), a.queueName));
      expect(r).toMatchObject({ state: 'completed' });
      expect(foreign.requests).toEqual([]);
      expect(existsSync(join(nginx.dataDir, a.queueName, 'manifests', `${key}.json`))).toBe(true);
      expect(await linesOf(join(a.signals, 'prep'))).toEqual(['wF']);
    });
  });
});

describe('run --matrix on this machine', () => {
  test('the cross product runs as separate experiments; shared stages once; the workspace and links stay', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sweep-'));
    try {
      await writeFile(
        join(dir, 'pipeline.yaml'),
        `params:
  scale: 1
stages:
  prep:
    cmd: mkdir -p out && seq 1 100 > out/nums.txt && echo prep >> ran.log
    outs: [out]
  fit:
    cmd: awk -v k="\${params.scale}" '{s+=$1*k} END {print s}' out/nums.txt > fit.txt && echo "fit \${params.scale}" >> ran.log
    deps: [out]
    outs: [fit.txt]
`,
      );
      expect(await runCli(['run'], { cwd: dir })).toMatchObject({ code: 0 });
      const r = await runCli(['run', '--jobs', '2', '--matrix', 'params.scale=1,2,3'], { cwd: dir });
      expect(r).toMatchObject({ code: 0 });
      expect(r.stdout).toMatch(/^exp2: params\.scale=2$/m);
      expect(r.stdout).toMatch(/^cached\s+exp1 fit/m); // the pipeline's own value: already computed
      expect(r.stdout).toMatch(/^ran\s+exp3 fit/m);
      expect(r.stdout).toContain('(3 experiments)');
      const log = (await readFile(join(dir, 'ran.log'), 'utf8')).split('\n').filter(Boolean);
      expect(log.filter((l) => l === 'prep')).toHaveLength(1);
      expect(log.filter((l) => l.startsWith('fit')).sort()).toEqual(['fit 1', 'fit 2', 'fit 3']);
      // The pipeline's own result is still what its links and a plain run show.
      const plain = await runCli(['run'], { cwd: dir });
      expect(plain.stdout).toMatch(/^cached\s+fit/m);
      expect(await readFile(join(dir, 'fit.txt'), 'utf8')).toBe('5050\n');
      // Each experiment's result is cached: the same sweep again computes nothing.
      const again = await runCli(['run', '--matrix', 'params.scale=1,2,3'], { cwd: dir });
      expect(again.stdout).not.toMatch(/^ran/m);
      expect(await runCli(['verify'], { cwd: dir })).toMatchObject({ code: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('queue URL and matrix arguments', () => {
  test('redis URLs: host, port, db, queue name, TLS; the password never shown', async () => {
    const { parseQueueUrl } = await import('../engine/queue/target.js');
    const t = parseQueueUrl('rediss://me:s3cret@redis.example:6380/2?name=team-a');
    expect(t.name).toBe('team-a');
    expect(t.connection).toMatchObject({ host: 'redis.example', port: 6380, db: 2, username: 'me', password: 's3cret', tls: {} });
    expect(t.display).not.toContain('s3cret');
    expect(parseQueueUrl('redis://localhost', { PIPELINE_QUEUE_PASSWORD: 'pw' }).connection).toMatchObject({ port: 6379, password: 'pw' });
    expect(() => parseQueueUrl('redis://h/abc')).toThrow(/database number/);
    expect(() => parseQueueUrl('redis://h?name=a:b')).toThrow(/queue name/);
  });

  test('job signatures: what the worker checks is what SECURITY.md documents; any change, another secret or queue breaks it', async () => {
    const { signJob, signatureProblem, queueSecretFrom } = await import('../engine/queue/jobs.js');
    const job = { stage: 'train', key: 'ab'.repeat(32), config: 'pipeline.yaml', sets: ['train.lr=0.1'], unset: [], runId: 'r1', coordinator: 'h:1' };
    const data = signJob(job, 'q', SECRET) as unknown as Record<string, unknown>;
    expect(data).toEqual(signed(job, 'q'));
    expect(signatureProblem(data, 'q', SECRET)).toBeUndefined();
    // Key order does not matter (canonical JSON); every value does.
    expect(signatureProblem(Object.fromEntries(Object.entries(data).reverse()), 'q', SECRET)).toBeUndefined();
    expect(signatureProblem({ ...data, sets: ['train.lr=1'] }, 'q', SECRET)).toMatch(/does not match/);
    expect(signatureProblem({ ...data, extra: 1 }, 'q', SECRET)).toMatch(/does not match/);
    expect(signatureProblem(data, 'other', SECRET)).toMatch(/does not match/);
    expect(signatureProblem(data, 'q', `${SECRET}x`)).toMatch(/does not match/);
    expect(signatureProblem({ ...data, signature: 'zz' }, 'q', SECRET)).toMatch(/does not match/);
    expect(signatureProblem(job, 'q', SECRET)).toMatch(/unsigned/);
    expect(() => queueSecretFrom({}, 'pipeline worker')).toThrow(/pipeline worker needs PIPELINE_QUEUE_SECRET/);
    expect(() => queueSecretFrom({ PIPELINE_QUEUE_SECRET: 'abc' }, 'x')).toThrow(/too short/);
  });

  test('durations of --queue-timeout', async () => {
    const { positiveDuration } = await import('../cli/stage-lines.js');
    const { describeMs } = await import('../engine/queue/watch.js');
    expect([positiveDuration('90'), positiveDuration('90s'), positiveDuration('10m'), positiveDuration('1.5h'), positiveDuration('250ms')]).toEqual([
      90_000, 90_000, 600_000, 5_400_000, 250,
    ]);
    for (const bad of ['', 'soon', '-5s', '0', '10d']) expect(() => positiveDuration(bad)).toThrow(/expected a duration/);
    expect([3000, 90_000, 600_000, 7_200_000, 1500].map(describeMs)).toEqual(['3s', '90s', '10m', '2h', '1500ms']);
  });

  test('the matrix is the cross product, the last axis varying fastest', async () => {
    const { collectAxis, experimentsOf } = await import('../cli/sweep.js');
    const axes = collectAxis('train.batch_size=64,128', collectAxis('train.optimizer.lr=0.001, 0.0003', []));
    expect(experimentsOf(axes).map((e) => e.sets)).toEqual([
      ['train.optimizer.lr=0.001', 'train.batch_size=64'],
      ['train.optimizer.lr=0.001', 'train.batch_size=128'],
      ['train.optimizer.lr=0.0003', 'train.batch_size=64'],
      ['train.optimizer.lr=0.0003', 'train.batch_size=128'],
    ]);
    expect(() => collectAxis('train.lr=1,,2', [])).toThrow(/empty value/);
    expect(() => collectAxis('train.lr=1,1', [])).toThrow(/repeats/);
    expect(() => collectAxis('train.lr=3', axes.slice(0, 0).concat([{ path: 'train.lr', values: ['1'] }]))).toThrow(/given twice/);
    expect(() => collectAxis('lr=1,2', [])).toThrow(/not STAGE\.PARAM/);
  });

  test("a nested --set (what --matrix passes) goes into the param's default when the file does not write it", async () => {
    const { loadPipeline } = await import('../engine/config/load.js');
    const { builtinKinds } = await import('../stages/index.js');
    const { DEFAULT_OPTIMIZER } = await import('../lib/model/optimizer-spec.js');
    const file = new URL('../../pipeline.yaml', import.meta.url).pathname;
    const swept = await loadPipeline(file, { sets: ['train.optimizer.lr=0.0003'], kinds: builtinKinds });
    expect(swept.stages.get('train')!.params.optimizer).toEqual({ ...DEFAULT_OPTIMIZER, lr: 0.0003 });
    // Only the named stage changes.
    expect(swept.stages.get('train_aug')!.params.optimizer).toEqual(DEFAULT_OPTIMIZER);
  });
});
