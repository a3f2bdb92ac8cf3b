// Loads pipeline.yaml into a validated, resolved Pipeline: YAML syntax → structure and unknown keys
// → `--set` overrides → `${params.x}` substitution → each kind's params schema → the stage graph
// (needs, implied needs, outputs, cycles). Every problem found is reported at once, each with its
// file:line:col; nothing is written.
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';
import { LineCounter, parseDocument, visit, type YAMLError } from 'yaml';
import { z } from 'zod';
import {
  CMD_STAGE_KEYS,
  KIND_STAGE_KEYS,
  RESERVED_STAGE_NAMES,
  STAGE_NAME,
  TOP_LEVEL_KEYS,
  cmdStageSchema,
  kindStageSchema,
} from './schema.js';
import { checkAutomation } from './automation.js';
import type { StageKind } from '../contract.js';
import { remoteSchema, remoteUrlProblem, type RemoteConfig } from '../remote/config.js';
import { ConfigError, ConfigErrors, type SourceLocation } from '../errors.js';
import { findCycles, topologicalOrder } from './graph.js';
import { commandWithParamEnv, findReferences, interpolate, type InterpolationError } from './interpolate.js';
import { applySets, originOf, parseSet, pathKey, type SetOverride } from './overrides.js';
import type { Pipeline, StageSpec } from '../pipeline.js';
import { didYouMean } from './suggest.js';
import { findUnknownKeys } from './unknown-keys.js';
import { STORE_DIR, normalizeWorkspacePath, overlaps } from '../store/workspace-paths.js';
import { YamlLocator, type DocPath } from './yaml-locations.js';

export { parseSet, type SetOverride } from './overrides.js';
export { selectStages, downstreamOf } from './graph.js';

export type KindRegistry = ReadonlyMap<string, StageKind>;

export interface LoadOptions {
  /** `--set` arguments (`stage.param=value`, `params.name=value`). */
  sets?: readonly string[];
  /** Stage kinds (default: the built-in registry in stages/index.ts). */
  kinds?: KindRegistry;
  /** Directory that relative paths (and the shown file name) are taken from (default: process.cwd()). */
  cwd?: string;
}

export interface ParseOptions {
  /** Absolute path of the pipeline file. */
  file: string;
  /** The file name as shown in messages. */
  shownAs: string;
  sets?: readonly (string | SetOverride)[];
  kinds: KindRegistry;
}

/** Reads and validates a pipeline file. Throws ConfigErrors (exit 2) listing every problem. */
export async function loadPipeline(file: string, options: LoadOptions = {}): Promise<Pipeline> {
  const cwd = options.cwd ?? process.cwd();
  const path = resolve(cwd, file);
  const shownAs = shownPath(path, cwd);
  const sets = (options.sets ?? []).map(parseSet);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file (--config FILE names another)' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new ConfigErrors([new ConfigError(`cannot read ${shownAs}: ${why}`)]);
  }
  // Loaded only when needed, so tests with their own kinds never load the real ones.
  const kinds = options.kinds ?? (await import('../../stages/index.js')).builtinKinds;
  return parsePipeline(text, { file: path, shownAs, sets, kinds });
}

/** The path relative to `cwd` when that is shorter (as people typed it), else absolute. */
export function shownPath(path: string, cwd: string = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel !== '' && !isAbsolute(rel) && rel.length < path.length ? rel : path;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  const type = value === null ? 'null' : Array.isArray(value) ? 'list' : typeof value === 'object' ? 'map' : typeof value;
  if (type === 'list' || type === 'map') return `a ${type}`;
  const shown = JSON.stringify(value) ?? String(value);
  return `${type} ${shown.length > 40 ? shown.slice(0, 37) + '...' : shown}`;
}

const TYPE_NAMES: Record<string, string> = { int: 'integer', record: 'map', object: 'map', array: 'list' };

