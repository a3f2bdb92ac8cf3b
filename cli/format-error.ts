// The one error formatter: every failure the CLI reports goes through here.
import { PipelineError } from '../engine/errors.js';
import { paint } from './output.js';

export interface FormattedError {
  text: string;
  exitCode: number;
}

export function formatError(err: unknown, verbose: boolean): FormattedError {
  if (err instanceof PipelineError) {
    const text = verbose && err.stack ? err.stack : err.message;
    return { text: paint.red('error: ') + text, exitCode: err.exitCode };
  }
  // Anything else is a bug or an unexpected system error: one line unless --verbose.
  const e = err instanceof Error ? err : new Error(String(err));
  const text = verbose && e.stack ? e.stack : `${e.message}${verbose ? '' : ' (run with --verbose for details)'}`;
  return { text: paint.red('error: ') + text, exitCode: 1 };
}
