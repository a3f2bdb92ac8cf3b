// `run --executor queue`: the queue a run uses and how a stage is handed to the workers (its inputs
// made sure of on the remote, then a job on the queue: engine/runner/queue.ts).
import { Option } from 'commander';
import { positiveDuration } from './stage-lines.js';
import type { QueueTarget } from '../engine/queue/target.js';
import { UsageError } from '../engine/errors.js';
import { parseQueueUrl } from '../engine/queue/target.js';
import { queueSecretFrom } from '../engine/queue/jobs.js';

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
  const url = options.queue ?? process.env.PIPELINE_QUEUE;
  if (options.executor !== 'queue') {
    if (options.queue !== undefined) throw new UsageError('--queue is for --executor queue');
    if (options.queueTimeout !== undefined) throw new UsageError('--queue-timeout is for --executor queue');
    return undefined;
  }
  if (!url) throw new UsageError('--executor queue needs --queue redis://HOST:PORT (or PIPELINE_QUEUE)');
  const target = parseQueueUrl(url);
  if (!hasRemote)
    throw new UsageError(
      '--executor queue needs a remote cache (remote: in pipeline.yaml, or --remote URL): workers pull inputs from it and push results to it',
    );
  queueSecretFrom(process.env, '--executor queue');
  return target;
}
