// `--set stage.param=value` and `--set params.x=value`: command-line overrides applied to the parsed
// file before `${params.x}` substitution and validation. An empty value (`--set fetch.md5=`, or
// `--unset fetch.md5`) removes the param; `--set x=''` sets an empty string.
import { isCollection, isScalar, parseDocument } from 'yaml';
import { UsageError } from '../errors.js';
import { didYouMean } from './suggest.js';
import type { DocPath } from './yaml-locations.js';

/** The value of an override that removes the param. */
export const UNSET: unique symbol = Symbol('unset');

export interface SetOverride {
  /** The argument as given, for messages. */
  text: string;
  /** `params` for a top-level param, else a stage name. */
  target: string;
  /** Dotted path below the target (inside `params:` or the stage's `with:`). */
  path: string[];
  /** The new value, or UNSET to remove the param. */
  value: unknown;
}

/**
 * Parses `a.b.c=value`. The value is read as a YAML scalar (`0.01` is a number, `true` a boolean,
 * `'3'` a string) or a flow collection (`[32, 64]`); anything else stays the literal text.
 */
export function parseSet(text: string): SetOverride {
  const eq = text.indexOf('=');
  const lhs = eq < 0 ? '' : text.slice(0, eq).trim();
  const segments = lhs.split('.');
  if (eq < 0 || segments.length < 2 || segments.some((s) => s === '')) {
    throw new UsageError(`--set ${text}: expected STAGE.PARAM=VALUE or params.NAME=VALUE`);
  }
  return { text, target: segments[0], path: segments.slice(1), value: parseSetValue(text.slice(eq + 1)) };
}

function parseSetValue(raw: string): unknown {
  if (raw.trim() === '') return UNSET;
  const doc = parseDocument(raw);
  if (doc.errors.length > 0) return raw;
  const contents = doc.contents;
  if (isScalar(contents)) return contents.toJSON();
  if (isCollection(contents) && contents.flow) return doc.toJS();
  return raw;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The default of a kind's param (a map default seeds a nested --set), or undefined. */
export type ParamDefaults = (kind: string, param: string) => unknown;

export interface AppliedSets {
  errors: string[];
  /** Document path of each overridden value → the --set argument that set it. */
  origins: Map<string, string>;
}

export const pathKey = (path: DocPath): string => JSON.stringify(path.map(String));

/**
 * Writes `value` at `path` under `root`, creating maps on the way, or removes what is there (UNSET).
 * Returns an error message or undefined.
 */
function setIn(root: Record<string, unknown>, path: string[], value: unknown, describe: string): string | undefined {
  let current = root;
  const last = path[path.length - 1];
  for (let i = 0; i < path.length - 1; i++) {
    const next = current[path[i]];
    if (value === UNSET && (next === undefined || next === null)) return nothingToRemove(current, path.slice(0, i + 1), describe);
    if (next === undefined || next === null) {
      const created: Record<string, unknown> = {};
      current[path[i]] = created;
      current = created;
    } else if (isRecord(next)) {
      current = next;
    } else {
      return `${describe}.${path.slice(0, i + 1).join('.')} is ${JSON.stringify(next)}, not a map`;
    }
  }
  if (value !== UNSET) current[last] = value;
  else if (Object.hasOwn(current, last)) delete current[last];
  else return nothingToRemove(current, path, describe);
  return undefined;
}

/** Removing what is not written is most likely a typo: say so rather than do nothing. */
function nothingToRemove(parent: Record<string, unknown>, path: string[], describe: string): string {
  const names = Object.keys(parent);
  const name = path[path.length - 1]!;
  return `nothing to remove: ${describe}.${path.join('.')} is not set${didYouMean(name, names)}`;
}

/**
 * Applies the overrides to the raw document (as plain JS, mutated in place). A stage override
 * goes into its `with:`; only `uses:` stages have params.
 */
export function applySets(doc: Record<string, unknown>, sets: readonly SetOverride[], defaults?: ParamDefaults): AppliedSets {
  const errors: string[] = [];
  const origins = new Map<string, string>();
  const stages = isRecord(doc.stages) ? doc.stages : {};
  for (const set of sets) {
    const fail = (message: string) => errors.push(`--set ${set.text}: ${message}`);
    if (set.target === 'params') {
      if (doc.params === undefined || doc.params === null) doc.params = {};
      if (!isRecord(doc.params)) {
        fail('params: is not a map');
        continue;
      }
      const error = setIn(doc.params, set.path, set.value, 'params');
      if (error) fail(error);
      else origins.set(pathKey(['params', ...set.path]), set.text);
      continue;
    }
    const stage = stages[set.target];
    if (!Object.hasOwn(stages, set.target) || !isRecord(stage)) {
      const names = Object.keys(stages);
      fail(`unknown stage '${set.target}'${didYouMean(set.target, names)} (stages: ${names.join(', ') || 'none'}; params.NAME sets a top-level param)`);
      continue;
    }
    if (!('uses' in stage)) {
      fail(`stage '${set.target}' is a cmd: stage; only uses: stages have params to set`);
      continue;
    }
    if (stage.with === undefined || stage.with === null) stage.with = {};
    if (!isRecord(stage.with)) {
      fail(`stage '${set.target}': with: is not a map`);
      continue;
    }
    // `--set train.optimizer.lr=…` where optimizer is not written: into its default, not an empty map.
    const param = set.path[0]!;
    if (set.path.length > 1 && set.value !== UNSET && (stage.with[param] === undefined || stage.with[param] === null) && typeof stage.uses === 'string') {
      const seed = defaults?.(stage.uses, param);
      if (isRecord(seed)) stage.with[param] = structuredClone(seed);
    }
    const error = setIn(stage.with, set.path, set.value, `${set.target}.with`);
    if (error) fail(error);
    else origins.set(pathKey(['stages', set.target, 'with', ...set.path]), set.text);
  }
  return { errors, origins };
}

/** The --set argument that produced the value at `path` (or a value above or below it), if any. */
export function originOf(origins: ReadonlyMap<string, string>, path: DocPath): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const hit = origins.get(pathKey(path.slice(0, n)));
    if (hit) return hit;
  }
  const prefix = pathKey(path).slice(0, -1) + ',';
  for (const [key, text] of origins) if (key.startsWith(prefix)) return text;
  return undefined;
}