/** A stage under construction: what validation could establish, even when parts of it are invalid. */
interface Draft {
  name: string;
  loc: SourceLocation;
  kind?: string;
  params?: Record<string, unknown>;
  /** The stage's `with:` after substitution (to locate params that name stages). */
  withValue?: Record<string, unknown>;
  cmd?: string;
  /** The command as run, with params passed as environment variables (see commandWithParamEnv). */
  cmdExec?: { exec: string; env: Record<string, string> };
  deps: { path: string; at: DocPath }[];
  outs: { path: string; at: DocPath }[];
  needs: { name: string; at: DocPath }[];
  refs: string[];
}

class Validation {
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
    return unique.map((e, i) => ({ e, i })).sort((a, b) => rank(a.e) - rank(b.e) || a.i - b.i).map(({ e }) => e);
  }

  throwIfAny(): void {
    if (this.errors.length > 0) throw new ConfigErrors(this.sorted());
  }
}

function yamlMessage(error: YAMLError): string {
  if (error.code === 'MULTIPLE_DOCS') return 'YAML: a pipeline file holds one document (found a second `---`)';
  return `YAML: ${error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`;
}

/** Alias expansions allowed when reading a file (the yaml library's guard against alias bombs). */
const MAX_ALIAS_COUNT = 10_000;

/** Validates pipeline text (the synchronous core of loadPipeline). */
export function parsePipeline(text: string, options: ParseOptions): Pipeline {
  const lines = new LineCounter();
  // `merge`: `<<: *defaults` merge keys, so stages can share a block of params.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const at = new YamlLocator(doc, lines, options.shownAs);
  const v = new Validation(at);

  const sourceLines = text.split('\n');
  for (const error of doc.errors) {
    const loc = at.at(error.pos[0]);
    // `{` is YAML flow syntax: a reference inside [...] or {...} must be quoted.
    const hint = sourceLines[loc.line - 1]?.includes('${') ? ` (quote values containing \${...} inside [...] or {...}: "\${params.x}")` : '';
    v.errors.push(new ConfigError(yamlMessage(error) + hint, loc));
  }
  visit(doc, {
    Alias(_, node) {
      if (!node.resolve(doc)) v.errors.push(new ConfigError(`YAML: unknown alias *${node.source}`, at.at(node.range?.[0] ?? 0)));
    },
  });
  // Structure cannot be judged reliably past a syntax error.
  v.throwIfAny();

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // An alias bomb (aliases of aliases expanding exponentially): point at its first alias.
    if (!(err instanceof ReferenceError)) throw err;
    let first: number | undefined;
    visit(doc, {
      Alias(_, node) {
        first ??= node.range?.[0];
      },
    });
    throw new ConfigErrors([new ConfigError(`YAML: aliases expand too much (more than ${MAX_ALIAS_COUNT} nodes through aliases): ${err.message}`, at.at(first ?? 0))]);
  }
  if (raw === null || raw === undefined) {
    v.errors.push(new ConfigError('the file is empty (expected a stages: map)', at.at(0)));
    v.throwIfAny();
  }
  if (!isRecord(raw)) {
    v.value([], `expected a map with params: and stages:, found ${describeValue(raw)}`);
    v.throwIfAny();
  }
  const root = raw as Record<string, unknown>;

  for (const key of Object.keys(root)) {
    if (!TOP_LEVEL_KEYS.includes(key)) v.key([key], `unknown top-level key '${key}'${didYouMean(key, TOP_LEVEL_KEYS)} (allowed: ${TOP_LEVEL_KEYS.join(', ')})`);
  }

  const sets = (options.sets ?? []).map((s) => (typeof s === 'string' ? parseSet(s) : s));
  const applied = applySets(root, sets);
  for (const message of applied.errors) v.general(message);
  v.setOrigins(applied.origins);

  let params: Record<string, unknown> = {};
  if (root.params !== undefined) {
    if (isRecord(root.params)) params = root.params;
    else v.value(['params'], `params: must be a map of names to values, found ${describeValue(root.params)}`);
  }
  for (const path of findReferences(params)) v.value(['params', ...path], 'params cannot reference other params (only stages can use ${params.x})');

  if (!('stages' in root)) v.errors.push(new ConfigError('no stages: map (define at least one stage)', at.at(0)));
  else if (!isRecord(root.stages)) {
    v.key(['stages'], root.stages === null ? 'stages: is empty (define at least one stage)' : `stages: must be a map of stage names to stages, found ${describeValue(root.stages)}`);
  } else if (Object.keys(root.stages).length === 0) v.key(['stages'], 'stages: is empty (define at least one stage)');
  const rawStages = isRecord(root.stages) ? root.stages : {};

  const remote = root.remote === undefined ? undefined : checkRemote(v, root.remote);

  const drafts = new Map<string, Draft>();
  for (const [name, value] of Object.entries(rawStages)) drafts.set(name, checkStage(v, name, value, params, options.kinds));
  checkOwnership(v, drafts, basename(options.file));
  const needsOf = checkGraph(v, drafts);
  const automation = checkAutomation(
    {
      value: (path, message) => v.value(path, message),
      key: (path, message) => v.key(path, message),
      issues: (issues, data, base, label) => reportIssues(v, issues, data, base, '', label, 'key'),
      location: (path) => v.at.key(path),
    },
    root,
    new Map([...drafts.values()].map((d) => [d.name, { kind: d.kind, params: d.params, needs: needsOf.get(d.name) ?? [], hasParams: d.kind !== undefined && d.kind !== 'cmd' }])),
  );
  v.throwIfAny();

  const names = [...drafts.keys()];
  const stages = new Map<string, StageSpec>();
  for (const d of drafts.values()) {
    const needs = new Set(needsOf.get(d.name));
    stages.set(d.name, {
      name: d.name,
      kind: d.kind!,
      params: d.params ?? {},
      ...(d.cmd !== undefined ? { cmd: d.cmd } : {}),
      ...(d.cmdExec !== undefined ? { cmdExec: d.cmdExec.exec, cmdEnv: d.cmdExec.env } : {}),
      deps: d.deps.map((x) => x.path),
      outs: d.outs.map((x) => x.path),
      needs: names.filter((n) => needs.has(n)),
      loc: d.loc,
    });
  }
  return {
    file: options.file,
    root: dirname(options.file),
    params,
    stages,
    order: topologicalOrder(names, (n) => stages.get(n)!.needs),
    ...(automation.schedule.length ? { schedule: automation.schedule } : {}),
    ...(automation.promote ? { promote: automation.promote } : {}),
    ...(remote ? { remote } : {}),
  };
}

