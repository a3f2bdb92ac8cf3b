// The zod schema of pipeline.yaml's structure. The validator (config/parse.ts) checks the file
// against these objects, and the JSON Schema (config/json-schema.ts) is generated from the very
// same objects plus each kind's params schema, so the two cannot drift.
import { z } from 'zod';
import { remoteSchema } from './remote.js';

/** Stage names appear in `needs:`, `--set stage.param=...`, graph output and store paths. */
export const STAGE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** `--set params.x=...` addresses the top-level params, so no stage may be called that. */
export const RESERVED_STAGE_NAMES: readonly string[] = ['params'];

export const stageNameSchema = z.string().regex(STAGE_NAME).describe('A stage name: letters, digits, _ and -, starting with a letter or _');

const needsSchema = z
  .array(stageNameSchema)
  .describe("Upstream stages this stage needs, besides those implied by params that name stages and by deps under other stages' outs");
const descSchema = z.string().describe('What the stage does (free text, for people)');

const workspacePathSchema = z.string().min(1).describe('A path relative to the directory of pipeline.yaml (no absolute paths, no ..)');

/** A duration: seconds as a number, or a string such as 90s, 30m, 2h, 7d. */
export const durationSchema = z
  .union([z.number().positive(), z.string().regex(/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$/, 'expected a duration such as 90s, 30m, 2h or 7d')])
  .meta({ id: 'duration', title: 'Duration' });

/** A duration (durationSchema) in milliseconds. */
export function durationMs(value: number | string): number {
  if (typeof value === 'number') return Math.round(value * 1000);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value)!;
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']);
}

/** `timeout:` on a stage: an attempt running longer is stopped (its process group killed) and fails. Not part of the cache key. */
const timeoutSchema = durationSchema.describe(
  'Longest an attempt of the stage may run (e.g. 30s, 10m, 2h): past it the stage is stopped, its process group killed, and the attempt fails "timed out after ..."; not part of the cache key',
);

/** `retries:` on a stage: how many more attempts after a failure, and the wait between them. Not part of the cache key. */
export const retriesSchema = z
  .union([
    z.int().min(0).max(100),
    z.strictObject({
      count: z.int().min(0).max(100).describe('How many times a failed (or timed-out) attempt is tried again'),
      backoff: durationSchema
        .optional()
        .describe('Wait before the first retry, doubled before each next one (exponential backoff), e.g. 10s; default: retry at once'),
    }),
  ])
  .describe(
    'Retries after a failed or timed-out attempt: a count, or {count, backoff}. Each attempt is recorded in the run record; a train stage resumes from its last checkpoint. Not part of the cache key',
  )
  .meta({ id: 'retries', title: 'Retries' });

/** A stage that runs a built-in kind: `uses: train` with `with:` params. */
export const kindStageSchema = z
  .strictObject({
    uses: z.string().describe('The stage kind to run'),
    with: z.record(z.string(), z.unknown()).optional().describe('Params of the kind (validated by its schema; defaults filled in)'),
    needs: needsSchema.optional(),
    desc: descSchema.optional(),
    timeout: timeoutSchema.optional(),
    retries: retriesSchema.optional(),
  })
  .meta({ id: 'kindStage', title: 'Kind stage' });

/** A stage that runs a shell command: `cmd:` with the workspace paths it reads and writes. */
export const cmdStageSchema = z
  .strictObject({
    cmd: z.string().min(1).describe('Shell command, run in the directory of pipeline.yaml'),
    deps: z.array(workspacePathSchema).default([]).describe('Files or directories the command reads: their content is part of the cache key'),
    outs: z.array(workspacePathSchema).default([]).describe('Files or directories the command writes: stored as the stage outputs'),
    needs: needsSchema.optional(),
    desc: descSchema.optional(),
    timeout: timeoutSchema.optional(),
    retries: retriesSchema.optional(),
  })
  .meta({ id: 'cmdStage', title: 'Command stage' });

export const paramsSchema = z
  .record(z.string(), z.unknown())
  .describe('Shared values; stages reference them as ${params.name} (or ${params.a.b} for nested values)');

