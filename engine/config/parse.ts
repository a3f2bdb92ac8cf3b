// Validates pipeline text into a resolved Pipeline: YAML syntax → structure and unknown keys →
// `--set` overrides → `${params.x}` substitution → each kind's params schema → the stage graph
// (config/graph-check.ts). Every problem found is reported at once, each with its file:line:col
// (config/messages.ts words them); nothing is read or written (config/load.ts reads the file).
import { statSync } from 'node:fs';
import { basename, dirname, relative, resolve, sep } from 'node:path';
import { LineCounter, parseDocument, visit, type YAMLError } from 'yaml';
import { z } from 'zod';
import { attemptPolicy } from './attempt-policy.js';
import { CMD_STAGE_KEYS, KIND_STAGE_KEYS, RESERVED_STAGE_NAMES, STAGE_NAME, TOP_LEVEL_KEYS, cmdStageSchema, kindStageSchema } from './schema.js';
import { checkAutomation } from './automation.js';
import type { StageKind } from '../contract.js';
import { remoteSchema, remoteUrlProblem, type RemoteConfig } from './remote.js';
import { ConfigError, ConfigErrors } from '../errors.js';
import type { Draft } from './draft.js';
import { checkGraph, checkOwnership } from './graph-check.js';
import { topologicalOrder } from './graph.js';
import { commandWithParamEnv, findReferences, interpolate, type InterpolationError } from './interpolate.js';
import { describeValue, formatPath, isRecord, reportIssues, Validation } from './messages.js';
import { applySets, parseSet, type SetOverride } from './overrides.js';
import type { Pipeline, StageSpec } from './pipeline.js';
import { didYouMean } from './suggest.js';
import { findUnknownKeys } from './unknown-keys.js';
import { STORE_DIR, normalizeWorkspacePath, overlaps } from '../store/workspace-paths.js';
import { YamlLocator, type DocPath } from './yaml-locations.js';

export type KindRegistry = ReadonlyMap<string, StageKind>;

export interface ParseOptions {
  /** Absolute path of the pipeline file. */
  file: string;
  /** The file name as shown in messages. */
  shownAs: string;
  sets?: readonly (string | SetOverride)[];
  kinds: KindRegistry;
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
    throw new ConfigErrors([
      new ConfigError(`YAML: aliases expand too much (more than ${MAX_ALIAS_COUNT} nodes through aliases): ${err.message}`, at.at(first ?? 0)),
    ]);
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
  const applied = applySets(root, sets, (kind, param) => paramDefault(options.kinds, kind, param));
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
    v.key(
      ['stages'],
      root.stages === null
        ? 'stages: is empty (define at least one stage)'
        : `stages: must be a map of stage names to stages, found ${describeValue(root.stages)}`,
    );
  } else if (Object.keys(root.stages).length === 0) v.key(['stages'], 'stages: is empty (define at least one stage)');
  const rawStages = isRecord(root.stages) ? root.stages : {};

  const remote = root.remote === undefined ? undefined : checkRemote(v, root.remote);
  const workspace = root.workspace === undefined ? dirname(options.file) : checkWorkspace(v, root.workspace, options.file);

  const drafts = new Map<string, Draft>();
  for (const [name, value] of Object.entries(rawStages)) drafts.set(name, checkStage(v, name, value, params, options.kinds));
  checkOwnership(v, drafts, relative(workspace, options.file).split(sep).join('/'));
  const needsOf = checkGraph(v, drafts);
  const automation = checkAutomation(
    {
      value: (path, message) => v.value(path, message),
      key: (path, message) => v.key(path, message),
      issues: (issues, data, base, label) => reportIssues(v, issues, data, base, '', label, 'key'),
      location: (path) => v.at.key(path),
    },
    root,
    new Map(
      [...drafts.values()].map((d) => [
        d.name,
        { kind: d.kind, params: d.params, needs: needsOf.get(d.name) ?? [], hasParams: d.kind !== undefined && d.kind !== 'cmd' },
      ]),
    ),
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
      ...(d.attempts ? { attempts: d.attempts } : {}),
    });
  }
  return {
    file: options.file,
    root: workspace,
    params,
    stages,
    order: topologicalOrder(names, (n) => stages.get(n)!.needs),
    ...(automation.schedule.length ? { schedule: automation.schedule } : {}),
    ...(automation.promote ? { promote: automation.promote } : {}),
    ...(automation.retention ? { retention: automation.retention } : {}),
    ...(remote ? { remote } : {}),
  };
}

/** The `remote:` section (config/remote.ts): its schema, and a URL without credentials. */
function checkRemote(v: Validation, value: unknown): RemoteConfig | undefined {
  if (!isRecord(value)) {
    v.value(['remote'], `remote: must be a map with url: (and endpoint:, region:...), found ${describeValue(value)}`);
    return undefined;
  }
  const allowed = Object.keys(remoteSchema.shape);
  let ok = true;
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    const secret = /key|secret|token|password|credential/i.test(key)
      ? ' (credentials never go in pipeline.yaml: see docs/remote-and-queue.md, "Remote cache")'
      : '';
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

function checkCmdStage(v: Validation, draft: Draft, stage: Record<string, unknown>, base: DocPath, label: string): void {
  draft.kind = 'cmd';
  const parsed = cmdStageSchema.safeParse(stage);
  if (!parsed.success) {
    reportIssues(v, parsed.error.issues, stage, base, '', label, 'key');
    return;
  }
  draft.cmd = parsed.data.cmd;
  draft.attempts = attemptPolicy(parsed.data);
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
  draft.attempts = attemptPolicy(parsed.data);
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

/** `workspace:` — a directory relative to the pipeline file; returns its absolute path. */
function checkWorkspace(v: Validation, value: unknown, file: string): string {
  if (typeof value !== 'string' || value === '') {
    v.value(['workspace'], `workspace: must be a directory path relative to the pipeline file, found ${describeValue(value)}`);
    return dirname(file);
  }
  const dir = resolve(dirname(file), value);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) v.value(['workspace'], `workspace: '${value}' is not a directory (${dir})`);
  return dir;
}

/** What a kind's param defaults to (its schema parsing `undefined`), or undefined. */
function paramDefault(kinds: KindRegistry, kind: string, param: string): unknown {
  const shape = (kinds.get(kind)?.params as { shape?: Record<string, { safeParse?(v: unknown): { success: boolean; data?: unknown } }> } | undefined)?.shape;
  const parsed = shape?.[param]?.safeParse?.(undefined);
  return parsed?.success ? parsed.data : undefined;
}