/** The `remote:` section (engine/remote/config.ts): its schema, and a URL without credentials. */
function checkRemote(v: Validation, value: unknown): RemoteConfig | undefined {
  if (!isRecord(value)) {
    v.value(['remote'], `remote: must be a map with url: (and endpoint:, region:...), found ${describeValue(value)}`);
    return undefined;
  }
  const allowed = Object.keys(remoteSchema.shape);
  let ok = true;
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    const secret = /key|secret|token|password|credential/i.test(key) ? ' (credentials never go in pipeline.yaml: see the README, "Remote cache")' : '';
    v.key(['remote', key], `remote: unknown key '${key}'${didYouMean(key, allowed)}${secret || ` (allowed: ${allowed.join(', ')})`}`);
    ok = false;
  }
  const result = z.safeParse(remoteSchema, value);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') continue;
      v.value(['remote', ...(issue.path as (string | number)[])], `remote.${formatPath(issue.path)}: ${issue.message}`);
    }
    return undefined;
  }
  const problem = remoteUrlProblem(result.data.url);
  if (problem) {
    v.value(['remote', 'url'], `remote.url: ${problem}`);
    return undefined;
  }
  return ok ? result.data : undefined;
}

/** Checks one stage entry and turns what is valid of it into a draft. */
function checkStage(v: Validation, name: string, value: unknown, params: Record<string, unknown>, kinds: KindRegistry): Draft {
  const base: DocPath = ['stages', name];
  const draft: Draft = { name, loc: v.at.key(base), deps: [], outs: [], needs: [], refs: [] };
  const label = `stage '${name}'`;

  if (!STAGE_NAME.test(name)) v.key(base, `${label}: a stage name is letters, digits, _ and -, starting with a letter or _`);
  else if (RESERVED_STAGE_NAMES.includes(name)) v.key(base, `${label}: '${name}' is reserved (--set ${name}.x=... sets a top-level param)`);

  if (!isRecord(value)) {
    v.key(base, `${label} must be a map with uses: <kind> or cmd: <command>, found ${describeValue(value)}`);
    return draft;
  }
  const hasUses = 'uses' in value;
  const hasCmd = 'cmd' in value;
  if (hasUses && hasCmd) v.key(base, `${label} has both uses: and cmd: (a stage runs either a kind or a shell command)`);
  if (!hasUses && !hasCmd) v.key(base, `${label} needs uses: <kind> or cmd: <shell command>`);

  const allowed = hasUses && !hasCmd ? KIND_STAGE_KEYS : hasCmd && !hasUses ? CMD_STAGE_KEYS : [...new Set([...KIND_STAGE_KEYS, ...CMD_STAGE_KEYS])];
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    const other = hasUses ? 'cmd:' : 'uses:';
    if (KIND_STAGE_KEYS.includes(key) || CMD_STAGE_KEYS.includes(key)) v.key([...base, key], `${label}: ${key}: is only for ${other} stages`);
    else v.key([...base, key], `${label}: unknown key '${key}'${didYouMean(key, allowed)} (allowed: ${allowed.join(', ')})`);
  }
  if (Array.isArray(value.needs)) {
    value.needs.forEach((need, i) => {
      if (typeof need === 'string') draft.needs.push({ name: need, at: [...base, 'needs', i] });
    });
  }
  if (hasUses === hasCmd) return draft;

  // Substitute ${params.x} in the fields that take it, keeping paths for error locations.
  // Unknown keys are reported above; the rest of the stage is still checked.
  const stage = Object.fromEntries(Object.entries(value).filter(([key]) => allowed.includes(key)));
  if (hasCmd && typeof stage.cmd === 'string') draft.cmdExec = commandWithParamEnv(stage.cmd, params);
  const substitutionErrors: InterpolationError[] = [];
  for (const field of ['with', 'cmd', 'deps', 'outs']) {
    if (field in stage) stage[field] = interpolate(stage[field], params, substitutionErrors, [...base, field]);
  }
  for (const e of substitutionErrors) {
    v.value(e.path, `${label}: ${e.message}`);
    v.substitutionFailed(e.path);
  }

  if (hasCmd) checkCmdStage(v, draft, stage, base, label);
  else checkKindStage(v, draft, stage, base, label, kinds);
  return draft;
}

