// Notifications after a scheduled run (`on_success:` / `on_failure:`): a shell command with the run
// summary in its environment, or a webhook receiving it as JSON. A webhook that cannot be reached or
// answers 408/429/5xx is tried again with backoff (1 s, 2 s, 4 s...) within the hook's 60 s; every
// attempt is recorded. A notification that fails is recorded and printed, never fatal: the run's
// own outcome stands.
import type { Hook } from '../config/schema.js';
import type { NotificationAttempt, NotificationRecord, PromotionRecord, RunTrigger } from '../store/runs.js';
import { FinalAnswer } from '../errors.js';

export interface NotificationPayload {
  event: 'success' | 'failure';
  pipeline: string;
  schedule: string;
  runId: string;
  result: NonNullable<RunTrigger['result']>;
  /** One line, e.g. `2 ran, 4 cached; promoted ...` or the error. */
  summary: string;
  startedAt: string;
  finishedAt: string;
  stages: { stage: string; outcome: string; error?: string }[];
  promotion?: PromotionRecord;
  error?: string;
  /** Why on_failure was called: the run's error, or why a skipped tick is alarming. */
  reason?: string;
}

/** How long a hook may take before it is given up on (a webhook: all its attempts together). */
const HOOK_TIMEOUT_MS = 60_000;
/** Wait before a webhook's second attempt; doubled for each further one. */
const FIRST_RETRY_MS = 1000;
const MAX_ATTEMPTS = 4;

export async function notify(hooks: readonly Hook[], payload: NotificationPayload, cwd: string): Promise<NotificationRecord[]> {
  const records: NotificationRecord[] = [];
  for (const hook of hooks) {
    const target = 'command' in hook ? hook.command : hook.webhook;
    if ('webhook' in hook) {
      const attempts = await deliverWebhook(hook.webhook, payload);
      const last = attempts[attempts.length - 1]!;
      records.push({ event: payload.event, target, ok: last.ok, ...(last.error ? { error: last.error } : {}), attempts });
      continue;
    }
    try {
      await runHookCommand(hook.command, payload, cwd);
      records.push({ event: payload.event, target, ok: true });
    } catch (err) {
      records.push({ event: payload.event, target, ok: false, error: (err as Error).message });
    }
  }
  return records;
}

/** Posts until one attempt is accepted, the failure is not worth retrying, or the time is up. */
async function deliverWebhook(url: string, payload: NotificationPayload): Promise<NotificationAttempt[]> {
  const deadline = Date.now() + HOOK_TIMEOUT_MS;
  const attempts: NotificationAttempt[] = [];
  for (let wait = FIRST_RETRY_MS; ; wait *= 2) {
    const at = new Date().toISOString();
    try {
      await postWebhook(url, payload, deadline - Date.now());
      attempts.push({ at, ok: true });
      return attempts;
    } catch (err) {
      attempts.push({ at, ok: false, error: (err as Error).message });
      const retry = !(err instanceof FinalAnswer) && attempts.length < MAX_ATTEMPTS && Date.now() + wait < deadline;
      if (!retry) return attempts;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

async function runHookCommand(command: string, payload: NotificationPayload, cwd: string): Promise<void> {
  const env = {
    ...process.env,
    PIPELINE_EVENT: payload.event,
    PIPELINE_SCHEDULE: payload.schedule,
    PIPELINE_RUN_ID: payload.runId,
    PIPELINE_RESULT: payload.result,
    PIPELINE_SUMMARY: payload.summary,
    PIPELINE_PROMOTION: payload.promotion?.decision ?? '',
    PIPELINE_ERROR: payload.error ?? '',
    PIPELINE_REASON: payload.reason ?? '',
    PIPELINE_JSON: JSON.stringify(payload),
  };
  // zx runs the hook (quoted as one `sh -c` argument), with a timeout and the output passed through.
  const { $, ProcessOutput } = await import('zx/core');
  try {
    await $({ cwd, env, timeout: HOOK_TIMEOUT_MS, stdio: ['ignore', 'inherit', 'inherit'], quiet: true, verbose: false })`/bin/sh -c ${command}`;
  } catch (err) {
    if (!(err instanceof ProcessOutput)) throw err;
    throw new Error(err.signal ? `command killed by ${err.signal}` : `command exited with ${err.exitCode}`);
  }
}

async function postWebhook(url: string, payload: NotificationPayload, timeoutMs: number): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'pipeline-schedule' },
    body: JSON.stringify(payload),
    signal: AbortSignal.timeout(Math.max(1, timeoutMs)),
  });
  await res.arrayBuffer();
  if (res.ok) return;
  const message = `webhook answered HTTP ${res.status}`;
  throw res.status >= 500 || res.status === 408 || res.status === 429 ? new Error(message) : new FinalAnswer(message);
}
