// The one error formatter: every failure the CLI reports goes through here.
import { PipelineError } from '../engine/errors.js';
import { isDiskFull } from '../engine/store/fs-tree.js';
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
  // A full disk where no code words it (a bare `ENOSPC: no space left on device, write`): say what it means.
  if (isDiskFull(err)) {
    const path = (err as { path?: unknown }).path;
    const where = typeof path === 'string' ? ` writing ${path}` : '';
    const text = verbose && err instanceof Error && err.stack ? err.stack : `no space left on device${where}: the disk is full; make room and run again`;
    return { text: paint.red('error: ') + text, exitCode: 1 };
  }
  // Anything else is a bug or an unexpected system error: one line unless --verbose.
  const e = err instanceof Error ? err : new Error(String(err));
  const text = verbose && e.stack ? e.stack : `${e.message}${verbose ? '' : ' (run with --verbose for details)'}`;
  return { text: paint.red('error: ') + text, exitCode: 1 };
}