/** Reports zod issues at the YAML location of the offending value (or of its parent when missing). */
function reportIssues(v: Validation, issues: readonly z.core.$ZodIssue[], data: unknown, base: DocPath, prefix: string, label: string, what: string): void {
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

function checkCmdStage(v: Validation, draft: Draft, stage: Record<string, unknown>, base: DocPath, label: string): void {
  draft.kind = 'cmd';
  const parsed = cmdStageSchema.safeParse(stage);
  if (!parsed.success) {
    reportIssues(v, parsed.error.issues, stage, base, '', label, 'key');
    return;
  }
  draft.cmd = parsed.data.cmd;
  for (const field of ['deps', 'outs'] as const) {
    parsed.data[field].forEach((rawPath, i) => {
      const at: DocPath = [...base, field, i];
      const normalized = normalizeWorkspacePath(rawPath);
      if (!normalized.ok) return v.value(at, `${label}: ${field} path '${rawPath}' ${normalized.message}`);
      if (field === 'outs' && overlaps(normalized.path, STORE_DIR)) {
        return v.value(at, `${label}: outs path '${rawPath}' overlaps the store directory ${STORE_DIR}/`);
      }
      draft[field].push({ path: normalized.path, at });
    });
  }
}

function checkKindStage(v: Validation, draft: Draft, stage: Record<string, unknown>, base: DocPath, label: string, kinds: KindRegistry): void {
  const parsed = kindStageSchema.safeParse(stage);
  if (!parsed.success) reportIssues(v, parsed.error.issues, stage, base, '', label, 'key');
  const uses = stage.uses;
  if (typeof uses !== 'string') return;
  const kind = kinds.get(uses);
  if (!kind) {
    const known = [...kinds.keys()];
    const list = known.length ? `known kinds: ${known.join(', ')}` : 'no kinds are registered';
    v.value([...base, 'uses'], `${label}: unknown kind '${uses}'${didYouMean(uses, known)} (${list})`);
    return;
  }
  draft.kind = kind.name;
  if (!parsed.success) return;
  const withValue = parsed.data.with ?? {};
  draft.withValue = withValue;

  const withBase: DocPath = [...base, 'with'];
  for (const unknown of findUnknownKeys(kind.params, withValue)) {
    const where = formatPath([...unknown.path, unknown.key]);
    const hint = didYouMean(unknown.key, unknown.known) || (unknown.known.length ? ` (allowed: ${unknown.known.join(', ')})` : '');
    v.key([...withBase, ...unknown.path, unknown.key], `${label}: unknown param '${where}' for kind ${kind.name}${hint}`);
  }
  const result = z.safeParse(kind.params, withValue);
  if (!result.success) {
    reportIssues(v, result.error.issues, withValue, base, 'with', label, 'param');
    return;
  }
  draft.params = result.data as Record<string, unknown>;
  try {
    draft.refs = kind.stageRefs?.(result.data) ?? [];
  } catch (err) {
    v.key(base, `${label}: kind ${kind.name} could not list the stages its params name: ${(err as Error).message}`);
  }
}

/** Path (inside `with:`) of the first string equal to `ref`, to point at a param naming a stage. */
function findString(value: unknown, ref: string, path: DocPath = []): DocPath | undefined {
  if (value === ref) return path;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findString(value[i], ref, [...path, i]);
      if (found) return found;
    }
  } else if (isRecord(value)) {
    for (const [k, item] of Object.entries(value)) {
      const found = findString(item, ref, [...path, k]);
      if (found) return found;
    }
  }
  return undefined;
}

