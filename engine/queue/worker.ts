// The worker's side of the queue: take a stage job, run it in this host's checkout and store, and
// answer. The stage runs as a child `pipeline run STAGE --worker-job KEY` (pull inputs from the
// remote, check the key, compute, push): a CPU-bound stage cannot starve the event loop that
// renews the job's lock, and the child stops itself if this process dies (IPC disconnect).
import { spawn } from 'node:child_process';
import { Worker, UnrecoverableError, type Job } from 'bullmq';
import type { LockTiming, StageJob, StageJobResult } from './jobs.js';
import type { QueueTarget } from './target.js';

export interface StageWorkerOptions {
  target: QueueTarget;
  /** Project root of this host's checkout (where job.config is resolved and artifacts/ lives). */
  root: string;
  /** The CLI entry point to run stages with (dist/cli/main.js). */
  cli: string;
  name: string;
  concurrency: number;
  timing: LockTiming;
  verbose: boolean;
  log(line: string): void;
}

export interface RunningWorker {
  /** Stops taking jobs and waits for the running ones to finish. */
  close(): Promise<void>;
  /** Kills the running stages; their jobs go back to the queue when their locks expire. */
  kill(): void;
}

/** Lines of a stage's own output a failure report carries. */
const OUTPUT_TAIL = 5;

/** The environment variable that tells a `pipeline run` it was started by a worker. */
export const WORKER_CHILD_ENV = 'PIPELINE_WORKER_CHILD';

export async function startStageWorker(opts: StageWorkerOptions): Promise<RunningWorker> {
  const children = new Set<ReturnType<typeof spawn>>();
  const processor = async (job: Job<StageJob, StageJobResult>): Promise<StageJobResult> => {
    const d = job.data;
    const started = Date.now();
    const tag = `${d.stage} ${d.key.slice(0, 12)}`;
    opts.log(`${tag}: started (run ${d.runId} of ${d.coordinator})`);
    const args = [
      opts.cli,
      '--config',
      d.config,
      ...(d.backend ? ['--backend', d.backend] : []),
      ...(opts.verbose ? ['--verbose'] : []),
      'run',
      d.stage,
      '--remote',
      d.remote,
      '--push',
      '--worker-job',
      d.key,
      ...(d.force ? ['--force'] : []),
      ...d.unset.flatMap((u) => ['--unset', u]),
      ...d.sets.flatMap((s) => ['--set', s]),
    ];
    const child = spawn(process.execPath, args, {
      cwd: opts.root,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, [WORKER_CHILD_ENV]: opts.name, NO_COLOR: '1' },
    });
    children.add(child);
    const errors: string[] = [];
    const output: string[] = [];
    const relay = (stream: NodeJS.ReadableStream, keep: boolean) => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.trim()) continue;
          opts.log(`${tag}: ${line}`);
          if (keep && /^(error|warning):/.test(line)) errors.push(line.replace(/^error:\s*/, ''));
          // The stage's own output (a command's stderr...), not transfer progress: shown with a failure.
          else if (line.startsWith(`[${d.stage}] `) && !/ (to|from) remote /.test(line)) output.push(line.slice(d.stage.length + 3));
          if (output.length > OUTPUT_TAIL) output.shift();
        }
      });
    };
    relay(child.stdout!, false);
    relay(child.stderr!, true);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal }));
    }).finally(() => children.delete(child));
    const durationMs = Date.now() - started;
    if (exit.code === 0) {
      opts.log(`${tag}: done in ${(durationMs / 1000).toFixed(1)}s`);
      return { worker: opts.name, key: d.key, durationMs };
    }
    const why = errors.find((e) => !e.startsWith('warning:')) ?? (exit.signal ? `stopped by ${exit.signal}` : `exit code ${exit.code}`);
    opts.log(`${tag}: failed: ${why}`);
    // A stage failing here fails the same way anywhere: no retry. (A killed worker is different:
    // its job stalls and BullMQ hands it to another worker.)
    const tail = output.length ? `\n  last output on ${opts.name}:\n${output.map((l) => `    ${l}`).join('\n')}` : '';
    throw new UnrecoverableError(`on worker ${opts.name}: ${why}${tail}`);
  };

  const worker = new Worker<StageJob, StageJobResult>(opts.target.name, processor, {
    connection: opts.target.connection,
    concurrency: opts.concurrency,
    lockDuration: opts.timing.lockMs,
    stalledInterval: opts.timing.stalledMs,
    maxStalledCount: opts.timing.maxStalledCount,
    name: opts.name,
  });
  worker.on('error', (err) => opts.log(`queue: ${err.message}`));
  await worker.waitUntilReady();
  return {
    close: () => worker.close(),
    kill: () => {
      for (const child of children) child.kill('SIGTERM'); // it aborts its stage: nothing partial is committed
    },
  };
}
