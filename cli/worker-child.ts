// A `pipeline run` that `pipeline worker` started for one job (its stage process) must not outlive
// its worker: a job whose worker died goes back to the queue and runs elsewhere, so this copy would
// only compete with it. Node has no parent-death signal; the IPC channel to the worker closes when
// the worker dies, however it dies. The check is installed when this module is evaluated, first
// thing in cli/main.ts, and looks at `process.connected` too, since the channel may have closed
// while the process was still loading (before any listener could hear it).
import { WORKER_CHILD_ENV, type WorkerChildReport } from '../engine/queue/jobs.js';

let onOrphaned: (() => void) | undefined;
let orphaned = false;

function guardWorkerChild(): void {
  if (!process.env[WORKER_CHILD_ENV] || !process.send) return;
  const lost = () => {
    if (orphaned) return;
    orphaned = true;
    // Before the run can stop cleanly (nothing written yet), and after it did: leave now.
    if (onOrphaned) onOrphaned();
    else process.exit(130);
  };
  process.on('disconnect', lost);
  // Listening must not keep a finished run alive.
  process.channel?.unref();
  // Output goes to the worker: once it is gone, writes fail (EPIPE), which must not crash the clean stop.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  if (!process.connected) lost();
}

guardWorkerChild();

/** The worker's name when this process is a worker's stage process. */
export function workerName(): string | undefined {
  return process.send ? process.env[WORKER_CHILD_ENV] || undefined : undefined;
}

/**
 * While the run can stop cleanly (abort its stages, record itself as interrupted, release the
 * lock), losing the worker calls `stop` instead of exiting at once. Returns what ends that.
 */
export function whileOrphanable(stop: () => void): () => void {
  onOrphaned = stop;
  if (orphaned) stop();
  return () => {
    if (onOrphaned === stop) onOrphaned = undefined;
  };
}

/** Tells the worker how its job ended (computed here, or found already made); resolves once sent. */
export async function reportToWorker(report: Omit<WorkerChildReport, 'type'>): Promise<void> {
  if (!workerName() || !process.connected) return;
  const message: WorkerChildReport = { type: 'worker-job-done', ...report };
  await new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));
}
