// `pipeline worker --queue redis://HOST:PORT`: compute stages for coordinators (`pipeline run
// --executor queue`) in this checkout's store, until stopped. Each job runs as a child `pipeline
// run STAGE` that pulls the stage's inputs from the remote, checks the cache key, computes and
// pushes. Ctrl-C finishes the running stage first; a second Ctrl-C stops it (the job goes back to
// the queue and another worker takes it).
import type { Command } from 'commander';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { GlobalOptions } from '../global-options.js';
import { positiveInt, positiveNumber } from '../stage-lines.js';

interface WorkerOptions {
  queue?: string;
  name?: string;
  concurrency: number;
  lockSeconds: number;
}

export function register(program: Command): void {
  program
    .command('worker')
    .description('compute stages queued by `pipeline run --executor queue` (in this checkout and its store) until stopped')
    .option('--queue <url>', 'Redis of the stage queue: redis://host:port[/db][?name=queue] (default: PIPELINE_QUEUE)')
    .option('--name <name>', 'how runs name this worker (default: host:pid)')
    .option('--concurrency <n>', 'stages this worker runs at once', positiveInt, 1)
    .option('--lock-seconds <s>', 'a job whose worker stops renewing its lock this long (killed, cut off) goes to another worker', positiveNumber, 10)
    .action(async (options: WorkerOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const { openSession } = await import('../session.js');
      const { UsageError } = await import('../../engine/errors.js');
      const { parseQueueUrl } = await import('../../engine/queue/target.js');
      const { startStageWorker } = await import('../../engine/queue/worker.js');
      const { lockTiming } = await import('../../engine/queue/jobs.js');
      const url = options.queue ?? process.env.PIPELINE_QUEUE;
      if (!url) throw new UsageError('pipeline worker needs --queue redis://HOST:PORT (or PIPELINE_QUEUE)');
      const target = parseQueueUrl(url);
      // A broken pipeline file is reported now, not once per job.
      const session = await openSession(globals.config);
      const name = options.name ?? `${hostname()}:${process.pid}`;
      const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
      const { checkQueueReachable } = await import('../../engine/queue/dispatch.js');
      await checkQueueReachable(target);
      const worker = await startStageWorker({
        target,
        root: session.pipeline.root,
        cli: fileURLToPath(new URL('../main.js', import.meta.url)),
        name,
        concurrency: options.concurrency,
        timing: lockTiming(options.lockSeconds),
        verbose: globals.verbose,
        log,
      });
      log(`worker ${name}: waiting for stages on ${target.display} (queue ${target.name}); Ctrl-C to stop`);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onSignal = () => {
          if (stopping) {
            log('stopping the running stages now (their jobs go back to the queue)');
            worker.kill();
            process.exit(130);
          }
          stopping = true;
          log('finishing the running stages, then stopping (again to stop them now)');
          void worker.close().then(resolve);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        process.on('SIGHUP', onSignal);
      });
      log(`worker ${name}: stopped`);
    });
}
