// lib/ raises its own errors (lib/errors.ts); what the user sees are the engine's (engine/errors.ts).
// A stage kind runs lib code through this translation: an interrupt stays an interrupt (exit 130),
// a fetch failure is reported as it is written (exit 1), with what to do when its host cannot be
// reached (the kind says what, through ErrorContext). Anything else passes unchanged: a kind
// catches and words the lib errors that need its context (DatasetError, AugmentPoolError), and the
// engine prefixes any other error with the stage's name.
import { AbortedError, StageError } from '../engine/errors.js';
import { FetchError, InterruptedError } from '../lib/errors.js';

/** What a kind adds to an error: `unreachable`, said when the failure is a URL that cannot be reached from here. */
export interface ErrorContext {
  unreachable?: string;
}

/** The engine error a lib error stands for (keeping its message and stack), or `err` itself. */
export function engineErrorOf(err: unknown, context: ErrorContext = {}): unknown {
  let translated: AbortedError | StageError;
  const unreachable = context.unreachable && unreachableCode(err) ? `; ${context.unreachable}` : '';
  if (err instanceof InterruptedError) translated = new AbortedError(err.message);
  else if (err instanceof FetchError) translated = new StageError(err.message + unreachable, { cause: err });
  else if (unreachable && err instanceof StageError) translated = new StageError(err.message + unreachable, { cause: err });
  else return err;
  // --verbose shows where lib raised it, not this function.
  if (err.stack?.includes('\n')) translated.stack = `${translated.name}: ${translated.message}${err.stack.slice(err.stack.indexOf('\n'))}`;
  return translated;
}

/** Runs `work`, translating what it throws with engineErrorOf. */
export async function withEngineErrors<T>(work: () => Promise<T>, context: ErrorContext = {}): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw engineErrorOf(err, context);
  }
}

/** Network failures that mean a host cannot be reached from here: no such name, no DNS, no route, nothing listening. */
const UNREACHABLE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ETIMEDOUT']);

/** The system error code, anywhere in the cause chain, that says the host cannot be reached. */
export function unreachableCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNREACHABLE.has(code)) return code;
  }
  return undefined;
}

/** What fetch adds when its URL cannot be reached: how to use a local copy instead (the README's offline section). */
export function offlineHint(stage = 'STAGE'): string {
  return `offline or behind a firewall? Point the stage at a local copy: --set ${stage}.url=/path/to/archive (README: "Offline or behind a firewall?")`;
}
