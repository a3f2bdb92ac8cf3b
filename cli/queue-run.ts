// `run --executor queue`: the queue a run uses and how a stage is handed to the workers (its inputs
// made sure of on the remote, then a job on the queue). The run itself is cli/commands/run.ts.
import { Option } from 'commander';
import type { GlobalOptions } from './global-options.js';
import { printLine } from './output.js';
import { positiveDuration } from './stage-lines.js';
import { relative, resolve } from 'node:path';
import type { Experiment } from './sweep.js';
import type { Session } from '../engine/session.js';
import type { StageDispatch } from '../engine/run/execute.js';
import type { QueueDispatcher } from '../engine/queue/dispatch.js';
import type { QueueTarget } from '../engine/queue/target.js';
import type { RemoteCache } from '../engine/remote/cache.js';

const err = (line: string) => printLine(process.stderr, line);

/** What of `run`'s options the queue needs. */
export interface QueueRunOptions {
  executor?: 'local' | 'queue';
  queue?: string;
  /** `--queue-timeout` in ms. */
  queueTimeout?: number;
  set: string[];
  unset: string[];
}

/** The end of `run --help` and `schedule --help`. */
export const QUEUE_HELP = `
With --executor queue, jobs are signed with the secret in PIPELINE_QUEUE_SECRET (the same on the
coordinator and every worker; workers refuse jobs without a valid signature). See SECURITY.md.
`;

/** `--queue-timeout` of run and schedule (in ms). No default: a busy cluster may keep jobs waiting for hours. */
export function queueTimeoutOption(): Option {
  return new Option(
    '--queue-timeout <duration>',
    'with --executor queue: fail when no worker has taken a job for this long, e.g. 30m (default: wait, warning)',
  ).argParser(positiveDuration);
}

/** `--executor queue` needs a queue, the queue secret and a remote: workers pull a stage's inputs from it and push its result there. */
export async function queueTargetOf(options: QueueRunOptions, hasRemote: boolean): Promise<QueueTarget | undefined> {
  const { UsageError } = await import('../engine/errors.js');
  const url = options.queue ?? process.env.PIPELINE_QUEUE;
  if (options.executor !== 'queue') {
    if (options.queue !== undefined) throw new UsageError('--queue is for --executor queue');
    if (options.queueTimeout !== undefined) throw new UsageError('--queue-timeout is for --executor queue');
    return undefined;
  }
  if (!url) throw new UsageError('--executor queue needs --queue redis://HOST:PORT (or PIPELINE_QUEUE)');
  const { parseQueueUrl } = await import('../engine/queue/target.js');
  const target = parseQueueUrl(url);
  if (!hasRemote)
    throw new UsageError(
      '--executor queue needs a remote cache (remote: in pipeline.yaml, or --remote URL): workers pull inputs from it and push results to it',
    );
  (await import('../engine/queue/jobs.js')).queueSecretFrom(process.env, '--executor queue');
  return target;
}

/** The run's dispatcher: signs its jobs, and warns (then gives up, with --queue-timeout) while no worker takes them. */
export async function openQueue(target: QueueTarget, options: QueueRunOptions): Promise<QueueDispatcher> {
  const { queueSecretFrom } = await import('../engine/queue/jobs.js');
  const { QueueDispatcher } = await import('../engine/queue/dispatch.js');
  return QueueDispatcher.open(target, {
    secret: queueSecretFrom(process.env, '--executor queue'),
    timeoutMs: options.queueTimeout,
    warn: (line) => err(`warning: ${line}`),
  });
}

/** `--executor queue`: a stage goes to the workers once its inputs are on the remote. */
export function queueDispatch(
  queue: QueueDispatcher,
  remote: RemoteCache,
  session: Session,
  experiment: Experiment | undefined,
  options: QueueRunOptions,
  globals: GlobalOptions,
  runId: string,
  coordinator: string,
  force: ReadonlySet<string>,
): StageDispatch {
  const context = {
    config: relative(session.pipeline.root, resolve(globals.config)),
    sets: [...options.set, ...(experiment?.sets ?? [])],
    unset: options.unset,
    ...(globals.backend ? { backend: globals.backend } : {}),
    runId,
    coordinator,
  };
  return async (stage, key, upstreams, signal) => {
    await remote.ensure(upstreams, signal);
    const onQueued = () => {
      if (globals.verbose) err(`${stage}: queued on ${queue.url}`);
    };
    const result = await queue.run(stage, key, context, signal, onQueued, force.has(stage));
    return { worker: result.worker, computed: result.computed !== false };
  };
}
