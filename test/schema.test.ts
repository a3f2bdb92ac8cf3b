// The JSON Schema of pipeline.yaml: the committed file is what the code generates, `with:` is checked
// by the kind that `uses:` selects, and the schema agrees with the validator on what is valid.
import { describe, test, expect } from '@jest/globals';
import { Ajv } from 'ajv';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parsePipeline } from '../engine/config/parse.js';
import { pipelineJsonSchema } from '../engine/config/json-schema.js';
import { fakeKinds } from './helpers/fake-kinds.js';
import { runCli } from './helpers/cli.js';

const PROJECT = resolve(new URL('../..', import.meta.url).pathname);
const COMMITTED = join(PROJECT, 'schema', 'pipeline.schema.json');

type Json = Record<string, any>;

function compile(schema: Json) {
  const ajv = new Ajv({ allErrors: true, strict: true });
  return ajv.compile(schema);
}

describe('schema/pipeline.schema.json', () => {
  test('equals what `pipeline schema` generates now (run `npm run schema` after changing a kind)', async () => {
    const generated = await runCli(['schema'], { cwd: PROJECT });
    expect(generated.stderr).toBe('');
    expect(generated.code).toBe(0);
    expect(await readFile(COMMITTED, 'utf8')).toBe(generated.stdout);
  });

  test('`pipeline schema --out FILE` writes the same text', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'schema-'));
    try {
      const out = join(dir, 'nested', 'pipeline.schema.json');
      const result = await runCli(['schema', '--out', out], { cwd: dir });
      expect(result.code).toBe(0);
      expect(await readFile(out, 'utf8')).toBe(await readFile(COMMITTED, 'utf8'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('is a valid draft-07 schema with a with: schema for every registered kind', async () => {
    const schema = JSON.parse(await readFile(COMMITTED, 'utf8')) as Json;
    expect(() => compile(schema)).not.toThrow();
    const kinds = schema.definitions.kindStage.properties.uses.enum as string[];
    expect(schema.definitions.kindStage.allOf.map((rule: Json) => rule.if.properties.uses.const)).toEqual(kinds);
  });
});

describe("generated from the validator's definitions", () => {
  const schema = pipelineJsonSchema(fakeKinds) as Json;
  const validate = compile(schema);

  test("uses: lists the kinds and selects each kind's params schema for with:", () => {
    const kindStage = schema.definitions.kindStage;
    expect(kindStage.properties.uses.enum).toEqual(['learn', 'source']);
    const rules = kindStage.allOf as Json[];
    expect(rules.map((r) => r.if)).toEqual([
      { properties: { uses: { const: 'learn' } }, required: ['uses'] },
      { properties: { uses: { const: 'source' } }, required: ['uses'] },
    ]);
    const sourceWith = rules[1].then.properties.with;
    expect(Object.keys(sourceWith.properties)).toEqual(['size', 'seed']);
    expect(sourceWith.required).toEqual(['size']);
    expect(sourceWith.additionalProperties).toBe(false);
    expect(sourceWith.properties.size.description).toBe('how many');
    expect(sourceWith.properties.seed.default).toBe(0);
    // Plain z.object params are closed too: the validator rejects unknown keys in them.
    expect(rules[0].then.properties.with.additionalProperties).toBe(false);
    expect(rules[0].then.properties.with.properties.optimizer.anyOf[0].additionalProperties).toBe(false);
  });

  test('stage fields come from the same zod objects (descriptions included)', () => {
    expect(Object.keys(schema.definitions.cmdStage.properties)).toEqual(['cmd', 'deps', 'outs', 'needs', 'desc', 'timeout', 'retries']);
    expect(schema.definitions.cmdStage.required).toEqual(['cmd']);
    expect(Object.keys(schema.definitions.kindStage.properties)).toEqual(['uses', 'with', 'needs', 'desc', 'timeout', 'retries']);
    expect(schema.properties.stages.propertyNames.pattern).toBe('^[A-Za-z_][A-Za-z0-9_-]*$');
    expect(schema.additionalProperties).toBe(false);
  });

  // Documents both the schema and the validator judge (structure and params, not graph checks
  // such as unknown needs or cycles, which a JSON Schema cannot express).
  const cases: [string, boolean, string][] = [
    [
      'valid, with ${params.x} in typed fields',
      true,
      `
params: {n: 3, lr: 0.1}
stages:
  gen: {uses: source, with: {size: '\${params.n}'}}
  fit:
    uses: learn
    needs: [gen]
    desc: fits
    with:
      epochs: 2
      lr: \${params.lr}
      optimizer: {name: adam}
      layers: [{type: dense, units: 4}, {type: dropout, rate: 0.5}]
  sh: {cmd: echo hi, deps: [a.txt], outs: [b.txt]}
`,
    ],
    ['unknown stage key', false, 'stages:\n  a: {cmd: a, dep: [x]}\n'],
    ['unknown top-level key', false, 'stage: {}\nstages:\n  a: {cmd: a}\n'],
    ['both uses and cmd', false, 'stages:\n  a: {cmd: a, uses: source, with: {size: 1}}\n'],
    ['neither uses nor cmd', false, 'stages:\n  a: {desc: x}\n'],
    ['unknown kind', false, 'stages:\n  a: {uses: nope}\n'],
    ['missing required param', false, 'stages:\n  a: {uses: source}\n'],
    ['wrong param type', false, 'stages:\n  a: {uses: source, with: {size: many}}\n'],
    ["another kind's param", false, 'stages:\n  a: {uses: learn, with: {epochs: 1, size: 3}}\n'],
    ['unknown nested param', false, 'stages:\n  a: {uses: learn, with: {epochs: 1, optimizer: {nam: sgd}}}\n'],
    ['enum value', false, 'stages:\n  a: {uses: learn, with: {epochs: 1, optimizer: {name: rmsprop}}}\n'],
    ['discriminated union member', false, 'stages:\n  a: {uses: learn, with: {epochs: 1, layers: [{type: dense, rate: 1}]}}\n'],
    ['with: on a cmd stage', false, 'stages:\n  a: {cmd: a, with: {x: 1}}\n'],
    ['deps not a list', false, 'stages:\n  a: {cmd: a, deps: x}\n'],
    ['bad stage name', false, 'stages:\n  a b: {cmd: a}\n'],
    [
      'a schedule and promotion',
      true,
      'stages:\n  m: {cmd: a, outs: [model]}\n  e: {cmd: b, deps: [model], outs: [metrics.json]}\nschedule:\n  nightly: {cron: "0 3 * * *", timezone: UTC, stages: [e], set: [params.x=1], on_failure: {webhook: "http://h/x"}, on_success: [{command: "echo ok"}]}\npromote: {evaluate: e, train: m, metric: test_loss, mode: min, min_delta: 0.1}\n',
    ],
    ['schedule entry without cron', false, 'stages:\n  a: {cmd: a}\nschedule:\n  nightly: {stages: [a]}\n'],
    ['unknown schedule key', false, 'stages:\n  a: {cmd: a}\nschedule:\n  nightly: {cron: "@daily", when: x}\n'],
    ['hook that is neither command nor webhook', false, 'stages:\n  a: {cmd: a}\nschedule:\n  nightly: {cron: "@daily", on_failure: {email: x}}\n'],
    ['webhook that is not http', false, 'stages:\n  a: {cmd: a}\nschedule:\n  nightly: {cron: "@daily", on_failure: {webhook: "ftp://x"}}\n'],
    ['promote without evaluate', false, 'stages:\n  a: {cmd: a}\npromote: {train: a}\n'],
    [
      'timeout and retries on both kinds of stage',
      true,
      'stages:\n  a: {cmd: a, timeout: 10m, retries: 2}\n  b: {uses: source, with: {size: 1}, timeout: 90, retries: {count: 3, backoff: 5s}}\n',
    ],
    ['a timeout that is not a duration', false, 'stages:\n  a: {cmd: a, timeout: 5 parsecs}\n'],
    ['negative retries', false, 'stages:\n  a: {cmd: a, retries: -1}\n'],
    ['retries without count', false, 'stages:\n  a: {cmd: a, retries: {backoff: 1s}}\n'],
    ['negative min_delta', false, 'stages:\n  m: {cmd: a, outs: [model]}\n  e: {cmd: b, deps: [model]}\npromote: {evaluate: e, train: m, min_delta: -1}\n'],
  ];

  test.each(cases)('%s: schema and validator agree (valid: %s)', (_, valid, text) => {
    const schemaSays = validate(parseYaml(text));
    let validatorSays = true;
    try {
      parsePipeline(text, { file: '/ws/pipeline.yaml', shownAs: 'pipeline.yaml', kinds: fakeKinds });
    } catch {
      validatorSays = false;
    }
    expect({ schema: schemaSays, errors: validate.errors?.length ? 'some' : 'none' }).toEqual({ schema: valid, errors: valid ? 'none' : 'some' });
    expect(validatorSays).toBe(valid);
  });
});
