// Runs a pipeline selection: each stage starts when its needs are done (p-limit caps how many run
// at once), is decided against its upstreams' actual outputs (an upstream that reran with the same
// outputs leaves it cached, as in DVC), then restores, runs and commits. Without keepGoing the
// first failure aborts the running stages and nothing else starts.
import pLimit from 'p-limit';
import type { ExecuteOptions, StageReport } from './execute-options.js';
import { AbortedError, StageError } from '../errors.js';
import { resolveStage } from '../plan/facts.js';
import { errorMessage } from '../store/fs-tree.js';
import { describeReasons } from '../plan/reasons.js';
import type { StageOutcomeKind } from '../store/runs.js';
import { Execution } from './execution.js';
import { reusedSourceHint } from './failure-hint.js';
import { computeSource } from './sources/compute.js';
import { queueSource } from './sources/queue.js';
import { remoteSource } from './sources/remote.js';
import type { ResultSource, StageRequest } from './sources/result-source.js';
import { siblingSource } from './sources/sibling.js';
import { storeSource, upstreamDigests } from './sources/store.js';

export type { ExecuteOptions, RemoteLookup, StageDispatch, StageReport, StageTimer, StageUi, SweepShare } from './execute-options.js';

/** Where a stage's result comes from, asked in this order (engine/run/sources/). */
const SOURCES: readonly ResultSource[] = [storeSource, siblingSource, remoteSource, queueSource, computeSource];

const OK: ReadonlySet<StageOutcomeKind> = new Set(['cached', 'ran']);

export async function execute(opts: ExecuteOptions): Promise<StageReport[]> {
  const run = new AbortController();
  const stopRun = () => run.abort(opts.signal.reason);
  if (opts.signal.aborted) stopRun();
  else opts.signal.addEventListener('abort', stopRun, { once: true });
  const limit = opts.sweep?.limit ?? pLimit(Math.max(1, opts.jobs));
  const x = new Execution(opts, run.signal);
  const reports = new Map<string, Promise<StageReport>>();
  for (const name of opts.stages) {
    const spec = x.pipeline.stages.get(name)!;
    const needs = spec.needs.map((n) => {
      const p = reports.get(n);
      if (!p) throw new Error(`execute: ${name} needs ${n}, which is not scheduled before it`);
      return p;
    });
    reports.set(
      name,
      (async () => {
        const ups = await Promise.all(needs);
        const bad = ups.find((u) => !OK.has(u.outcome));
        const report = bad
          ? { stage: name, outcome: 'skipped' as const, durationMs: 0, reason: `upstream ${bad.stage} ${bad.outcome}` }
          : await limit(() => processStage(x, run, name, ups));
        x.logs.finish(name);
        x.live.stage(name, report.outcome, { durationMs: report.durationMs, ...(report.reason ? { reason: report.reason } : {}) });
        x.finished.push({ stage: report.stage, outcome: report.outcome, key: report.key, durationMs: report.durationMs });
        opts.onStageDone?.(report);
        return report;
      })(),
    );
  }
  try {
    return await Promise.all(opts.stages.map((n) => reports.get(n)!));
  } finally {
    opts.signal.removeEventListener('abort', stopRun);
    await x.close();
  }
}

/** Decides a stage against its upstreams' actual outputs, then asks the sources in order for its result. */
async function processStage(x: Execution, run: AbortController, name: string, ups: StageReport[]): Promise<StageReport> {
  if (run.signal.aborted) return { stage: name, outcome: 'skipped', durationMs: 0, reason: 'not started: run stopped' };
  const t0 = Date.now();
  x.opts.onStageStart?.(name);
  let settle: { resolve(r: StageReport): void; reject(e: unknown): void } | undefined;
  const result = new Promise<StageReport>((resolve, reject) => (settle = { resolve, reject }));
  // Waited on only by a sibling experiment, if any: no unhandled rejection when there is none.
  result.catch(() => {});
  let request: StageRequest | undefined;
  let source: ResultSource | undefined;
  try {
    const decision = await resolveStage(x.stageEnv, x.opts.facts, name, upstreamDigests({ ups }), { force: x.opts.force });
    request = { name, ups, t0, decision, result };
    for (source of SOURCES) {
      const report = await source.tryProvide(request, x);
      if (report) {
        const done = request.attempts ? { ...report, attempts: request.attempts } : report;
        settle!.resolve(done);
        return done;
      }
    }
    throw new Error(`execute: no source produced stage ${name}`);
  } catch (error) {
    settle!.reject(error);
    const durationMs = Date.now() - t0;
    const decision = request?.decision;
    const reason = decision ? describeReasons(decision.reasons) : undefined;
    const attempts = request?.attempts ? { attempts: request.attempts } : {};
    if (run.signal.aborted) return { stage: name, outcome: 'aborted', durationMs, key: decision?.key, reason, error, ...attempts };
    if (!x.opts.keepGoing) run.abort(new StageError(`stage ${name} failed`));
    // A kind's failure is often about the data it read; a command's is the command's to explain.
    const isSource = (stage: string) => x.pipeline.stages.get(stage)?.needs.length === 0;
    const producing = source?.produces === true && x.pipeline.stages.get(name)!.kind !== 'cmd';
    const hint = producing ? reusedSourceHint(name, ups, isSource, error) : undefined;
    return { stage: name, outcome: 'failed', durationMs, key: decision?.key, reason, error: asStageError(name, error), ...(hint ? { hint } : {}), ...attempts };
  }
}

/** The error a failed stage is reported with: a StageError whose message names the stage. */
function asStageError(stage: string, err: unknown): unknown {
  if (err instanceof AbortedError) return err;
  const message = errorMessage(err);
  if (err instanceof StageError) {
    // A kind's own words (`image folders: missing test/ folder`) may not say which stage failed.
    if (namesStage(message, stage)) return err;
    const named = new StageError(`stage ${stage}: ${message}`, { cause: err });
    if (err.stack?.includes('\n')) named.stack = `${named.name}: ${named.message}${err.stack.slice(err.stack.indexOf('\n'))}`;
    return named;
  }
  return new StageError(message.includes(stage) ? message : `stage ${stage}: ${message}`, { cause: err });
}

function namesStage(message: string, stage: string): boolean {
  const escaped = stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[\\s'"])${escaped}(['":\\s]|$)`).test(message);
}