/** A notification after a scheduled run: a shell command, or a webhook URL receiving JSON. */
export const hookSchema = z
  .union([
    z.strictObject({
      command: z
        .string()
        .min(1)
        .describe('Shell command, run in the directory of pipeline.yaml; PIPELINE_RUN_ID, PIPELINE_OUTCOME, PIPELINE_SUMMARY... in its environment'),
    }),
    z.strictObject({
      webhook: z
        .string()
        .regex(/^https?:\/\//i, 'expected an http:// or https:// URL')
        .describe('URL that receives the run summary as a JSON POST'),
    }),
  ])
  .meta({ id: 'hook', title: 'Notification' });
const hooksSchema = z.union([hookSchema, z.array(hookSchema)]);

/** One `schedule:` entry: when to run what (config/automation.ts checks it further). */
export const scheduleEntrySchema = z
  .strictObject({
    cron: z.string().min(1).describe('Cron expression: 5 fields (minute hour day month weekday) or 6 with seconds first; also @daily, @hourly...'),
    timezone: z.string().min(1).optional().describe("IANA time zone of the expression, e.g. Europe/Paris (default: the machine's)"),
    stages: z.array(stageNameSchema).optional().describe('Stages to run, with what they need (default: all)'),
    set: z.array(z.string()).optional().describe('Overrides as with --set: stage.param=value or params.name=value'),
    on_success: hooksSchema.optional().describe('Notified after a run that succeeded (also when nothing changed)'),
    on_failure: hooksSchema
      .optional()
      .describe('Notified after a run that failed or could not start, and of a tick skipped past skip_alert_after (the reason is in the payload)'),
    catchup: z
      .boolean()
      .optional()
      .describe('After downtime (the scheduler was not running when ticks were due), run the most recent missed tick once at start'),
    skip_alert_after: durationSchema
      .optional()
      .describe('Notify on_failure when a tick is skipped because the previous run has been going longer than this (once per run), e.g. 30m'),
    desc: descSchema.optional(),
  })
  .meta({ id: 'scheduleEntry', title: 'Schedule entry' });

/** `promote:` — champion/challenger: which model becomes models/current/ after a run. */
export const promoteSchema = z
  .strictObject({
    evaluate: stageNameSchema.describe('The stage whose metrics.json judges the model (an evaluate stage)'),
    train: stageNameSchema.optional().describe('The stage whose model/ is promoted (default: the model the evaluate stage evaluates)'),
    metric: z.string().min(1).default('test_accuracy').describe('Metric in metrics.json (dotted path for nested values, e.g. macro_avg.f1)'),
    mode: z.enum(['max', 'min']).optional().describe('max: higher is better; min: lower is better (default: min for names containing "loss", else max)'),
    min_delta: z.number().min(0).default(0).describe('How much the new model must beat the current one by to be promoted'),
  })
  .meta({ id: 'promote', title: 'Promotion' });

/** `retention:` — which run records (and their logs) `pipeline schedule` keeps after each tick. */
export const retentionSchema = z
  .strictObject({
    keep_runs: z.number().int().min(1).optional().describe('Keep the newest N run records; older ones are pruned'),
    keep_days: z.number().positive().optional().describe('Prune run records that started more than this many days ago (fractions allowed)'),
  })
  .describe(
    'Retention of run records, applied by `pipeline schedule` after each tick (as `pipeline gc --keep-runs/--keep-days` prunes them). Runs whose model was promoted are always kept',
  )
  .meta({ id: 'retention', title: 'Retention' });

/** The whole file. `stages` is a map, so declaration order is kept (it breaks ties in run order). */
export const pipelineFileSchema = z.strictObject({
  params: paramsSchema.optional(),
  stages: z.record(stageNameSchema, z.union([kindStageSchema, cmdStageSchema])).describe('The stages, by name: each either `uses:` a kind or runs a `cmd:`'),
  schedule: z.record(stageNameSchema, scheduleEntrySchema).optional().describe('Scheduled runs for `pipeline schedule`, by name'),
  promote: promoteSchema.optional(),
  retention: retentionSchema.optional(),
  remote: remoteSchema.optional(),
  workspace: z
    .string()
    .min(1)
    .optional()
    .describe(
      'The workspace directory, relative to this file (default: the directory of this file): where artifacts/ and models/ live and what cmd deps/outs and local fetch paths are relative to. Lets pipelines in subdirectories share one store',
    ),
});

export type ScheduleEntryInput = z.output<typeof scheduleEntrySchema>;
export type Hook = z.output<typeof hookSchema>;
export type KindStageInput = z.input<typeof kindStageSchema>;
export type CmdStage = z.output<typeof cmdStageSchema>;
export type RetriesInput = z.output<typeof retriesSchema>;

/** Keys allowed at each level, for unknown-key messages and hints. */
export const TOP_LEVEL_KEYS: readonly string[] = Object.keys(pipelineFileSchema.shape);
export const KIND_STAGE_KEYS: readonly string[] = Object.keys(kindStageSchema.shape);
export const CMD_STAGE_KEYS: readonly string[] = Object.keys(cmdStageSchema.shape);
