// JSON Schema of pipeline.yaml for editors (completion, hover docs, squiggles), generated from the
// zod objects the validator uses (config/schema.ts and each kind's params schema) so the two
// cannot drift. A kind stage's `with:` is checked by its kind's schema, selected by `uses:` (if/then).
import { z } from 'zod';
import { pipelineFileSchema } from './schema.js';
import type { StageKind } from '../contract.js';

export type JsonSchema = Record<string, unknown>;

const DEFS = 'definitions';
const PARAM_REF = 'paramRef';
/** Structural definitions; everything else in the definitions comes from kinds' params. */
const STRUCTURAL_IDS = new Set(['kindStage', 'cmdStage', 'hook', 'scheduleEntry', 'promote', 'retention', 'duration', 'retries']);

const isObject = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Kind names are free text; keep them usable as property names in the generation container. */
const kindKey = (name: string) => `kind:${name}`;

/**
 * Lets a non-string value also be written as a whole `${params.x}` reference, as the validator
 * substitutes those before checking types. Applied to every value position inside `with:`.
 */
function allowParamRefs(schema: unknown): unknown {
  if (!isObject(schema)) return schema;
  const out: JsonSchema = { ...schema };
  if (isObject(out.properties)) {
    out.properties = Object.fromEntries(Object.entries(out.properties).map(([k, s]) => [k, withParamRef(s)]));
  }
  if (isObject(out.items)) out.items = withParamRef(out.items);
  if (Array.isArray(out.items)) out.items = out.items.map(withParamRef);
  if (Array.isArray(out.prefixItems)) out.prefixItems = out.prefixItems.map(withParamRef);
  if (isObject(out.additionalProperties)) out.additionalProperties = withParamRef(out.additionalProperties);
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    if (Array.isArray(out[key])) out[key] = (out[key] as unknown[]).map(allowParamRefs);
  }
  return out;
}

function acceptsAnyString(schema: JsonSchema): boolean {
  const constrained = ['enum', 'const', 'pattern', 'format', 'minLength', 'maxLength'].some((k) => k in schema);
  return (schema.type === 'string' && !constrained) || Object.keys(schema).length === 0;
}

function withParamRef(schema: unknown): unknown {
  if (!isObject(schema)) return schema;
  const inner = allowParamRefs(schema) as JsonSchema;
  if (acceptsAnyString(inner)) return inner;
  // Hover text and defaults stay on the outside, where editors look for them.
  const { description, default: defaultValue, title, ...rest } = inner;
  return {
    ...(title !== undefined ? { title } : {}),
    ...(description !== undefined ? { description } : {}),
    ...(defaultValue !== undefined ? { default: defaultValue } : {}),
    anyOf: [rest, { $ref: `#/${DEFS}/${PARAM_REF}` }],
  };
}

/** The JSON Schema (draft-07, the dialect YAML editors support best) for the given kinds. */
export function pipelineJsonSchema(kinds: ReadonlyMap<string, StageKind>): JsonSchema {
  const names = [...kinds.keys()].sort();
  // One generation pass over the file schema and every kind's params, so shared definitions land
  // in one `definitions` table that every reference resolves against.
  const container = z.object({
    file: pipelineFileSchema,
    kinds: z.object(Object.fromEntries(names.map((n) => [kindKey(n), kinds.get(n)!.params]))),
  });
  const generated = z.toJSONSchema(container, {
    target: 'draft-07',
    io: 'input',
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => {
      // The validator rejects unknown keys in plain z.object params too (config/unknown-keys.ts).
      const def = (zodSchema as z.core.$ZodTypes)._zod.def;
      if (def.type === 'object' && def.catchall === undefined && jsonSchema.additionalProperties === undefined) {
        jsonSchema.additionalProperties = false;
      }
    },
  }) as JsonSchema;

  const properties = generated.properties as Record<string, JsonSchema>;
  const file = properties.file;
  const kindParams = (properties.kinds.properties ?? {}) as Record<string, JsonSchema>;
  const defs: Record<string, unknown> = { ...((generated[DEFS] as Record<string, unknown>) ?? {}) };
  for (const [id, def] of Object.entries(defs)) if (!STRUCTURAL_IDS.has(id)) defs[id] = allowParamRefs(def);

  // Kind stages: `uses:` lists the kinds, and each kind's params schema applies to `with:`.
  const kindStage = defs.kindStage as JsonSchema;
  const kindStageProps = kindStage.properties as Record<string, JsonSchema>;
  defs.kindStage = {
    ...kindStage,
    properties: {
      ...kindStageProps,
      uses: { ...kindStageProps.uses, enum: names },
    },
    allOf: names.map((name) => {
      const params = allowParamRefs(kindParams[kindKey(name)]) as JsonSchema;
      // A kind with required params needs its `with:`, as the validator reports them missing.
      const needsWith = Array.isArray(params.required) && params.required.length > 0;
      return {
        if: { properties: { uses: { const: name } }, required: ['uses'] },
        then: {
          properties: { with: { ...params, description: kinds.get(name)!.description } },
          ...(needsWith ? { required: ['with'] } : {}),
        },
      };
    }),
  };
  defs[PARAM_REF] = {
    type: 'string',
    pattern: '^\\$\\{\\s*params\\.[^}\\s]+\\s*\\}$',
    description: "A reference to a top-level param, e.g. ${params.seed}; it takes the param's value and type",
  };

  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'pipeline.schema.json',
    title: 'pipeline.yaml',
    description: 'A DAG of stages: each either runs a built-in kind (uses: + with:) or a shell command (cmd: + deps: + outs:)',
    ...Object.fromEntries(Object.entries(file).filter(([k]) => k !== '$schema')),
    [DEFS]: defs,
  };
}

/** The schema as committed in schema/pipeline.schema.json. */
export function pipelineJsonSchemaText(kinds: ReadonlyMap<string, StageKind>): string {
  return JSON.stringify(pipelineJsonSchema(kinds), null, 2) + '\n';
}