/** Stages whose outs a cmd stage's deps read (a dep equal to, under, or containing another stage's out). */
function impliedNeeds(draft: Draft, outIndex: OutIndex): string[] {
  const found = new Set<string>();
  for (const dep of draft.deps) {
    for (const s of outIndex.atOrUnder.get(dep.path) ?? []) found.add(s);
    for (let i = dep.path.lastIndexOf('/'); i > 0; i = dep.path.lastIndexOf('/', i - 1)) for (const s of outIndex.exact.get(dep.path.slice(0, i)) ?? []) found.add(s);
  }
  found.delete(draft.name);
  return [...found].sort((a, b) => outIndex.rank.get(a)! - outIndex.rank.get(b)!);
}

/** Outs by path, and by every directory they lie in, so implied needs take one lookup per dep path level. */
interface OutIndex {
  exact: Map<string, Set<string>>;
  atOrUnder: Map<string, Set<string>>;
  /** Declaration order, so implied needs are listed as before. */
  rank: Map<string, number>;
}

function indexOuts(drafts: ReadonlyMap<string, Draft>): OutIndex {
  const exact = new Map<string, Set<string>>();
  const atOrUnder = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, k: string, stage: string) => {
    let set = m.get(k);
    if (!set) m.set(k, (set = new Set()));
    set.add(stage);
  };
  for (const d of drafts.values()) {
    for (const out of d.outs) {
      add(exact, out.path, d.name);
      add(atOrUnder, out.path, d.name);
      for (let i = out.path.lastIndexOf('/'); i > 0; i = out.path.lastIndexOf('/', i - 1)) add(atOrUnder, out.path.slice(0, i), d.name);
    }
  }
  return { exact, atOrUnder, rank: new Map([...drafts.keys()].map((n, i) => [n, i])) };
}

/**
 * Outs a run would delete before the command starts: never the stage's own deps, the pipeline
 * file or .git (the store is refused with the path itself).
 */
