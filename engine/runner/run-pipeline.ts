// A whole pipeline run, as `pipeline run`, `pipeline schedule` and a queue worker's stage process
// do it: take the store lock, stop a dead run's leftover commands, open the remote and the queue,
// record the run, execute it (each experiment of a sweep side by side), push or hand a worker's
// result over, promote, and write the final records. It prints nothing (RunEvents carries what a
// user sees) and installs no signal handlers: the caller stops it by aborting `signal`, another
// process by `pipeline cancel` (engine/runner/cancel.ts).
import { hostname } from 'node:os';
import pLimit from 'p-limit';
import type { RemoteConfig } from '../config/remote.js';
import { AbortedError, CancelledError, PipelineError, PushIncompleteError, StageError } from '../errors.js';
import { gatherFacts } from '../plan/facts.js';
import { stopLeftoverGroups } from '../run/command-groups.js';
import { execute, type StageReport } from '../run/execute.js';
import type { QueueDispatcher } from '../queue/dispatch.js';
import type { RemoteCache } from '../remote/cache.js';
import type { Session } from '../session.js';
import { acquireStoreLock, type StoreLock } from '../store/lock.js';
import { newRunId, type PromotionRecord, type PushRecord, type RunRecord, type RunTrigger } from '../store/runs.js';
import { watchCancelRequests } from './cancel.js';
import type { RunEvents } from './events.js';
import { describeAssignments, type RunExperiment } from './experiment.js';
import { openQueue, queueDispatch, type QueueRunSpec } from './queue.js';
import { countOutcomes, finishRecord, startRecord, writeFinalRecord, type OutcomeCounts } from './records.js';

/** One run of a sweep's experiments (or the only one): its session has the experiment's overrides applied. */
export interface ExperimentRun {
  session: Session;
  experiment?: RunExperiment;
}

/** A queue worker's stage process (`run --worker-job KEY`): computes one stage for a coordinator. */
export interface WorkerJob {
  /** The key the coordinator computed; arriving at another one here is an error. */
  key: string;
  /** The worker's name, recorded in the manifests of what it computes. */
  producer?: string;
  /** Tells the worker how the job ended, once its result is on the remote. */
  report(result: { computed: boolean; computedBy?: string }): Promise<void>;
}

export interface RunPipelineOptions {
  /** One per experiment of a sweep (sharing one store), or one. */
  runs: readonly ExperimentRun[];
  /** Stages to run, topologically ordered and closed under `needs`. */
  selection: readonly string[];
  force: ReadonlySet<string>;
  jobs: number;
  keepGoing: boolean;
  /** How long to wait for another process's store lock (0: fail at once with a LockError). */
  lockTimeoutSeconds: number;
  /** Aborted by the caller (Ctrl-C, SIGTERM): running stages stop, the run is recorded as interrupted. */
  signal: AbortSignal;
  /** The command line, as recorded (and shown to whoever waits for the lock). */
  command: readonly string[];
  trigger?: RunTrigger;
  overrides?: RunRecord['overrides'];
  remote?: RemoteConfig;
  /** Upload what this run computed to the remote. */
  push?: boolean;
  /** `--executor queue`: stages are computed by workers (needs a remote). */
  queue?: QueueRunSpec;
  workerJob?: WorkerJob;
  events: RunEvents;
  /** Once the run is recorded, while the store is still locked: what the caller shows of it. */
  finished?(run: PipelineRun): Promise<void>;
}

export interface ExperimentResult {
  session: Session;
  experiment?: RunExperiment;
  reports: StageReport[];
  record: RunRecord;
}

export interface PipelineRun {
  /** The final run records, one per experiment. */
  records: RunRecord[];
  results: ExperimentResult[];
  /** Every experiment's stage reports. */
  reports: StageReport[];
  counts: OutcomeCounts;
  startedAt: number;
  push?: PushRecord;
  /** `signal` stopped it. */
  interrupted: boolean;
  /** `pipeline cancel` stopped it. */
  cancelled: boolean;
  /** Why the run did not succeed (to report, and exit with), once it is recorded; undefined when it did. */
  failure?: unknown;
}

