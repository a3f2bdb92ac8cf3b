// Cancelling a run's jobs on the queue (`pipeline cancel` of a run with `--executor queue`): its
// waiting jobs are removed by the coordinator; a job a worker is running cannot be removed (the
// worker holds its lock), so the coordinator marks it cancelled in Redis and publishes that, and the
// worker running it stops its stage process and fails the job without retry. The mark (a key with
// an hour's expiry) covers a worker that takes the job between the coordinator's look and the
// message. Marks are signed with the queue secret like jobs: whoever cannot sign a job cannot stop
// one either.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Redis } from 'ioredis';
import type { QueueTarget } from './target.js';

const CANCEL_CONTEXT = 'pipeline job cancel v1';
const MARK_SECONDS = 3600;

/** The channel workers listen on for cancelled jobs of queue `name`. */
export function cancelChannel(name: string): string {
  return `pipeline:${name}:cancelled`;
}

/**
 * The key marking job `jobId` of queue `name`, as run `runId` added it, as cancelled. The run is part
 * of it: a job id is its stage and key, so the next run's job for the same stage has the same id.
 */
export function cancelMarkKey(name: string, jobId: string, runId: string): string {
  return `pipeline:${name}:cancelled:${jobId}:${runId}`;
}

function cancelMac(name: string, jobId: string, runId: string, secret: string): string {
  return createHmac('sha256', secret).update(`${CANCEL_CONTEXT}\n${name}\n${jobId}\n${runId}`).digest('hex');
}

/** Whether `signature` says the holder of the queue secret cancelled job `jobId` of run `runId`. */
export function cancelSignatureValid(name: string, jobId: string, runId: string, signature: unknown, secret: string): boolean {
  if (typeof signature !== 'string' || !/^[0-9a-f]{64}$/.test(signature)) return false;
  return timingSafeEqual(Buffer.from(signature, 'hex'), Buffer.from(cancelMac(name, jobId, runId, secret), 'hex'));
}

/** A connection for one-off commands: fails instead of queueing commands while Redis is away. */
export function commandClient(target: QueueTarget): Redis {
  const client = new Redis({ ...(target.connection as object), maxRetriesPerRequest: 1, connectTimeout: 5000 });
  client.on('error', () => {}); // each command reports its own failure
  return client;
}

/** Marks the jobs (each as its run added it) cancelled and tells the workers (who run them). */
export async function publishCancel(target: QueueTarget, jobs: readonly { jobId: string; runId: string }[], secret: string): Promise<void> {
  const client = commandClient(target);
  try {
    for (const { jobId, runId } of jobs) {
      const signature = cancelMac(target.name, jobId, runId, secret);
      await client.set(cancelMarkKey(target.name, jobId, runId), signature, 'EX', MARK_SECONDS);
      await client.publish(cancelChannel(target.name), JSON.stringify({ jobId, runId, signature }));
    }
  } finally {
    client.disconnect();
  }
}

/** A worker's ear for cancelled jobs: `onCancel(jobId, runId)` for each validly signed message. */
export interface CancelListener {
  /** Whether job `jobId` of run `runId` was marked cancelled (asked once its stage process runs, to close the race). */
  marked(jobId: string, runId: string): Promise<boolean>;
  close(): void;
}

export async function listenForCancels(
  target: QueueTarget,
  secret: string,
  onCancel: (jobId: string, runId: string) => void,
  log: (line: string) => void,
): Promise<CancelListener> {
  const sub = new Redis({ ...(target.connection as object) });
  const client = commandClient(target);
  sub.on('error', (err: Error) => log(`queue (cancel listener): ${err.message}`));
  sub.on('message', (_channel: string, text: string) => {
    let message: { jobId?: unknown; runId?: unknown; signature?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    if (typeof message.jobId !== 'string' || typeof message.runId !== 'string') return;
    if (!cancelSignatureValid(target.name, message.jobId, message.runId, message.signature, secret)) {
      log(`ignored a cancel message for job ${message.jobId.replace(/\p{Cc}/gu, '?').slice(0, 200)}: not signed with this queue's secret`);
      return;
    }
    onCancel(message.jobId, message.runId);
  });
  await sub.subscribe(cancelChannel(target.name));
  return {
    async marked(jobId, runId) {
      const signature = await client.get(cancelMarkKey(target.name, jobId, runId)).catch(() => null);
      return cancelSignatureValid(target.name, jobId, runId, signature, secret);
    },
    close() {
      sub.disconnect();
      client.disconnect();
    },
  };
}
