// docs/kinds.md: the reference of the built-in stage kinds, generated from each kind's own
// description, inputs, outputs and params schema (the descriptions given with zod's .describe()),
// the same definitions the validator and the JSON Schema use, so the page cannot drift from the
// code (a test compares the committed file with this text; `npm run docs` regenerates it).
import { z } from 'zod';
import type { StageKind } from '../contract.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
/** zod writes Number.MAX_SAFE_INTEGER as the maximum of every int: no bound worth printing. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;
/** A default longer than this (as YAML flow text) is printed below the table instead of in it. */
const INLINE_DEFAULT = 60;
/** Kinds in the order a pipeline uses them (unknown kinds after, by name). */
const ORDER = ['fetch', 'decode', 'normalize', 'augment', 'train', 'evaluate', 'report'];
const pipelineOrder = (name: string) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);

function paramsSchema(kind: StageKind): Json {
  return z.toJSONSchema(kind.params, { target: 'draft-07', io: 'input', unrepresentable: 'any' }) as Json;
}

/** One value as compact YAML flow text: `{type: rmsprop, lr: 0.001}`, `[3, 3]`, `auto`. */
function flow(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flow).join(', ')}]`;
  if (isObject(value))
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}: ${flow(v)}`)
      .join(', ')}}`;
  if (typeof value === 'string') return /^[\w./-]+$/.test(value) && !/^(true|false|null|\d.*)$/.test(value) ? value : JSON.stringify(value);
  return String(value);
}

const code = (text: string) => '`' + text + '`';

/** `name:` and the value one item or field a line, each in flow style (a layer list reads as one layer a line). */
function blockYaml(name: string, value: unknown): string {
  if (Array.isArray(value)) return [`${name}:`, ...value.map((v) => `  - ${flow(v)}`)].join('\n');
  if (isObject(value)) return [`${name}:`, ...Object.entries(value).map(([k, v]) => `  ${k}: ${flow(v)}`)].join('\n');
  return `${name}: ${flow(value)}`;
}

/** Where a variant of a union of objects is told apart: its `type: x` constant. */
function discriminator(schema: Json): string | undefined {
  const props = schema.properties;
  if (!isObject(props) || !isObject(props.type)) return undefined;
  const value = props.type.const;
  return typeof value === 'string' ? value : undefined;
}

function variants(schema: Json): Json[] | undefined {
  const list = schema.oneOf ?? schema.anyOf;
  return Array.isArray(list) ? list.filter(isObject) : undefined;
}

function range(schema: Json): string {
  const parts: string[] = [];
  const { minimum, exclusiveMinimum, maximum, exclusiveMaximum } = schema;
  if (typeof minimum === 'number' && minimum > -UNBOUNDED) parts.push(`≥ ${minimum}`);
  if (typeof exclusiveMinimum === 'number') parts.push(`> ${exclusiveMinimum}`);
  if (typeof maximum === 'number' && maximum < UNBOUNDED) parts.push(`≤ ${maximum}`);
  if (typeof exclusiveMaximum === 'number') parts.push(`< ${exclusiveMaximum}`);
  return parts.length > 0 ? ` ${parts.join(', ')}` : '';
}

/** A short type: `auto` or integer ≥ 1; list of string; `nearest` \| `constant`; object. */
export function typeText(schema: Json): string {
  // Table cells: a pipe inside a value is escaped too (GitHub splits cells on it even in code).
  const value = (v: unknown) => code(flow(v)).replace(/\|/g, '\\|');
  if ('const' in schema) return value(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map(value).join(' \\| ');
  const alternatives = variants(schema);
  if (alternatives) {
    const tags = alternatives.map(discriminator);
    if (tags.every((t) => t !== undefined)) return `one of ${tags.map((t) => code(`type: ${t}`)).join(', ')} (fields below)`;
    return alternatives.map(typeText).join(' or ');
  }
  switch (schema.type) {
    case 'integer':
    case 'number':
      return `${schema.type}${range(schema)}`;
    case 'string':
    case 'boolean':
      return schema.type;
    case 'array': {
      if (Array.isArray(schema.items)) return `[${schema.items.filter(isObject).map(typeText).join(', ')}]`;
      if (isObject(schema.items)) {
        const itemVariants = variants(schema.items);
        if (itemVariants?.every((v) => discriminator(v) !== undefined)) return 'list of objects by `type` (table below)';
        return `list of ${typeText(schema.items)}`;
      }
      return 'list';
    }
    case 'object':
      return isObject(schema.properties) ? 'object (fields below)' : 'object';
    default:
      return 'any';
  }
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n+/g, ' ');
/** Like cell, for text already holding escaped pipes (typeText's). */
const typeCell = (text: string) => text.replace(/\n+/g, ' ');

interface Row {
  name: string;
  type: string;
  default: string;
  description: string;
}

/** A long default goes below the table, as YAML; the cell points there. */
interface LongDefault {
  name: string;
  value: unknown;
}

function defaultText(name: string, schema: Json, longDefaults: LongDefault[]): string {
  if (!('default' in schema)) return '';
  const text = flow(schema.default);
  if (text.length <= INLINE_DEFAULT) return code(text);
  longDefaults.push({ name, value: schema.default });
  return 'see below';
}

/** The rows of an object's fields; nested objects (and unions of them) add rows `parent.field`. */
function rows(schema: Json, prefix: string, longDefaults: LongDefault[]): Row[] {
  const props = isObject(schema.properties) ? schema.properties : {};
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const out: Row[] = [];
  for (const [key, raw] of Object.entries(props)) {
    if (!isObject(raw)) continue;
    const name = prefix + key;
    out.push({
      name: code(name) + (required.has(key) ? ' (required)' : ''),
      type: typeText(raw),
      default: defaultText(name, raw, longDefaults),
      description: typeof raw.description === 'string' ? raw.description : '',
    });
    if (isObject(raw.properties)) out.push(...rows(raw, `${name}.`, longDefaults));
    const alternatives = variants(raw);
    if (alternatives?.every((v) => discriminator(v) !== undefined)) out.push(...variantRows(alternatives, `${name}.`, longDefaults));
    else for (const alternative of alternatives ?? []) if (isObject(alternative.properties)) out.push(...rows(alternative, `${name}.`, longDefaults));
  }
  return out;
}

/** The fields of a union's variants; a field the same in several variants is one row naming them. */
function variantRows(alternatives: Json[], prefix: string, longDefaults: LongDefault[]): Row[] {
  const merged = new Map<string, { row: Row; tags: string[] }>();
  for (const variant of alternatives) {
    const tag = discriminator(variant)!;
    const fields = { ...variant, properties: Object.fromEntries(Object.entries(variant.properties as Json).filter(([k]) => k !== 'type')) };
    for (const row of rows(fields, prefix, longDefaults)) {
      const id = JSON.stringify([row.name, row.type, row.default, row.description]);
      const seen = merged.get(id);
      if (seen) seen.tags.push(tag);
      else merged.set(id, { row, tags: [tag] });
    }
  }
  return [...merged.values()].map(({ row, tags }) => ({
    ...row,
    description: `(${tags.map((t) => code(`type: ${t}`)).join(', ')}) ${row.description}`.trim(),
  }));
}

function table(list: Row[]): string[] {
  return [
    '| param | type | default | description |',
    '|---|---|---|---|',
    ...list.map((r) => `| ${r.name} | ${typeCell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`),
  ];
}

/** Lists of objects told apart by `type` (train's `model` layers): one row per variant. */
function itemTables(schema: Json): string[] {
  const out: string[] = [];
  const props = isObject(schema.properties) ? schema.properties : {};
  for (const [key, raw] of Object.entries(props)) {
    if (!isObject(raw) || raw.type !== 'array' || !isObject(raw.items)) continue;
    const itemVariants = variants(raw.items);
    if (!itemVariants?.every((v) => discriminator(v) !== undefined)) continue;
    out.push('', `Items of ${code(key)}, one row per ${code('type')} (each field: its type, then ${code('= default')}, required or optional):`, '');
    out.push(`| ${code('type')} | fields |`, '|---|---|');
    for (const variant of itemVariants) {
      const required = new Set(Array.isArray(variant.required) ? variant.required : []);
      const fields = Object.entries(variant.properties as Json)
        .filter(([k, v]) => k !== 'type' && isObject(v))
        .map(([k, v]) => {
          const field = v as Json;
          const parts = [typeText(field), required.has(k) ? 'required' : 'default' in field ? `= ${code(flow(field.default))}` : 'optional'];
          if (typeof field.description === 'string') parts.push(field.description.replace(/\|/g, '\\|'));
          return `${code(k)}: ${parts.join(', ')}`;
        });
      out.push(`| ${code(discriminator(variant)!)} | ${typeCell(fields.join('; ') || '—')} |`);
    }
  }
  return out;
}

function kindSection(kind: StageKind): string[] {
  const schema = paramsSchema(kind);
  const longDefaults: LongDefault[] = [];
  const paramRows = rows(schema, '', longDefaults);
  const lines = [`## ${kind.name}`, '', kind.description.endsWith('.') ? kind.description : `${kind.description}.`, ''];
  lines.push(`**Inputs:** ${kind.inputs ?? 'none'}`, '');
  lines.push('**Outputs:**', '');
  for (const o of kind.outputs) lines.push(`- ${code(o.name)} (${o.type}${o.optional ? ', optional' : ''}): ${o.description}`);
  lines.push('', `**Params** (${code('with:')}):`, '');
  lines.push(...(paramRows.length > 0 ? table(paramRows) : ['none']));
  lines.push(...itemTables(schema));
  for (const d of longDefaults) {
    lines.push('', `Default of ${code(d.name)}:`, '', '```yaml', blockYaml(d.name, d.value), '```');
  }
  lines.push('');
  return lines;
}

/** The whole page, as committed in docs/kinds.md. */
export function kindsMarkdown(kinds: ReadonlyMap<string, StageKind>): string {
  const names = [...kinds.keys()].sort((a, b) => pipelineOrder(a) - pipelineOrder(b) || a.localeCompare(b));
  const lines = [
    '# Built-in stage kinds',
    '',
    '<!-- Generated by `npm run docs` (pipeline schema --markdown) from each kind in stages/<kind>/:',
    '     edit the descriptions there, not here. A test fails when this file is stale. -->',
    '',
    'A stage `uses:` a kind and gives its params under `with:` (see [pipeline-yaml.md](pipeline-yaml.md)).',
    'Every param is optional unless marked required; an absent param takes its default.',
    '`pipeline schema` prints the same definitions as JSON Schema (for editors).',
    '',
    ...names.map((n) => `- [${n}](#${n})`),
    '',
    ...names.flatMap((n) => kindSection(kinds.get(n)!)),
  ];
  return lines.join('\n');
}
