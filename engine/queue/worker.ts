// The worker's side of the queue: take a stage job, check it (engine/queue/admit.ts: signature,
// pipeline file, stage, overrides), run it in this host's checkout and store against this host's
// remote, and answer. A job it refuses fails at once, without retry, saying why. The stage runs as
// a child `pipeline run STAGE --worker-job KEY` (pull inputs from the remote, check the key,
// compute, push): a CPU-bound stage cannot starve the event loop that renews the job's lock, and
// the child stops itself if this process dies (IPC disconnect, cli/worker-child.ts).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Worker, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import { settlesWithin, STOP_STEP_MS } from '../lifecycle/bounded.js';
import type { KindRegistry } from '../config/parse.js';
import type { Pipeline } from '../config/pipeline.js';
import { JobRefusedError } from '../errors.js';
import { admitJob, type AdmittedJob } from './admit.js';
import { listenForCancels } from './cancel.js';
import { JobLog } from './job-log.js';
import { isWorkerChildReport, QUEUE_SECRET_ENV, WORKER_CHILD_ENV, type LockTiming, type StageJobResult, type WorkerChildReport } from './jobs.js';
import type { QueueTarget } from './target.js';

export { WORKER_CHILD_ENV };

export interface StageWorkerOptions {
  target: QueueTarget;
  /** Project root of this host's checkout (where job.config is resolved and artifacts/ lives). */
  root: string;
  /** This worker's own pipeline (its --config): what the checks measure a job's pipeline file against. */
  pipeline: Pipeline;
  kinds: KindRegistry;
  /** PIPELINE_QUEUE_SECRET: a job must be signed with it. */
  secret: string;
  /** This worker's remote (its --remote or its pipeline's remote:): every stage pulls from and pushes to it. */
  remote: string;
  /** The CLI entry point to run stages with (dist/cli/main.js). */
  cli: string;
  name: string;
  concurrency: number;
  timing: LockTiming;
  verbose: boolean;
  log(line: string): void;
  /** Told how each job ended (for the metrics). */
  observe?(stage: string | undefined, outcome: 'computed' | 'found' | 'failed' | 'refused' | 'requeued', durationMs?: number): void;
}

export interface RunningWorker {
  /**
   * Stops taking jobs, stops the running stages (each records its run as interrupted; its job goes
   * back to the queue) and closes the connections, each step bounded so that an unreachable Redis
   * cannot hold it up. `clean` is false when a step was given up on (the caller should then exit).
   */
  stop(): Promise<{ clean: boolean }>;
  /** Kills the running stages; their jobs go back to the queue when their locks expire. */
  kill(): void;
}

/** Lines of a stage's own output a failure report carries. */
const OUTPUT_TAIL = 5;

/** What reaches the log (and Redis) of a job's own text: no control characters, bounded. */
const printable = (v: unknown, max = 200): string =>
  String(v)
    .replace(/\p{Cc}/gu, '?')
    .slice(0, max);

/** The `pipeline run` line that computes an admitted job's stage on this worker. */
function stageCommand(opts: StageWorkerOptions, d: AdmittedJob): string[] {
  return [
    opts.cli,
    `--config=${d.configFile}`,
    ...(d.backend ? [`--backend=${d.backend}`] : []),
    ...(opts.verbose ? ['--verbose'] : []),
    'run',
    `--remote=${opts.remote}`,
    '--push',
    `--worker-job=${d.key}`,
    ...(d.force ? ['--force'] : []),
    ...d.unset.map((u) => `--unset=${u}`),
    ...d.sets.map((s) => `--set=${s}`),
    '--',
    d.stage,
  ];
}

/** The stage process needs no queue credentials: its commands never see them. */
function stageEnv(worker: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_CHILD_ENV]: worker, NO_COLOR: '1' };
  delete env[QUEUE_SECRET_ENV];
  delete env.PIPELINE_QUEUE_PASSWORD;
  return env;
}

