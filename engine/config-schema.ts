// The zod schema of pipeline.yaml's structure. The validator (engine/config.ts) checks the file
// against these objects, and the JSON Schema (engine/json-schema.ts) is generated from the very
// same objects plus each kind's params schema, so the two cannot drift.
import { z } from 'zod';
import { remoteSchema } from './remote/config.js';

/** Stage names appear in `needs:`, `--set stage.param=...`, graph output and store paths. */
export const STAGE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** `--set params.x=...` addresses the top-level params, so no stage may be called that. */
export const RESERVED_STAGE_NAMES: readonly string[] = ['params'];

export const stageNameSchema = z
  .string()
  .regex(STAGE_NAME)
  .describe('A stage name: letters, digits, _ and -, starting with a letter or _');

const needsSchema = z
  .array(stageNameSchema)
  .describe('Upstream stages this stage needs, besides those implied by params that name stages and by deps under other stages\' outs');
const descSchema = z.string().describe('What the stage does (free text, for people)');

const workspacePathSchema = z
  .string()
  .min(1)
  .describe('A path relative to the directory of pipeline.yaml (no absolute paths, no ..)');

/** A stage that runs a built-in kind: `uses: train` with `with:` params. */
export const kindStageSchema = z
  .strictObject({
    uses: z.string().describe('The stage kind to run'),
    with: z.record(z.string(), z.unknown()).optional().describe('Params of the kind (validated by its schema; defaults filled in)'),
    needs: needsSchema.optional(),
    desc: descSchema.optional(),
  })
  .meta({ id: 'kindStage', title: 'Kind stage' });

/** A stage that runs a shell command: `cmd:` with the workspace paths it reads and writes. */
export const cmdStageSchema = z
  .strictObject({
    cmd: z.string().min(1).describe('Shell command, run in the directory of pipeline.yaml'),
    deps: z
      .array(workspacePathSchema)
      .default([])
      .describe('Files or directories the command reads: their content is part of the cache key'),
    outs: z
      .array(workspacePathSchema)
      .default([])
      .describe('Files or directories the command writes: stored as the stage outputs'),
    needs: needsSchema.optional(),
    desc: descSchema.optional(),
  })
  .meta({ id: 'cmdStage', title: 'Command stage' });

export const paramsSchema = z
  .record(z.string(), z.unknown())
  .describe('Shared values; stages reference them as ${params.name} (or ${params.a.b} for nested values)');

/** The whole file. `stages` is a map, so declaration order is kept (it breaks ties in run order). */
export const pipelineFileSchema = z.strictObject({
  params: paramsSchema.optional(),
  stages: z
    .record(stageNameSchema, z.union([kindStageSchema, cmdStageSchema]))
    .describe('The stages, by name: each either `uses:` a kind or runs a `cmd:`'),
  remote: remoteSchema.optional(),
});

export type KindStageInput = z.input<typeof kindStageSchema>;
export type CmdStage = z.output<typeof cmdStageSchema>;

/** Keys allowed at each level, for unknown-key messages and hints. */
export const TOP_LEVEL_KEYS: readonly string[] = Object.keys(pipelineFileSchema.shape);
export const KIND_STAGE_KEYS: readonly string[] = Object.keys(kindStageSchema.shape);
export const CMD_STAGE_KEYS: readonly string[] = Object.keys(cmdStageSchema.shape);
