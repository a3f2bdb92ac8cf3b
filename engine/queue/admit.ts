// A worker's check of a job before anything starts. Whoever can write to Redis can put a job on
// the queue, so a job's fields are untrusted data: its signature must be ours, its pipeline file one
// of this checkout's own (not outside it, not in a store, not in a stage's outputs, where fetched
// data lands), its stage one of that file's, its overrides declared params that the kinds' schemas
// accept. What runs, and which remote it talks to, is the worker's: the job only picks among them.
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { BACKEND_NAMES } from '../../lib/tf/backend-param.js';
import { JobRefusedError, PipelineError } from '../errors.js';
import { loadPipeline } from '../config/load.js';
import { parseSet } from '../config/overrides.js';
import type { KindRegistry } from '../config/parse.js';
import type { Pipeline } from '../config/pipeline.js';
import { STORE_DIR } from '../store/store.js';
import { isSameOrInside, normalizeWorkspacePath } from '../store/workspace-paths.js';
import { signatureProblem, type StageJob } from './jobs.js';

export interface AdmitContext {
  /** The worker's checkout: the root of its own pipeline file. */
  root: string;
  /** The worker's own pipeline (its `--config`): its stages' outputs are data, never a pipeline file. */
  own: Pipeline;
  kinds: KindRegistry;
  queueName: string;
  secret: string;
}

/** A job that passed every check, with its pipeline file as an absolute path in the checkout. */
export interface AdmittedJob extends StageJob {
  configFile: string;
}

const LOG_TEXT = z.string().max(200);
const jobSchema = z.object({
  stage: z.string().min(1).max(200),
  key: z.string().regex(/^[0-9a-f]{64}$/, 'expected a 64-digit hex cache key'),
  config: z.string().min(1).max(4096),
  sets: z.array(z.string().max(100_000)).max(10_000),
  unset: z.array(z.string().max(10_000)).max(10_000),
  backend: z.string().optional(),
  force: z.boolean().optional(),
  runId: LOG_TEXT,
  coordinator: LOG_TEXT,
});

export async function admitJob(data: unknown, ctx: AdmitContext): Promise<AdmittedJob> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new JobRefusedError('not a stage job (its data is not an object)');
  const unsigned = signatureProblem(data as Record<string, unknown>, ctx.queueName, ctx.secret);
  if (unsigned) throw new JobRefusedError(unsigned);
  const parsed = jobSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new JobRefusedError(`not a stage job: ${issue.path.join('.') || 'data'}: ${issue.message}`);
  }
  const job = parsed.data;
  if (job.backend !== undefined && !(BACKEND_NAMES as readonly string[]).includes(job.backend)) {
    throw new JobRefusedError(`backend '${job.backend}' is not one of ${BACKEND_NAMES.join(', ')}`);
  }
  const { file, real } = await pipelineFileOf(job.config, ctx);
  const pipeline = await load(file, job.config, ctx.kinds, []);
  const inOutputs = [...(await outputsHolding(ctx.own, real)), ...(await outputsHolding(pipeline, real))];
  if (inOutputs.length) throw new JobRefusedError(`pipeline file ${job.config} is inside the outputs of stage ${inOutputs[0]} (data, not a pipeline)`);
  if (job.stage.startsWith('-') || !pipeline.stages.has(job.stage)) {
    throw new JobRefusedError(`no stage '${job.stage}' in ${job.config} (stages: ${[...pipeline.stages.keys()].join(', ')})`);
  }
  const badUnset = job.unset.find((u) => u.includes('='));
  if (badUnset !== undefined) throw new JobRefusedError(`--unset ${badUnset}: expected STAGE.PARAM or params.NAME, without a value`);
  const overrides = [...job.unset.map((u) => `${u}=`), ...job.sets];
  for (const text of overrides) undeclaredParam(text, pipeline, job.config);
  // The kinds' params schemas (and the rules of --set) judge the values, as for a local `run --set`.
  await load(file, job.config, ctx.kinds, overrides);
  return { ...job, configFile: file };
}

/**
 * The job's pipeline file as this checkout has it (`file`, absolute) and where it really is
 * (`real`, symlinks followed): inside the checkout, outside any store.
 */
async function pipelineFileOf(config: string, ctx: AdmitContext): Promise<{ file: string; real: string }> {
  const normalized = normalizeWorkspacePath(config);
  if (!normalized.ok || config.includes('\0')) {
    throw new JobRefusedError(`pipeline file ${JSON.stringify(config)} is outside this checkout (${normalized.ok ? 'a NUL byte' : normalized.message})`);
  }
  if (!/\.ya?ml$/.test(normalized.path)) throw new JobRefusedError(`pipeline file ${config} is not a .yaml file`);
  const root = await realpath(ctx.root);
  const file = resolve(ctx.root, normalized.path);
  let real: string;
  try {
    real = await realpath(file);
    if (!(await stat(real)).isFile()) throw new JobRefusedError(`pipeline file ${config} is not a file`);
  } catch (err) {
    if (err instanceof JobRefusedError) throw err;
    throw new JobRefusedError(`pipeline file ${config} is not in this checkout (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const inside = relative(root, real);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside))
    throw new JobRefusedError(`pipeline file ${config} is outside this checkout (a symlink leads out of it)`);
  // Every store is a pipeline root's artifacts/: whatever lies under one came from a stage or a remote.
  for (const path of [normalized.path, inside.split(sep).join('/')]) {
    if (path.split('/').includes(STORE_DIR))
      throw new JobRefusedError(`pipeline file ${config} is inside the store (${STORE_DIR}/), where stage outputs and pulled results live`);
  }
  return { file, real };
}

/** Stages of `pipeline` whose workspace outputs hold `file` (a real path). */
async function outputsHolding(pipeline: Pipeline, file: string): Promise<string[]> {
  const root = await realpath(pipeline.root);
  return [...pipeline.stages.values()].filter((spec) => spec.outs.some((out) => isSameOrInside(file, join(root, out)))).map((spec) => spec.name);
}

/** `--set params.x=…` may only change a param the file declares (a stage's params are checked by its kind's schema). */
function undeclaredParam(text: string, pipeline: Pipeline, config: string): void {
  let target: string;
  let path: string[];
  try {
    ({ target, path } = parseSet(text));
  } catch (err) {
    throw new JobRefusedError(err instanceof Error ? err.message : String(err));
  }
  if (target === 'params' && !Object.hasOwn(pipeline.params, path[0]!)) {
    const declared = Object.keys(pipeline.params);
    throw new JobRefusedError(`--set ${text}: ${config} declares no param '${path[0]}' (params: ${declared.join(', ') || 'none'})`);
  }
}

async function load(file: string, config: string, kinds: KindRegistry, sets: readonly string[]): Promise<Pipeline> {
  try {
    return await loadPipeline(file, { kinds, sets });
  } catch (err) {
    if (err instanceof PipelineError) throw new JobRefusedError(`${config}: ${err.message.replaceAll('\n', '; ')}`);
    throw err;
  }
}
