// `${params.x}` substitution in stage values. A string that is exactly one reference takes the
// referenced value with its type (`epochs: ${params.epochs}` stays a number); a reference inside
// a longer string is stringified into it. Only `${params.` is special, so shell variables such as
// `${HOME}` in `cmd:` pass through untouched.
import { didYouMean } from './suggest.js';
import type { DocPath } from './yaml-locations.js';

export interface InterpolationError {
  /** Path of the string holding the bad reference, relative to the value that was interpolated. */
  path: DocPath;
  message: string;
}

const WHOLE_REF = /^\$\{\s*params\.([^}\s]+)\s*\}$/;
const REF = /\$\{\s*params\.([^}\s]+)\s*\}/g;

export type Lookup = { found: true; value: unknown } | { found: false; message: string };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Looks up a dotted name (`a.b`, `list.0`) in the params. */
export function lookupParam(params: Record<string, unknown>, dotted: string): Lookup {
  let current: unknown = params;
  const segments = dotted.split('.');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    const soFar = ['params', ...segments.slice(0, i)].join('.');
    if (Array.isArray(current)) {
      const index = Number(segment);
      if (!Number.isInteger(index) || index < 0 || index >= current.length) {
        return { found: false, message: `${soFar} is a list of ${current.length}; '${segment}' is not an index in it` };
      }
      current = current[index];
    } else if (isRecord(current)) {
      if (!Object.hasOwn(current, segment)) {
        const keys = Object.keys(current);
        const known = keys.length ? didYouMean(segment, keys) || ` (${soFar} has: ${keys.join(', ')})` : ` (${soFar} is empty)`;
        return { found: false, message: `'${segment}' is not in ${soFar}${known}` };
      }
      current = current[segment];
    } else {
      return { found: false, message: `${soFar} is ${JSON.stringify(current)}, not a map` };
    }
  }
  return { found: true, value: current };
}

function stringify(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return String(value);
  return JSON.stringify(value);
}

/** Substitutes references in one string. */
export function interpolateString(text: string, params: Record<string, unknown>): { value: unknown; errors: string[] } {
  const whole = WHOLE_REF.exec(text);
  if (whole) {
    const found = lookupParam(params, whole[1]);
    return found.found ? { value: found.value, errors: [] } : { value: text, errors: [`unknown reference ${text}: ${found.message}`] };
  }
  const errors: string[] = [];
  const value = text.replace(REF, (ref: string, dotted: string) => {
    const found = lookupParam(params, dotted);
    if (found.found) return stringify(found.value);
    errors.push(`unknown reference ${ref}: ${found.message}`);
    return ref;
  });
  // Anything still starting like a reference is malformed (e.g. `${params}` or a missing `}`).
  if (text.replace(REF, '').includes('${params')) errors.push(`malformed reference in '${text}' (write \${params.name})`);
  return { value, errors };
}

/** Whether a string contains anything that looks like a params reference. */
export function hasReference(text: string): boolean {
  return text.includes('${params');
}

/** Substitutes references in every string inside `value` (maps and lists are copied, not mutated). */
export function interpolate(value: unknown, params: Record<string, unknown>, errors: InterpolationError[], path: DocPath = []): unknown {
  if (typeof value === 'string') {
    const result = interpolateString(value, params);
    for (const message of result.errors) errors.push({ path, message });
    return result.value;
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, params, errors, [...path, i]));
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, params, errors, [...path, k]);
    return out;
  }
  return value;
}

/** Paths of every string inside `value` that contains a reference (params may not reference params). */
export function findReferences(value: unknown, path: DocPath = []): DocPath[] {
  if (typeof value === 'string') return hasReference(value) ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => findReferences(item, [...path, i]));
  if (isRecord(value)) return Object.entries(value).flatMap(([k, v]) => findReferences(v, [...path, k]));
  return [];
}

/**
 * A `cmd:` as it is run: each `${params.x}` becomes a reference to an environment variable holding
 * the value, so the shell expands it (word splitting as unquoted text, one word inside double
 * quotes) but never parses it as code: `--set params.x='$(rm -rf ~)'` stays text. References that
 * do not resolve are left as they are (the substitution above reports them).
 */
export function commandWithParamEnv(text: string, params: Record<string, unknown>): { exec: string; env: Record<string, string> } {
  const env: Record<string, string> = {};
  const names = new Map<string, string>();
  const exec = text.replace(REF, (ref: string, dotted: string) => {
    const found = lookupParam(params, dotted);
    if (!found.found) return ref;
    let name = names.get(dotted);
    if (name === undefined) {
      const base =
        PARAM_ENV_PREFIX +
        dotted
          .split('.')
          .map((s) => s.replace(/[^A-Za-z0-9_]/g, '_'))
          .join('__');
      name = base;
      for (let n = 2; Object.hasOwn(env, name); n++) name = `${base}_${n}`;
      names.set(dotted, name);
      env[name] = stringify(found.value);
    }
    return `\${${name}}`;
  });
  return { exec, env };
}

/** Environment variables carrying `${params.x}` values into commands: PIPELINE_PARAM_x, PIPELINE_PARAM_a__b. */
export const PARAM_ENV_PREFIX = 'PIPELINE_PARAM_';
