// A stage's `timeout:` and `retries:`, wrapped around computing it here (sources/compute.ts) and
// nowhere else: a result reused from the store, a sibling or the remote is not an attempt. Each
// attempt runs under its own signal, aborted by the run's or by the timeout: a command's process
// group is killed, a kind sees ctx.signal aborted. A kind's resume dir outlives a failed attempt,
// so a retried train resumes from its last checkpoint.
import { setTimeout as sleep } from 'node:timers/promises';
import { formatDuration } from '../../config/attempt-policy.js';
import { DiskFullError, StageTimeoutError } from '../../errors.js';
import type { StageAttemptRecord } from '../../store/runs.js';
import { errorMessage } from '../../store/fs-tree.js';
import type { StageTimer } from '../execute-options.js';
import type { Execution } from '../execution.js';
import type { StageRequest } from './result-source.js';

const wallClock: StageTimer = (_stage, ms, fire) => {
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
};

/** Runs `once` under the stage's attempt policy; records each attempt in `stage.attempts`. */
export async function withAttempts<T>(stage: StageRequest, x: Execution, once: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const policy = x.pipeline.stages.get(stage.name)?.attempts;
  if (!policy) {
    x.logs.attempt(stage.name, 1);
    return once(x.signal);
  }
  const records: StageAttemptRecord[] = (stage.attempts = []);
  const tries = policy.retries + 1;
  for (let n = 1; ; n++) {
    const began = Date.now();
    x.logs.attempt(stage.name, n);
    const attempt = new AbortController();
    const stopAttempt = () => attempt.abort(x.signal.reason);
    if (x.signal.aborted) stopAttempt();
    else x.signal.addEventListener('abort', stopAttempt, { once: true });
    let timedOut = false;
    const { timeoutMs } = policy;
    const cancelTimer =
      timeoutMs === undefined
        ? undefined
        : (x.opts.timer ?? wallClock)(stage.name, timeoutMs, () => {
            timedOut = true;
            attempt.abort(new StageTimeoutError(`stage ${stage.name} timed out`));
          });
    try {
      const result = await once(attempt.signal);
      records.push({ attempt: n, outcome: 'ok', durationMs: Date.now() - began });
      return result;
    } catch (err) {
      const interrupted = x.signal.aborted;
      const error = timedOut && !interrupted ? new StageTimeoutError(`stage ${stage.name} timed out after ${formatDuration(timeoutMs!)}`, { cause: err }) : err;
      const outcome = interrupted ? 'interrupted' : timedOut ? 'timed-out' : 'failed';
      records.push({ attempt: n, outcome, durationMs: Date.now() - began, error: errorMessage(error) });
      // A full disk stays full for the next attempt.
      if (interrupted || n >= tries || error instanceof DiskFullError) throw error;
      const wait = policy.backoffMs * 2 ** (n - 1);
      x.opts.ui
        .logger(stage.name)
        .warn(
          `attempt ${n} of ${tries} ${outcome === 'timed-out' ? 'timed out' : 'failed'}: ${errorMessage(error)}; retrying${wait ? ` in ${formatDuration(wait)}` : ''}`,
        );
      if (wait > 0) await sleep(wait, undefined, { signal: x.signal }).catch(() => undefined);
      if (x.signal.aborted) throw error;
    } finally {
      cancelTimer?.();
      x.signal.removeEventListener('abort', stopAttempt);
    }
  }
}