/**
 * Relays the stage process's lines to the worker's log and keeps what goes back: its error lines,
 * the last lines of the stage's own output (shown with a failure) and the bounded job log.
 */
function relayOutput(child: ReturnType<typeof spawn>, stage: string, log: (line: string) => void) {
  const kept = new JobLog();
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
        log(line);
        if (keep && /^(error|warning):/.test(line)) errors.push(line.replace(/^error:\s*/, ''));
        // The stage's own output (a command's stderr...), not transfer progress: shown with a failure.
        else if (line.startsWith(`[${stage}] `) && !/ (to|from) remote /.test(line)) {
          output.push(line.slice(stage.length + 3));
          kept.line(line.slice(stage.length + 3));
        }
        if (output.length > OUTPUT_TAIL) output.shift();
      }
    });
  };
  relay(child.stdout!, false);
  relay(child.stderr!, true);
  return { kept, errors, output };
}

export async function startStageWorker(opts: StageWorkerOptions): Promise<RunningWorker> {
  const children = new Set<ReturnType<typeof spawn>>();
  /** Running jobs by id: how to stop each when its run is cancelled. */
  const running = new Map<string, (runId: string) => void>();
  let stopping = false;
  const cancels = await listenForCancels(opts.target, opts.secret, (jobId, runId) => running.get(jobId)?.(runId), opts.log);
  const processor = async (raw: Job<unknown, StageJobResult>, token?: string): Promise<StageJobResult> => {
    let d: AdmittedJob;
    try {
      d = await admitJob(raw.data, { root: opts.root, own: opts.pipeline, kinds: opts.kinds, queueName: opts.target.name, secret: opts.secret });
    } catch (err) {
      if (!(err instanceof JobRefusedError)) throw err;
      const stage = (raw.data as { stage?: unknown } | null)?.stage;
      const why = printable(err.message, 2000);
      opts.log(`refused job ${printable(raw.id)} (stage ${printable(stage)}): ${why}`);
      opts.observe?.(undefined, 'refused');
      // Not retried: the same job is refused the same way anywhere.
      throw new UnrecoverableError(`on worker ${opts.name}: refused: ${why}`);
    }
    if (stopping) {
      await settlesWithin(raw.moveToWait(token), STOP_STEP_MS);
      throw new WaitingError();
    }
    const started = Date.now();
    const tag = `${d.stage} ${d.key.slice(0, 12)}`;
    const args = stageCommand(opts, d);
    const child = spawn(process.execPath, args, { cwd: opts.root, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: stageEnv(opts.name) });
    children.add(child);
    opts.log(`${tag}: started (run ${printable(d.runId)} of ${printable(d.coordinator)}) as pid ${child.pid}`);
    // Its run was cancelled (`pipeline cancel`): the stage process stops as on SIGTERM (it records
    // its run as interrupted, commits nothing partial) and the job fails without retry.
    const jobId = String(raw.id);
    let cancelled = false;
    const cancel = (runId: string) => {
      // The same job id comes back for the same stage and key in a later run: only this run's cancel counts.
      if (runId !== d.runId || cancelled || child.exitCode !== null || child.signalCode !== null) return;
      cancelled = true;
      opts.log(`${tag}: its run was cancelled; stopping it`);
      child.kill('SIGTERM');
    };
    running.set(jobId, cancel);
    // Cancelled before we listened for it (between the coordinator's look and our taking the job).
    void cancels.marked(jobId, d.runId).then((marked) => marked && cancel(d.runId));
    let report: WorkerChildReport | undefined;
    child.on('message', (m) => {
      if (isWorkerChildReport(m)) report = m;
    });
    const { kept, errors, output } = relayOutput(child, d.stage, (line) => opts.log(`${tag}: ${line}`));
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal }));
    }).finally(() => {
      children.delete(child);
      running.delete(jobId);
    });
    const durationMs = Date.now() - started;
    // The stage's output goes back to the coordinator with the job (bounded; best effort).
    const sendLog = async (last?: string) => {
      if (last) kept.line(last);
      if (!kept.empty) await settlesWithin(raw.log(kept.text()), STOP_STEP_MS);
    };
    if (cancelled && exit.code !== 0) {
      opts.log(`${tag}: stopped: its run ${printable(d.runId)} was cancelled`);
      opts.observe?.(d.stage, 'failed', durationMs);
      await sendLog(`cancelled: run ${printable(d.runId)} was cancelled; stopped on worker ${opts.name}`);
      throw new UnrecoverableError(`on worker ${opts.name}: cancelled (its run ${printable(d.runId)} was cancelled)`);
    }
    if (stopping && exit.code !== 0) {
      // Stopped because this worker is stopping, not failed: the job goes back to the queue now (if
      // Redis answers; else its lock expires and another worker's stall check requeues it).
      opts.log(`${tag}: stopped; its job goes back to the queue`);
      opts.observe?.(d.stage, 'requeued');
      await settlesWithin(raw.moveToWait(token), STOP_STEP_MS);
      throw new WaitingError();
    }
    if (exit.code === 0) {
      // Found already made (e.g. by a worker cut off after it pushed): whoever computed it gets the credit.
      const computed = report?.computed ?? true;
      const by = report?.computedBy === undefined ? undefined : printable(report.computedBy);
      opts.log(`${tag}: ${computed ? 'done' : `found it already computed${by ? ` by ${by}` : ''}`} in ${(durationMs / 1000).toFixed(1)}s`);
      opts.observe?.(d.stage, computed ? 'computed' : 'found', durationMs);
      await sendLog();
      return { worker: opts.name, key: d.key, durationMs, computed, ...(by !== undefined ? { computedBy: by } : {}) };
    }
    const why = errors.find((e) => !e.startsWith('warning:')) ?? (exit.signal ? `stopped by ${exit.signal}` : `exit code ${exit.code}`);
    opts.log(`${tag}: failed: ${why}`);
    opts.observe?.(d.stage, 'failed', durationMs);
    // A stage failing here fails the same way anywhere: no retry. (A killed worker is different:
    // its job stalls and BullMQ hands it to another worker.)
    await sendLog(`error: ${why}`);
    const tail = output.length ? `\n  last output on ${opts.name}:\n${output.map((l) => `    ${l}`).join('\n')}` : '';
    throw new UnrecoverableError(`on worker ${opts.name}: ${why}${tail}`);
  };

  const worker = new Worker<unknown, StageJobResult>(opts.target.name, processor, {
    connection: opts.target.connection,
    concurrency: opts.concurrency,
    lockDuration: opts.timing.lockMs,
    stalledInterval: opts.timing.stalledMs,
    maxStalledCount: opts.timing.maxStalledCount,
    name: opts.name,
  });
  worker.on('error', (err) => opts.log(`queue: ${err.message}`));
  await worker.waitUntilReady();
  const exits = () => Promise.all([...children].map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'close') : undefined)));
  return {
    stop: async () => {
      stopping = true;
      cancels.close();
      const closing = worker.close();
      for (const child of children) child.kill('SIGTERM'); // it aborts its stage and records its run as interrupted
      if (!(await settlesWithin(exits(), STOP_STEP_MS))) {
        // A second signal makes `pipeline run` kill its commands and exit at once (still recording).
        for (const child of children) child.kill('SIGTERM');
        if (!(await settlesWithin(exits(), STOP_STEP_MS))) for (const child of children) child.kill('SIGKILL');
      }
      return { clean: await settlesWithin(closing, STOP_STEP_MS) };
    },
    kill: () => {
      cancels.close();
      for (const child of children) child.kill('SIGTERM'); // it aborts its stage: nothing partial is committed
    },
  };
}
