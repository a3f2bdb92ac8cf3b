// Notifications after a scheduled run (`on_success:` / `on_failure:`): a shell command with the run
// summary in its environment, or a webhook receiving it as JSON. A notification that fails is
// recorded and printed, never fatal: the run's own outcome stands.
import type { Hook } from '../config/schema.js';
import type { NotificationRecord, PromotionRecord, RunTrigger } from '../store/runs.js';

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
}

/** How long a hook may take before it is given up on. */
const HOOK_TIMEOUT_MS = 60_000;

export async function notify(hooks: readonly Hook[], payload: NotificationPayload, cwd: string): Promise<NotificationRecord[]> {
  const records: NotificationRecord[] = [];
  for (const hook of hooks) {
    const target = 'command' in hook ? hook.command : hook.webhook;
    try {
      if ('command' in hook) await runHookCommand(hook.command, payload, cwd);
      else await postWebhook(hook.webhook, payload);
      records.push({ event: payload.event, target, ok: true });
    } catch (err) {
      records.push({ event: payload.event, target, ok: false, error: (err as Error).message });
    }
  }
  return records;
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

async function postWebhook(url: string, payload: NotificationPayload): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'pipeline-schedule' },
    body: JSON.stringify(payload),
    signal: AbortSignal.timeout(HOOK_TIMEOUT_MS),
  });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`webhook answered HTTP ${res.status}`);
}
