// lib/ raises its own errors (lib/errors.ts); what the user sees are the engine's (engine/errors.ts).
// A stage kind runs lib code through this translation: an interrupt stays an interrupt (exit 130),
// a fetch failure is reported as it is written (exit 1). Anything else passes unchanged: a kind
// catches and words the lib errors that need its context (DatasetError, AugmentPoolError), and the
// engine prefixes any other error with the stage's name.
import { AbortedError, StageError } from '../engine/errors.js';
import { FetchError, InterruptedError } from '../lib/errors.js';

/** The engine error a lib error stands for (keeping its message and stack), or `err` itself. */
export function engineErrorOf(err: unknown): unknown {
  let translated: AbortedError | StageError;
  if (err instanceof InterruptedError) translated = new AbortedError(err.message);
  else if (err instanceof FetchError) translated = new StageError(err.message, { cause: err });
  else return err;
  // --verbose shows where lib raised it, not this function.
  if (err.stack?.includes('\n')) translated.stack = `${translated.name}: ${translated.message}${err.stack.slice(err.stack.indexOf('\n'))}`;
  return translated;
}

/** Runs `work`, translating what it throws with engineErrorOf. */
export async function withEngineErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw engineErrorOf(err);
  }
}
