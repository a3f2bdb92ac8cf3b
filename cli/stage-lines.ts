// Shared text formatting of the store commands (run, status, show, runs, gc, verify).
import { isAbsolute, relative } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { formatDuration, paint } from './output.js';

export type LineOutcome = 'cached' | 'ran' | 'failed' | 'skipped' | 'aborted' | 'run';

const colour: Record<LineOutcome, (s: string) => string> = {
  cached: paint.dim,
  ran: paint.green,
  run: paint.yellow,
  failed: paint.red,
  skipped: paint.yellow,
  aborted: paint.red,
};

/** `ran     train     1.2s  note` — the outcome column is fixed width, the stage column `width` wide. */
export function stageLine(outcome: LineOutcome, stage: string, width: number, durationMs?: number, note?: string): string {
  const parts = [colour[outcome](outcome.padEnd(7)), stage.padEnd(width)];
  if (durationMs !== undefined) parts.push(formatDuration(durationMs).padStart(6));
  if (note) parts.push(note);
  return parts.join('  ').trimEnd();
}

export function nameWidth(names: Iterable<string>): number {
  let w = 0;
  for (const n of names) w = Math.max(w, n.length);
  return w;
}

/** A path as the user would type it from the current directory. */
export function shown(path: string, cwd = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** Option parsers: a bad value is a usage error (commander reports it; exit 2). */
/** `--metrics-port`: a TCP port, 0 for any free one. */
export function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number (0-65535; 0: any free port)');
  return n;
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds (0 or more)');
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number above 0');
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number (0 or more)');
  return n;
}

/** `90s`, `10m`, `2h`, `1.5h` or a number of seconds → milliseconds (above 0). */
export function positiveDuration(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'] : NaN;
  if (!(ms >= 1)) throw new InvalidArgumentError('expected a duration such as 90s, 10m or 2h');
  return Math.round(ms);
}

export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `--unset STAGE.PARAM` (repeatable): a param name, no value. */
export function collectUnset(value: string, previous: string[]): string[] {
  if (value.includes('=')) throw new InvalidArgumentError('expected STAGE.PARAM or params.NAME, without a value');
  return [...previous, value];
}

/**
 * The overrides for the config loader: `--unset a.b` is `--set a.b=` (removes the param). Unsets
 * go first, so a `--set` of the same param wins.
 */
export function overrideArgs(options: { set: string[]; unset: string[] }): string[] {
  return [...options.unset.map((path) => `${path}=`), ...options.set];
}

export const UNSET_HELP = 'remove a param, e.g. fetch.md5 (repeatable; same as --set fetch.md5=)';

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
