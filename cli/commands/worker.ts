// `pipeline worker --queue redis://HOST:PORT`: compute stages for coordinators (`pipeline run
// --executor queue`) in this checkout's store, until stopped. Each job (signed with
// PIPELINE_QUEUE_SECRET, checked before anything starts) runs as a child `pipeline run STAGE` that
// pulls the stage's inputs from this worker's remote, checks the cache key, computes and pushes.
// Ctrl-C / SIGTERM stops it within seconds, whatever state Redis is in: running stages are stopped
// (recorded as interrupted) and their jobs go back to the queue for another worker.
import type { Command } from 'commander';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { GlobalOptions } from '../global-options.js';
import { portNumber, positiveInt, positiveNumber } from '../stage-lines.js';
import { openSession } from '../session.js';
import { chosenRemote } from '../remote.js';
import { UsageError } from '../../engine/errors.js';
import { parseQueueUrl } from '../../engine/queue/target.js';
import { startStageWorker } from '../../engine/queue/worker.js';
import { lockTiming, queueSecretFrom } from '../../engine/queue/jobs.js';
import { checkQueueReachable } from '../../engine/queue/dispatch.js';

interface WorkerOptions {
  queue?: string;
  remote?: string;
  name?: string;
  concurrency: number;
  lockSeconds: number;
  metricsPort?: number;
  metricsFile?: string;
}

export function register(program: Command): void {
  program
    .command('worker')
    .description('compute stages queued by `pipeline run --executor queue` (in this checkout and its store) until stopped')
    .option('--queue <url>', 'Redis of the stage queue: redis://host:port[/db][?name=queue] (default: PIPELINE_QUEUE)')
    .option('--remote <url>', "the remote cache this worker pulls inputs from and pushes results to (default: the pipeline's remote:)")
    .option('--name <name>', 'how runs name this worker (default: host:pid)')
    .option('--concurrency <n>', 'stages this worker runs at once', positiveInt, 1)
    .option('--lock-seconds <s>', 'a job whose worker stops renewing its lock this long (killed, cut off) goes to another worker', positiveNumber, 10)
    .option('--metrics-port <port>', 'serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0: any free port)', portNumber)
    .option('--metrics-file <file>', 'write Prometheus metrics to FILE after each job (a node_exporter textfile: name it *.prom)')
    .addHelpText(
      'after',
      `
Needs PIPELINE_QUEUE_SECRET, the secret the coordinators sign their jobs with: a job without a
valid signature is refused (and not retried). A job only picks a stage, its params and a pipeline
file of this checkout; the remote and the code are this worker's own. See SECURITY.md.`,
    )
    .action(async (options: WorkerOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const url = options.queue ?? process.env.PIPELINE_QUEUE;
      if (!url) throw new UsageError('pipeline worker needs --queue redis://HOST:PORT (or PIPELINE_QUEUE)');
      const target = parseQueueUrl(url);
      const secret = queueSecretFrom(process.env, 'pipeline worker');
      // A broken pipeline file is reported now, not once per job.
      const session = await openSession(globals.config);
      // The remote is the worker's own, never a job's: its credentials go nowhere a job names.
      const remote = chosenRemote(session.pipeline, options.remote);
      if (!remote)
        throw new UsageError(
          "pipeline worker needs a remote cache (--remote URL, or remote: in the pipeline file): it pulls a stage's inputs from it and pushes results to it",
        );
      const name = options.name ?? `${hostname()}:${process.pid}`;
      const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
      await checkQueueReachable(target);
      // prom-client is loaded only when metrics are asked for.
      const { startMetrics } = await import('../../engine/metrics/start.js');
      const metrics = await startMetrics({ port: options.metricsPort, file: options.metricsFile, queue: target }, log);
      if (metrics?.url) log(`metrics on ${metrics.url}`);
      const worker = await startStageWorker({
        target,
        root: session.pipeline.root,
        pipeline: session.pipeline,
        kinds: session.kinds,
        secret,
        remote: remote.url,
        cli: fileURLToPath(new URL('../main.js', import.meta.url)),
        name,
        concurrency: options.concurrency,
        timing: lockTiming(options.lockSeconds),
        verbose: globals.verbose,
        log,
        observe: (stage, outcome, ms) => {
          metrics?.metrics.job(stage, outcome, ms);
          void metrics?.flush();
        },
      });
      log(`worker ${name}: waiting for stages on ${target.display} (queue ${target.name}); remote ${remote.url}; Ctrl-C to stop`);
      // Stops within seconds whatever state Redis is in (engine/queue/worker.ts bounds each step).
      const { clean } = await new Promise<{ clean: boolean }>((resolve) => {
        let stopping = false;
        const onSignal = () => {
          if (stopping) {
            log('stopping the running stages now (their jobs go back to the queue)');
            worker.kill();
            process.exit(130);
          }
          stopping = true;
          log('stopping: no more jobs; running stages are stopped and their jobs go back to the queue');
          void worker.stop().then(resolve);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        process.on('SIGHUP', onSignal);
      });
      await metrics?.close();
      log(`worker ${name}: stopped${clean ? '' : ' (gave up waiting for Redis)'}`);
      // An unreachable Redis leaves reconnect timers behind: they must not keep the process alive.
      if (!clean) process.exit(0);
    });
}