function checkOwnership(v: Validation, drafts: ReadonlyMap<string, Draft>, pipelineFile: string): void {
  for (const d of drafts.values()) {
    for (const out of d.outs) {
      const label = `stage '${d.name}': output '${out.path}'`;
      if (overlaps(out.path, pipelineFile)) v.value(out.at, `${label} is the pipeline file; run deletes outs before the command runs`);
      else if (overlaps(out.path, '.git')) v.value(out.at, `${label} is inside .git; outs are deleted before the command runs`);
      const dep = d.deps.find((x) => overlaps(x.path, out.path));
      if (dep) {
        const loc = v.at.value(dep.at);
        const relation = dep.path === out.path ? 'is also its dep' : dep.path.startsWith(out.path + '/') ? `contains its dep '${dep.path}'` : `is inside its dep '${dep.path}'`;
        v.value(out.at, `${label} ${relation} (${loc.file}:${loc.line}:${loc.col}); outs are deleted before the command runs, so it would delete its own input (write to a new file)`);
      }
    }
  }
}

/** Checks needs and params naming unknown stages, outputs claimed twice, and cycles; returns each stage's needs. */
function checkGraph(v: Validation, drafts: ReadonlyMap<string, Draft>): Map<string, string[]> {
  const names = [...drafts.keys()];
  for (const d of drafts.values()) {
    for (const need of d.needs) {
      if (!drafts.has(need.name)) v.value(need.at, `stage '${d.name}': needs unknown stage '${need.name}'${didYouMean(need.name, names)}`);
    }
    for (const ref of d.refs) {
      if (drafts.has(ref)) continue;
      const inWith = findString(d.withValue, ref);
      const where = inWith ? ` (with: ${formatPath(inWith)})` : '';
      v.value(['stages', d.name, 'with', ...(inWith ?? [])], `stage '${d.name}': names unknown stage '${ref}'${where}${didYouMean(ref, names)}`);
    }
  }

  // Two stages writing the same workspace path (or one inside the other) would overwrite each other.
  const outs = [...drafts.values()].flatMap((d) => d.outs.map((out) => ({ stage: d.name, ...out })));
  // The first earlier out at the same path, at a directory above it, or below it (indexes by path: linear, not pairwise).
  const firstAt = new Map<string, number>();
  const firstAtOrUnder = new Map<string, number>();
  for (let j = 0; j < outs.length; j++) {
    const b = outs[j];
    const ancestors: string[] = [];
    for (let k = b.path.lastIndexOf('/'); k > 0; k = b.path.lastIndexOf('/', k - 1)) ancestors.push(b.path.slice(0, k));
    const candidates = [firstAtOrUnder.get(b.path), ...ancestors.map((p) => firstAt.get(p))].filter((i): i is number => i !== undefined);
    if (!firstAt.has(b.path)) firstAt.set(b.path, j);
    for (const p of [b.path, ...ancestors]) if (!firstAtOrUnder.has(p)) firstAtOrUnder.set(p, j);
    if (candidates.length > 0) {
      const a = outs[Math.min(...candidates)];
      const owner = a.stage === b.stage ? '' : ` of stage '${a.stage}'`;
      const relation = a.path === b.path ? (a.stage === b.stage ? 'is listed twice' : `is also an output${owner}`) : b.path.startsWith(a.path + '/') ? `is inside output '${a.path}'${owner}` : `contains output '${a.path}'${owner}`;
      const loc = v.at.value(a.at);
      v.value(b.at, `stage '${b.stage}': output '${b.path}' ${relation} (${loc.file}:${loc.line}:${loc.col})`);
    }
  }

  const outIndex = indexOuts(drafts);
  const needs = new Map([...drafts.values()].map((d) => [d.name, [...d.needs.map((n) => n.name), ...d.refs, ...impliedNeeds(d, outIndex)]]));
  for (const cycle of findCycles(names, (n) => needs.get(n)!)) v.key(['stages', cycle[0]], `cycle: ${cycle.join(' -> ')}`);
  return needs;
}