export async function runPipeline(options: RunPipelineOptions): Promise<PipelineRun> {
  const { store, statCache } = options.runs[0]!.session;
  const { events } = options;
  const warn = (line: string) => events.warning?.(line);
  const startedAt = Date.now();
  // Stops the stages: the caller's signal, or losing the store lock.
  const stop = new AbortController();
  const forward = () => stop.abort(options.signal.reason);
  if (options.signal.aborted) forward();
  else options.signal.addEventListener('abort', forward, { once: true });
  let lock: StoreLock | undefined;
  let remote: RemoteCache | undefined;
  let queue: QueueDispatcher | undefined;
  let records: RunRecord[] | undefined;
  let cancelled = false;
  let unwatch: (() => Promise<void>) | undefined;
  try {
    await store.init();
    lock = await acquireStoreLock(store.dir, {
      timeoutMs: options.lockTimeoutSeconds * 1000,
      command: ['pipeline', ...options.command].join(' '),
      signal: stop.signal,
      onWait: (h) => events.lockWaiting?.(h),
      onBreak: (h) => events.lockBroken?.(h),
    });
    const held = lock;
    held.lost.addEventListener('abort', () => stop.abort(held.lost.reason), { once: true });
    // A dead run's commands may still be writing its outs: stop them before running anything.
    for (const g of await stopLeftoverGroups(store.commandsDir)) events.leftoverStopped?.(g);
    await store.cleanTmp();
    remote = options.remote ? await openRemoteCache(options.runs[0]!.session, options.remote, events) : undefined;
    if (options.queue) queue = await openQueue(options.queue, warn);

    records = await writeStartRecords(options, startedAt);
    unwatch = watchCancelRequests(
      store.runs.dir,
      records.map((r) => r.id),
      (id) => {
        cancelled = true;
        events.notice?.(`run ${id} is cancelled (pipeline cancel): stopping running stages`);
        stop.abort(new CancelledError());
      },
    );
    if (options.runs.length > 1) events.sweepStarting?.(options.runs.map((r) => r.experiment!));
    const results = await executeRuns(options, records, stop.signal, remote, queue);
    const reports = results.flatMap((r) => r.reports);
    events.hashed?.(statCache.hashedFiles);
    if (cancelled && queue) await cancelQueued(queue, records, events);
    const push = await afterExecute(options, reports, remote, stop.signal);
    const interrupted = options.signal.aborted;
    const stopped = cancelled ? 'cancelled' : interrupted ? 'interrupted' : undefined;
    for (const result of results) await finishExperiment(options, result, startedAt, stopped, push);

    const run: PipelineRun = { records, results, reports, counts: countOutcomes(reports), startedAt, push, interrupted, cancelled };
    await options.finished?.(run);
    run.failure = failureOf(run, held, queue !== undefined, events);
    return run;
  } catch (e) {
    if (cancelled && records) {
      // Stopped between stages (hashing, pulling): its records still say running; they say cancelled.
      for (const record of records)
        await writeFinalRecord(store, { ...record, outcome: 'cancelled', finishedAt: new Date().toISOString(), durationMs: Date.now() - startedAt }, warn);
      if (!(e instanceof PipelineError)) throw new CancelledError();
    }
    // Ctrl-C while hashing or waiting surfaces as some abort error: report it as the interrupt it is.
    if (options.signal.aborted && !(e instanceof PipelineError)) throw new AbortedError();
    throw e;
  } finally {
    options.signal.removeEventListener('abort', forward);
    await unwatch?.();
    await queue?.close();
    remote?.backend.close?.();
    try {
      if (lock) await statCache.save(); // only the lock holder writes the store
    } catch (e) {
      // Only a cache (files are rehashed next time): a full disk must not hide the run's outcome.
      warn(`could not save the stat cache: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      await lock?.release();
    }
  }
}

/** Every experiment's `running` record, written before any stage starts. */
async function writeStartRecords(options: RunPipelineOptions, startedAt: number): Promise<RunRecord[]> {
  const { store } = options.runs[0]!.session;
  const sweepId = newRunId(new Date(startedAt));
  const of = options.runs.length;
  const base = { command: options.command, startedAt, trigger: options.trigger, overrides: options.overrides, queue: options.queue?.target.display };
  const records: RunRecord[] = [];
  for (const [i, { session, experiment }] of options.runs.entries()) {
    const id = of > 1 ? `${sweepId}-${i + 1}` : sweepId;
    const inSweep = experiment ? { sweep: sweepId, index: i + 1, of, assignments: experiment.assignments } : undefined;
    const record = startRecord(base, id, inSweep, session.pipeline, options.selection);
    records.push(record);
    await store.runs.write(record);
    options.events.record?.(record);
  }
  return records;
}

/** Executes each experiment; a sweep's share one cap on running stages, one producer per key, one writer of a cmd stage's outs at a time. */
async function executeRuns(
  options: RunPipelineOptions,
  records: readonly RunRecord[],
  signal: AbortSignal,
  remote: RemoteCache | undefined,
  queue: QueueDispatcher | undefined,
): Promise<ExperimentResult[]> {
  const { events, selection, workerJob } = options;
  const { store } = options.runs[0]!.session;
  const sweep = options.runs.length > 1;
  const refs = await store.readRefs();
  const limit = pLimit(Math.max(1, options.jobs));
  const inflight = new Map<string, Promise<StageReport>>();
  const exclusive = new Map<string, ReturnType<typeof pLimit>>();
  const coordinator = `${hostname()}:${process.pid}`;
  return Promise.all(
    options.runs.map(async ({ session, experiment }, i) => {
      const record = records[i]!;
      const env = session.env(signal);
      const facts = await gatherFacts(env, selection, refs);
      const dispatch =
        queue && remote && options.queue
          ? queueDispatch({ queue, remote, spec: options.queue, experiment, runId: record.id, coordinator, force: options.force, onQueued: events.stageQueued })
          : undefined;
      const reports = await execute({
        env,
        facts,
        stages: selection,
        force: options.force,
        jobs: options.jobs,
        keepGoing: options.keepGoing,
        signal,
        runId: record.id,
        run: {
          startedAt: record.startedAt,
          command: record.command,
          ...(options.trigger ? { scheduled: options.trigger.entry } : {}),
          ...(experiment ? { experiment: describeAssignments(experiment.assignments) } : {}),
        },
        refs,
        ui: events.stage,
        remote,
        dispatch,
        ...(workerJob ? { workerJob: { stage: selection.at(-1)!, key: workerJob.key, producer: workerJob.producer } } : {}),
        ...(sweep ? { sweep: { inflight, limit, exclusive: (stage: string) => exclusive.get(stage) ?? exclusive.set(stage, pLimit(1)).get(stage)! } } : {}),
        onStageDone: (r) => events.stageDone?.(r, experiment),
      });
      return { experiment, session, reports, record };
    }),
  );
}

/** A cancelled run's jobs: waiting ones removed from the queue, running ones stopped by their workers. */
async function cancelQueued(queue: QueueDispatcher, records: readonly RunRecord[], events: RunEvents): Promise<void> {
  try {
    const { removed, stopping, stillRunning } = await queue.cancelRun(records.map((r) => r.id));
    const parts = [
      removed.length ? `removed ${removed.length} queued job${removed.length === 1 ? '' : 's'}` : '',
      stopping.length ? `stopped ${stopping.length - stillRunning.length} of ${stopping.length} running on workers` : '',
    ].filter(Boolean);
    if (parts.length) events.notice?.(`queue: ${parts.join('; ')}`);
    if (stillRunning.length)
      events.warning?.(
        `${stillRunning.length} job${stillRunning.length === 1 ? '' : 's'} still running on workers (${stillRunning.join(', ')}): they were asked to stop`,
      );
  } catch (err) {
    events.warning?.(`could not cancel the run's queued jobs: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A worker's result goes to the remote for its coordinator; `--push` uploads what this run computed. */
async function afterExecute(
  options: RunPipelineOptions,
  reports: readonly StageReport[],
  remote: RemoteCache | undefined,
  signal: AbortSignal,
): Promise<PushRecord | undefined> {
  if (!remote) return undefined;
  if (options.workerJob) {
    // On the remote for the coordinator, also when it was cached here.
    const stage = options.selection.at(-1);
    const target = reports.find((r) => r.stage === stage && r.manifest && (r.outcome === 'ran' || r.outcome === 'cached'));
    if (!target) return undefined;
    await remote.ensure([target.manifest!], signal);
    // Computed here, or found made (by whom, its manifest says): the run record credits who computed.
    await options.workerJob.report({ computed: target.outcome === 'ran', computedBy: target.manifest!.worker });
    return undefined;
  }
  if (!options.push) return undefined;
  const computed = reports.filter((r) => r.outcome === 'ran' && r.manifest && !r.worker).map((r) => ({ stage: r.stage, manifest: r.manifest! }));
  const { pushed, notPushed } = await remote.push(computed, signal);
  const push: PushRecord = { pushed, of: computed.length, remote: remote.backend.url, ...(notPushed.length ? { notPushed } : {}) };
  options.events.pushed?.(push);
  return push;
}

/** An experiment's final record, after its promotion decision when pipeline.yaml has `promote:`. */
async function finishExperiment(
  options: RunPipelineOptions,
  result: ExperimentResult,
  startedAt: number,
  stopped: 'interrupted' | 'cancelled' | undefined,
  push?: PushRecord,
) {
  const { record, session } = result;
  finishRecord(record, result.reports, startedAt, stopped, push);
  // A sweep compares experiments; which of them should become the model is the user's call.
  if (options.runs.length === 1 && record.outcome === 'ok' && session.pipeline.promote) {
    record.promotion = await promote(session, record);
    options.events.promotion?.(record.promotion);
  }
  await writeFinalRecord(session.store, record, (line) => options.events.warning?.(line));
  options.events.record?.(record);
}

async function promote(session: Session, record: RunRecord): Promise<PromotionRecord> {
  const { promoteAfterRun } = await import('../promote/promote.js');
  try {
    return await promoteAfterRun(session.pipeline, session.store, record.id, record.stages);
  } catch (err) {
    return { decision: 'error', metric: session.pipeline.promote!.metric, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Why the run failed, in the order a user needs to hear it; undefined when it succeeded. */
function failureOf(run: PipelineRun, lock: StoreLock, queued: boolean, events: RunEvents): unknown {
  if (lock.lost.aborted) return lock.lost.reason;
  if (run.cancelled) return new CancelledError();
  if (run.interrupted) {
    if (queued) events.notice?.('stages already queued keep running on the workers; run again to pick up their results');
    return new AbortedError('interrupted: running stages were stopped; nothing partial was committed');
  }
  if (run.counts.failed > 0) {
    const failed = [...new Set(run.reports.filter((r) => r.outcome === 'failed').map((r) => r.stage))];
    return new StageError(`${failed.length} stage${failed.length > 1 ? 's' : ''} failed: ${failed.join(', ')}`);
  }
  const promotion = run.records.find((r) => r.promotion?.decision === 'error')?.promotion;
  if (promotion) return new StageError(`promotion failed: ${promotion.reason}`);
  if (run.push && run.push.pushed < run.push.of) return new PushIncompleteError(pushShortfall(run.push));
  return undefined;
}

/** Why `run --push` exits 3: what did not reach the remote, and that nothing is lost. */
function pushShortfall(push: PushRecord): string {
  const missed = push.notPushed ?? [];
  const stages = missed.length ? ` (not ${missed.map((n) => n.stage).join(', ')})` : '';
  const why = missed.length ? `: ${missed[0]!.reason}` : '';
  return (
    `--push uploaded ${push.pushed} of the ${push.of} results this run computed to ${push.remote}${stages}${why}; ` +
    'they are in the local store: `pipeline push` uploads them once the remote works'
  );
}

async function openRemoteCache(session: Session, config: RemoteConfig, events: RunEvents): Promise<RemoteCache> {
  // The remote's clients (an S3 SDK) are loaded only by runs that use one.
  const { openRemote } = await import('../remote/open.js');
  const { RemoteCache } = await import('../remote/cache.js');
  return new RemoteCache(session.store, await openRemote(config), config.jobs, events.stage);
}
