// A stage's `timeout:` and `retries:` as execution uses them (engine/run/sources/attempts.ts).
import type { AttemptPolicy } from './pipeline.js';
import { durationMs, type RetriesInput } from './schema.js';

/** The policy of a validated stage, or undefined when it sets neither key. */
export function attemptPolicy(stage: { timeout?: number | string; retries?: RetriesInput }): AttemptPolicy | undefined {
  if (stage.timeout === undefined && stage.retries === undefined) return undefined;
  const retries = stage.retries ?? 0;
  const { count, backoff } = typeof retries === 'number' ? { count: retries, backoff: undefined } : retries;
  return {
    ...(stage.timeout !== undefined ? { timeoutMs: durationMs(stage.timeout) } : {}),
    retries: count,
    backoffMs: backoff === undefined ? 0 : durationMs(backoff),
  };
}

/** How a duration in milliseconds is shown (`timed out after 2m`): the largest unit that divides it, else seconds. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)}s` : `${ms}ms`;
}
