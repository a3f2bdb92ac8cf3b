// How config errors are worded and collected: a zod issue becomes one line at the YAML location of
// the value it is about ("expected integer, got string \"x\""), noting a --set that produced it.
import type { z } from 'zod';
import { ConfigError, ConfigErrors } from '../errors.js';
import { originOf, pathKey } from './overrides.js';
import type { DocPath, YamlLocator } from './yaml-locations.js';

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `layers[2].units` for ['layers', 2, 'units']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

function getIn(value: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let current = value;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === 'number' && segment < current.length) current = current[segment];
    else if (isRecord(current) && typeof segment === 'string' && Object.hasOwn(current, segment)) current = current[segment];
    else return { found: false, value: undefined };
  }
  return { found: true, value: current };
}

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  const type = value === null ? 'null' : Array.isArray(value) ? 'list' : typeof value === 'object' ? 'map' : typeof value;
  if (type === 'list' || type === 'map') return `a ${type}`;
  const shown = JSON.stringify(value) ?? String(value);
  return `${type} ${shown.length > 40 ? shown.slice(0, 37) + '...' : shown}`;
}

const TYPE_NAMES: Record<string, string> = { int: 'integer', record: 'map', object: 'map', array: 'list' };

export class Validation {
  readonly errors: ConfigError[] = [];
  private origins: ReadonlyMap<string, string> = new Map();
  /** Values whose `${params.x}` could not be substituted: a type error there would only repeat it. */
  private readonly unsubstituted = new Set<string>();

  constructor(readonly at: YamlLocator) {}

  setOrigins(origins: ReadonlyMap<string, string>): void {
    this.origins = origins;
  }

  /** An error about the value at `path` (noting the --set that produced it, if one did). */
  value(path: DocPath, message: string): void {
    const origin = originOf(this.origins, path);
    const note = origin && !this.at.has(path) ? ` (from --set ${origin})` : origin ? ` (overridden by --set ${origin})` : '';
    this.errors.push(new ConfigError(message + note, this.at.value(path)));
  }

  substitutionFailed(path: DocPath): void {
    this.unsubstituted.add(pathKey(path));
  }

  isUnsubstituted(path: DocPath): boolean {
    for (let n = path.length; n > 0; n--) if (this.unsubstituted.has(pathKey(path.slice(0, n)))) return true;
    return false;
  }

  /** An error about the key at `path` (unknown keys, stage declarations). */
  key(path: DocPath, message: string): void {
    this.errors.push(new ConfigError(message, this.at.key(path)));
  }

  /** An error that has no place in the file (e.g. a bad --set). */
  general(message: string): void {
    this.errors.push(new ConfigError(message));
  }

  /** Unlocated errors first, then by line and column; duplicates dropped. */
  sorted(): ConfigError[] {
    const seen = new Set<string>();
    const unique = this.errors.filter((e) => !seen.has(e.message) && seen.add(e.message));
    const rank = (e: ConfigError) => (e.location ? e.location.line * 1e6 + e.location.col : -1);
    return unique
      .map((e, i) => ({ e, i }))
      .sort((a, b) => rank(a.e) - rank(b.e) || a.i - b.i)
      .map(({ e }) => e);
  }

  throwIfAny(): void {
    if (this.errors.length > 0) throw new ConfigErrors(this.sorted());
  }
}

/** Reports zod issues at the YAML location of the offending value (or of its parent when missing). */
export function reportIssues(
  v: Validation,
  issues: readonly z.core.$ZodIssue[],
  data: unknown,
  base: DocPath,
  prefix: string,
  label: string,
  what: string,
): void {
  for (const issue of issues) {
    // Unknown keys are reported by findUnknownKeys, with hints; pattern checks on needs by the graph check.
    if (issue.code === 'unrecognized_keys') continue;
    if (issue.path[0] === 'needs' && issue.code === 'invalid_format') continue;
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const at = [...base, ...(prefix ? [prefix] : []), ...path];
    if (v.isUnsubstituted(at)) continue;
    const shown = formatPath([...(prefix ? [prefix] : []), ...path]);
    const here = getIn(data, path);
    let message: string;
    if (issue.code === 'invalid_type' && !here.found) {
      message = `${label}: missing ${what} '${formatPath(path)}' (expected ${TYPE_NAMES[issue.expected] ?? issue.expected})`;
    } else if (issue.code === 'invalid_type') {
      message = `${label}: ${shown}: expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeValue(here.value)}`;
    } else {
      message = `${label}: ${shown}: ${issue.message}`;
    }
    v.value(at, message);
  }
}
