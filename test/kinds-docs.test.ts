// docs/kinds.md, the reference of the built-in stage kinds, is generated from the kinds' own
// descriptions and params schemas: the committed file is what `pipeline schema --markdown`
// prints now (CI catches a stale page, as for schema/pipeline.schema.json), every param of a
// built-in kind has a description, and the generator renders types, defaults and nested fields.
import { describe, expect, test } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { kindsMarkdown, typeText } from '../engine/config/kinds-markdown.js';
import { builtinKinds } from '../stages/index.js';
import { fakeKinds } from './helpers/fake-kinds.js';
import { runCli } from './helpers/cli.js';

const PROJECT = resolve(new URL('../..', import.meta.url).pathname);
const COMMITTED = join(PROJECT, 'docs', 'kinds.md');

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

describe('docs/kinds.md', () => {
  test('equals what `pipeline schema --markdown` generates now (run `npm run docs` after changing a kind)', async () => {
    const generated = await runCli(['schema', '--markdown'], { cwd: PROJECT });
    expect(generated.stderr).toBe('');
    expect(generated.code).toBe(0);
    expect(await readFile(COMMITTED, 'utf8')).toBe(generated.stdout);
    expect(generated.stdout).toBe(kindsMarkdown(builtinKinds));
  });

  test('`pipeline schema --markdown --out FILE` writes the same text', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinds-docs-'));
    try {
      const out = join(dir, 'docs', 'kinds.md');
      const result = await runCli(['schema', '--markdown', '--out', out], { cwd: dir });
      expect(result.code).toBe(0);
      expect(await readFile(out, 'utf8')).toBe(await readFile(COMMITTED, 'utf8'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('every built-in kind has inputs and every param and nested field a description', () => {
    const missing: string[] = [];
    const walk = (schema: Json, path: string) => {
      const props = isObject(schema.properties) ? schema.properties : {};
      for (const [key, raw] of Object.entries(props)) {
        if (!isObject(raw) || key === 'type') continue;
        const name = path + key;
        if (typeof raw.description !== 'string' || raw.description.length < 10) missing.push(name);
        if (isObject(raw.properties)) walk(raw, `${name}.`);
        const alternatives = raw.oneOf ?? raw.anyOf;
        if (Array.isArray(alternatives)) for (const alt of alternatives) if (isObject(alt)) walk(alt, `${name}.`);
      }
    };
    for (const kind of builtinKinds.values()) {
      if (kind.inputs === undefined && kind.name !== 'fetch') missing.push(`${kind.name} (inputs)`);
      walk(z.toJSONSchema(kind.params, { io: 'input', unrepresentable: 'any' }) as Json, `${kind.name}.`);
    }
    expect(missing).toEqual([]);
  });
});

describe('the generator', () => {
  const page = kindsMarkdown(fakeKinds);

  test('a section per kind with its description, inputs, outputs and a params table', () => {
    expect(page).toContain('## source\n\nProduces numbers.\n\n**Inputs:** none');
    expect(page).toContain('- `numbers.json` (json): the numbers');
    expect(page).toContain('| `size` (required) | integer > 0 |  | how many |');
    expect(page).toContain('| `seed` | integer | `0` |  |');
    expect(page).toContain('- [learn](#learn)\n- [source](#source)');
  });

  test('nested objects get dotted rows; lists of tagged objects a table of their own', () => {
    expect(page).toContain('| `optimizer.name` | `sgd` \\| `adam` | `sgd` |  |');
    expect(page).toContain('| `optimizer` | object (fields below) | `{name: sgd, momentum: 0}` |  |');
    expect(page).toContain('| `layers` | list of objects by `type` (table below) | `[]` |  |');
    expect(page).toContain('| `dense` | `units`: integer > 0, required |');
  });

  test('types read as a person writes them', () => {
    expect(
      typeText({
        anyOf: [
          { type: 'string', const: 'auto' },
          { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
        ],
      }),
    ).toBe('`auto` or integer ≥ 1');
    expect(typeText({ type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 })).toBe('number > 0, < 1');
    expect(typeText({ type: 'array', items: { type: 'string' } })).toBe('list of string');
    expect(typeText({ type: 'array', items: [{ type: 'number' }, { type: 'number' }] })).toBe('[number, number]');
    expect(typeText({ type: 'string', enum: ['a', 'b|c'] })).toBe('`a` \\| `"b\\|c"`');
  });
});
