// `--executor queue` as a run uses it: the run's dispatcher (signs its jobs, warns while no worker
// takes them), and how a stage is handed to the workers once its inputs are on the remote.
import type { StageDispatch } from '../run/execute.js';
import type { JobContext, QueueDispatcher } from '../queue/dispatch.js';
import type { QueueTarget } from '../queue/target.js';
import type { RemoteCache } from '../remote/cache.js';
import type { RunExperiment } from './experiment.js';

export interface QueueRunSpec {
  target: QueueTarget;
  /** PIPELINE_QUEUE_SECRET: signs every job. */
  secret: string;
  /** `--queue-timeout` (ms): give up when no worker has taken a job for this long. */
  timeoutMs?: number;
  /** What every job of the run carries (a sweep's assignments are added per experiment). */
  job: Pick<JobContext, 'config' | 'sets' | 'unset' | 'backend'>;
}

export async function openQueue(spec: QueueRunSpec, warn: (line: string) => void): Promise<QueueDispatcher> {
  // bullmq is loaded only by runs that use the queue.
  const { QueueDispatcher } = await import('../queue/dispatch.js');
  return QueueDispatcher.open(spec.target, { secret: spec.secret, timeoutMs: spec.timeoutMs, warn });
}

export interface DispatchContext {
  queue: QueueDispatcher;
  remote: RemoteCache;
  spec: QueueRunSpec;
  experiment: RunExperiment | undefined;
  runId: string;
  coordinator: string;
  force: ReadonlySet<string>;
  onQueued?(stage: string, queueUrl: string): void;
}

/** A stage goes to the workers once its inputs are on the remote. */
export function queueDispatch(c: DispatchContext): StageDispatch {
  const context: JobContext = {
    ...c.spec.job,
    sets: [...c.spec.job.sets, ...(c.experiment?.sets ?? [])],
    runId: c.runId,
    coordinator: c.coordinator,
  };
  return async (stage, key, upstreams, signal, log) => {
    await c.remote.ensure(upstreams, signal);
    const result = await c.queue.run(stage, key, context, signal, { onQueued: () => c.onQueued?.(stage, c.queue.url), force: c.force.has(stage), onLog: log });
    return { worker: result.worker, computed: result.computed !== false };
  };
}
