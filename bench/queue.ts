// Throughput of the stage queue, measured against a real redis-server and nginx on loopback:
//  1. the queue alone: no-op BullMQ jobs (add, take, complete, completion event) per second, with
//     1 and 8 consumers: the ceiling Redis and BullMQ put on a coordinator;
//  2. the whole path: a pipeline of N independent no-op cmd stages run by `run --executor queue`
//     on W local workers (enqueue, child `pipeline run`, key check, push, completion, pull):
//     stages per second and seconds per stage.
//
//   node dist/bench/queue.js [--jobs 2000] [--stages 40] [--workers 2]
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { startNginx, startRedis } from '../test/helpers/servers.js';
import { parseQueueUrl } from '../engine/queue/target.js';

const CLI = resolve(new URL('../cli/main.js', import.meta.url).pathname);
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const JOBS = arg('jobs', 2000);
const STAGES = arg('stages', 40);
const WORKERS = arg('workers', 2);

// Coordinator and workers sign and check jobs with it (children inherit it).
process.env.PIPELINE_QUEUE_SECRET ??= randomBytes(32).toString('hex');
const redis = await startRedis();
const nginx = await startNginx();
const dir = await mkdtemp(join(tmpdir(), 'bench-queue-'));
try {
  console.log(`queue benchmark: redis-server and nginx on loopback, ${JOBS} no-op jobs; ${STAGES} stages on ${WORKERS} workers`);
  for (const consumers of [1, 8]) {
    const target = parseQueueUrl(`${redis.url}?name=raw${consumers}`);
    const queue = new Queue(target.name, { connection: target.connection });
    const events = new QueueEvents(target.name, { connection: target.connection });
    await events.waitUntilReady();
    const worker = new Worker(target.name, async () => 'ok', { connection: target.connection, concurrency: consumers });
    await worker.waitUntilReady();
    const t0 = performance.now();
    let done = 0;
    const finished = new Promise<void>((resolveAll) => events.on('completed', () => ++done === JOBS && resolveAll()));
    await queue.addBulk(Array.from({ length: JOBS }, (_, i) => ({ name: 'noop', data: { i }, opts: { jobId: `j-${i}`, removeOnComplete: true } })));
    await finished;
    const s = (performance.now() - t0) / 1000;
    console.log(
      `queue alone, ${consumers} consumer${consumers > 1 ? 's' : ' '}: ${JOBS} jobs in ${s.toFixed(2)} s = ${(JOBS / s).toFixed(0)} jobs/s (${((s / JOBS) * 1000).toFixed(2)} ms per job)`,
    );
    await worker.close();
    await events.close();
    await queue.close();
  }

  const yaml = [`remote:\n  url: ${nginx.url}bench/`, 'stages:'];
  for (let i = 0; i < STAGES; i++) yaml.push(`  s${i}:`, `    cmd: echo ${i} > s${i}.txt`, `    outs: [s${i}.txt]`);
  const make = async (name: string) => {
    const ws = join(dir, name);
    await mkdir(ws, { recursive: true });
    await writeFile(join(ws, 'pipeline.yaml'), yaml.join('\n') + '\n');
    return ws;
  };
  const coordinator = await make('coordinator');
  const workers: ChildProcess[] = [];
  for (let w = 0; w < WORKERS; w++) {
    const child = spawn(process.execPath, [CLI, 'worker', '--queue', `${redis.url}?name=e2e`, '--name', `w${w}`], {
      cwd: await make(`w${w}`),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((ok) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('waiting for stages') && ok()));
    child.stdout!.resume();
    workers.push(child);
  }
  const t0 = performance.now();
  const run = spawn(process.execPath, [CLI, 'run', '--executor', 'queue', '--queue', `${redis.url}?name=e2e`, '--jobs', String(STAGES)], {
    cwd: coordinator,
    stdio: 'ignore',
  });
  const code = await new Promise<number | null>((ok) => run.on('exit', ok));
  const s = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`run --executor queue exited ${code}`);
  console.log(
    `whole path, ${WORKERS} workers: ${STAGES} stages in ${s.toFixed(2)} s = ${(STAGES / s).toFixed(2)} stages/s (${((s * WORKERS) / STAGES).toFixed(2)} worker-seconds per stage)`,
  );
  for (const w of workers) w.kill('SIGKILL');
} finally {
  await Promise.all([redis.stop(), nginx.stop()]);
  await rm(dir, { recursive: true, force: true });
}
