// `pipeline run [STAGE...]`: run the DAG (or the named stages and what they need), skipping stages
// whose cache key has a committed result. One line per stage: cached / ran / failed and the time.
import { Option, type Command } from 'commander';
import { renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { GlobalOptions } from '../global-options.js';
import { printLine } from '../output.js';
import { collect, collectUnset, errorText, nameWidth, nonNegativeNumber, overrideArgs, positiveInt, stageLine, UNSET_HELP } from '../stage-lines.js';
import type { StageReport } from '../../engine/run/execute.js';
import type { Session } from '../../engine/session.js';
import type { StoreLock } from '../../engine/store/lock.js';
import type { EffectiveParams, PushRecord, RunRecord, RunTrigger } from '../../engine/store/runs.js';
import type { Pipeline } from '../../engine/config/pipeline.js';
import type { RemoteConfig } from '../../engine/config/remote.js';
import type { QueueDispatcher } from '../../engine/queue/dispatch.js';
import type { RemoteCache, RemoteCacheUi } from '../../engine/remote/cache.js';
import type { QueueTarget } from '../../engine/queue/target.js';
import { collectAxis, describeAssignments, experimentsOf, type Experiment, type MatrixAxis } from '../sweep.js';
import { openQueue, QUEUE_HELP, queueDispatch, queueTargetOf, queueTimeoutOption } from '../queue-run.js';

/** Stages in flight on the queue at once unless --jobs says otherwise. */
const QUEUE_DEFAULT_JOBS = 64;

export interface RunOptions {
  force?: boolean;
  dryRun?: boolean;
  set: string[];
  unset: string[];
  jobs: number;
  keepGoing?: boolean;
  lockTimeout: number;
  /** Set by `pipeline schedule`: recorded in the run record. */
  trigger?: RunTrigger;
  /** Called with the run record each time it is written. */
  onRecord?(record: RunRecord): void;
  /** `--remote URL`, or false for `--no-remote`. */
  remote?: string | boolean;
  push?: boolean;
  /** `--executor queue`: stages are computed by `pipeline worker`s through the `--queue` Redis. */
  executor?: 'local' | 'queue';
  queue?: string;
  /** `--queue-timeout`: give up when no worker has taken one of the run's jobs for this long (ms). */
  queueTimeout?: number;
  /** `--matrix`: a sweep over the cross product of these axes. */
  matrix?: MatrixAxis[];
  /** Set by `pipeline worker` for the child it runs a job in: the key the coordinator computed. */
  workerJob?: string;
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run the pipeline, or the named stages and what they need; stages with a cached result are skipped')
    .argument('[stages...]', 'stages to run (default: all)')
    .option('--force', 'rerun the named stages (all if none named) even if cached')
    .option('-n, --dry-run', 'print what would run and why; run and write nothing')
    .option('--set <stage.param=value>', 'override a param (repeatable)', collect, [])
    .option('--unset <stage.param>', UNSET_HELP, collectUnset, [])
    .option('-j, --jobs <n>', `how many stages may run at once (with --executor queue: ${QUEUE_DEFAULT_JOBS})`, positiveInt, availableParallelism())
    .option('-k, --keep-going', 'after a failure, keep running stages that do not depend on it')
    .option('--lock-timeout <seconds>', 'how long to wait for another run to release the store', nonNegativeNumber, 600)
    .option('--remote <url>', 'remote cache to use (s3://bucket/prefix or http(s)://...; default: remote: in pipeline.yaml)')
    .option('--no-remote', 'do not look up results on the remote cache')
    .option('--push', 'upload the results this run computed to the remote cache')
    .addOption(
      new Option('--executor <where>', 'where stages are computed: local, or queue (by `pipeline worker`s; needs --queue and a remote)')
        .choices(['local', 'queue'])
        .default('local'),
    )
    .option('--queue <url>', 'Redis of the stage queue for --executor queue: redis://host:port[/db][?name=queue] (default: PIPELINE_QUEUE)')
    .addOption(queueTimeoutOption())
    .option(
      '--matrix <stage.param=v1,v2>',
      'a sweep: run every combination of the values as its own experiment, sharing the stages they have in common (repeatable)',
      collectAxis,
      [],
    )
    .addOption(new Option('--worker-job <key>', 'run by `pipeline worker`: compute only the named stage, whose key must be <key>').hideHelp())
    .addHelpText('after', QUEUE_HELP)
    .action(async (targets: string[], options: RunOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      // On the queue, --jobs caps stages in flight across all workers, not this machine's cores.
      if (options.executor === 'queue' && command.getOptionValueSource('jobs') === 'default') options.jobs = QUEUE_DEFAULT_JOBS;
      await runCommand(targets, options, globals);
    });
}

// Through printLine: a stage's progress bar may be on screen (stages run side by side).
const out = (line: string) => printLine(process.stdout, line);
const err = (line: string) => printLine(process.stderr, line);

export async function runCommand(targets: string[], options: RunOptions, globals: GlobalOptions): Promise<void> {
  // Start loading what a real run needs while the pipeline is read and validated.
  const runModules = options.dryRun ? undefined : loadRunModules();
  const { openSession } = await import('../session.js');
  const { selectStages } = await import('../../engine/config/graph.js');
  const { UsageError } = await import('../../engine/errors.js');
  // One session per experiment of a sweep (each validated before anything is written), sharing a store.
  const experiments: (Experiment | undefined)[] = options.matrix?.length ? experimentsOf(options.matrix) : [undefined];
  const sessions: Session[] = [];
  for (const experiment of experiments) {
    const sets = [...overrideArgs(options), ...(experiment?.sets ?? [])];
    sessions.push(await openSession(globals.config, { sets, backend: globals.backend, reuse: sessions[0] }));
  }
  const session = sessions[0]!;
  const selection = selectStages(session.pipeline, targets);
  const { chosenRemote } = await import('../remote.js');
  const remote = chosenRemote(session.pipeline, options.remote);
  if (options.push && !remote) throw new UsageError('--push needs a remote (remote: in pipeline.yaml, or --remote URL)');
  const queue = await queueTargetOf(options, remote !== undefined);
  if (options.workerJob !== undefined && (targets.length !== 1 || !remote || experiments.length > 1))
    throw new UsageError('--worker-job runs one named stage with a remote');
  const force = new Set(options.force ? (targets.length ? targets : selection) : []);
  const runs = sessions.map((s, i) => ({ session: s, experiment: experiments[i] }));
  if (!runModules) {
    for (const { session: s, experiment } of runs) {
      if (experiment) out(`${experiment.label}: ${describeAssignments(experiment.assignments)}`);
      await dryRun(s, selection, force, remote);
    }
    return;
  }
  return runForReal(runModules, runs, selection, force, options, globals, remote, queue);
}

/** What a real run needs beyond reading the pipeline: all start loading at once, each read by name when needed. */
function loadRunModules() {
  const modules = {
    storeLock: import('../store-lock.js'),
    lock: import('../../engine/store/lock.js'),
    facts: import('../../engine/plan/facts.js'),
    execute: import('../../engine/run/execute.js'),
    runs: import('../../engine/store/runs.js'),
    output: import('../output.js'),
    errors: import('../../engine/errors.js'),
    cmdStage: import('../../engine/run/cmd-stage.js'),
    commandGroups: import('../../engine/run/command-groups.js'),
    // Not used here: the lock module loads it on demand, so it is loaded meanwhile.
    lockfile: import('proper-lockfile'),
  };
  // A module that fails to load fails the run where it is awaited; no unhandled rejection before that.
  for (const loading of Object.values(modules)) loading.catch(() => {});
  return modules;
}

async function dryRun(session: Session, selection: string[], force: ReadonlySet<string>, remoteConfig?: RemoteConfig): Promise<void> {
  const { gatherFacts, resolvePlan } = await import('../../engine/plan/facts.js');
  const { describeReasons } = await import('../../engine/plan/reasons.js');
  const env = session.env(new AbortController().signal);
  const facts = await gatherFacts(env, selection);
  let plan = await resolvePlan(env, facts, selection, { force });
  // As a real run would: a stage missing here but on the remote would be pulled, not computed, and
  // its outputs then key the stages after it (so the remote is asked again, a level further).
  const pulled = new Set<string>();
  if (remoteConfig) {
    const { openRemote } = await import('../../engine/remote/open.js');
    const { fetchManifest } = await import('../../engine/remote/transfer.js');
    const remote = await openRemote(remoteConfig);
    try {
      for (let found = true; found;) {
        found = false;
        for (const p of plan.stages) {
          if (p.action !== 'run' || !p.key || force.has(p.stage) || pulled.has(p.stage)) continue;
          const m = await fetchManifest(remote, p.key);
          if (!m) continue;
          facts.stored.set(m.key, { manifest: m, missingObjects: [], workspaceMissing: [] });
          pulled.add(p.stage);
          found = true;
        }
        if (found) plan = await resolvePlan(env, facts, selection, { force });
      }
    } catch (e) {
      err(`warning: remote ${remote.url}: ${errorText(e)}; the plan below does not count on it`);
    } finally {
      remote.close?.();
    }
  }
  const width = nameWidth(selection);
  let toRun = 0;
  for (const p of plan.stages) {
    if (p.action === 'run') toRun++;
    const note = pulled.has(p.stage)
      ? 'would pull from the remote'
      : p.action === 'cached'
        ? p.restore.length
          ? `would restore ${p.restore.join(', ')}`
          : ''
        : describeReasons(p.reasons);
    out(stageLine(p.action, p.stage, width, undefined, note));
  }
  const fromRemote = pulled.size ? `, ${pulled.size} of them from the remote` : '';
  out(`dry run: ${toRun} to run, ${plan.stages.length - toRun} cached${fromRemote} (nothing was run or written)`);
}

interface ExperimentRun {
  session: Session;
  experiment?: Experiment;
}

async function runForReal(
  modules: ReturnType<typeof loadRunModules>,
  runs: ExperimentRun[],
  selection: string[],
  force: ReadonlySet<string>,
  options: RunOptions,
  globals: GlobalOptions,
  remoteConfig?: RemoteConfig,
  queueTarget?: QueueTarget,
): Promise<void> {
  const { acquireCommandLock } = await modules.storeLock;
  const { removeOwnLockSync } = await modules.lock;
  const { gatherFacts } = await modules.facts;
  const { execute } = await modules.execute;
  const { newRunId } = await modules.runs;
  const { stageLogger, stageProgress, formatDuration } = await modules.output;
  const { AbortedError, PipelineError, PushIncompleteError, StageError } = await modules.errors;
  const { signalRunningCommands } = await modules.cmdStage;
  const { stopLeftoverGroups } = await modules.commandGroups;
  await modules.lockfile;
  const session = runs[0]!.session;
  const { store, statCache } = session;
  const sweep = runs.length > 1;
  const started = Date.now();
  const stop = new AbortController();

  // Ctrl-C / SIGTERM / SIGHUP (a closed terminal or SSH session): abort running stages (they are
  // killed, nothing partial is committed), then release the lock and exit 130. A second signal
  // exits at once, recording the run as interrupted.
  let signalled = false;
  const records: RunRecord[] = [];
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      signalRunningCommands('SIGKILL');
      hardExitRemovingLock(store, records, started, removeOwnLockSync);
    }
    signalled = true;
    err(`${sig === 'SIGINT' ? 'interrupted' : `received ${sig}`}: stopping running stages (again to exit at once)`);
    stop.abort(new AbortedError());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // A worker's child stops when its worker dies (cli/worker-child.ts), as if interrupted.
  const workerChild = await import('../worker-child.js');
  const endOrphanable = workerChild.whileOrphanable(() => onSignal('SIGTERM'));

  let lock: StoreLock | undefined;
  let remote: RemoteCache | undefined;
  let queue: QueueDispatcher | undefined;
  try {
    await store.init();
    lock = await acquireCommandLock(store.dir, {
      timeoutSeconds: options.lockTimeout,
      signal: stop.signal,
      waitNote: ` (up to ${options.lockTimeout}s, --lock-timeout)`,
    });
    lock.lost.addEventListener('abort', () => stop.abort(lock!.lost.reason), { once: true });
    // A dead run's commands may still be writing its outs: stop them before running anything.
    for (const g of await stopLeftoverGroups(store.commandsDir)) {
      err(`stopped the command of stage ${g.stage} (process group ${g.pgid}) left running by pid ${g.ownerPid}, which is no longer running`);
    }
    await store.cleanTmp();

    const ui = { logger: (s: string) => stageLogger(s, globals.verbose), progress: (s: string) => stageProgress(s) };
    remote = remoteConfig ? await openRemoteCache(session, remoteConfig, ui) : undefined;
    if (queueTarget) queue = await openQueue(queueTarget, options);

    const sweepId = newRunId(new Date(started));
    for (const [i, { experiment }] of runs.entries()) {
      const record: RunRecord = {
        id: sweep ? `${sweepId}-${i + 1}` : sweepId,
        command: process.argv.slice(2),
        pid: process.pid,
        startedAt: new Date(started).toISOString(),
        outcome: 'running',
        stages: [],
        ...(options.trigger ? { trigger: options.trigger } : {}),
        ...(experiment ? { experiment: { sweep: sweepId, index: i + 1, of: runs.length, assignments: experiment.assignments } } : {}),
        ...(queueTarget ? { queue: queueTarget.display } : {}),
        ...overridesOf(options, globals),
        effective: effectiveParams(runs[i]!.session.pipeline, selection),
      };
      records.push(record);
      await store.runs.write(record);
      options.onRecord?.(record);
    }
    if (sweep) for (const { experiment } of runs) out(`${experiment!.label}: ${describeAssignments(experiment!.assignments)}`);

    const refs = await store.readRefs();
    const labelWidth = sweep ? Math.max(...runs.map((r) => r.experiment!.label.length)) + 1 : 0;
    const width = nameWidth(selection) + labelWidth;
    // Shared by a sweep's experiments: one cap on running stages, one producer per key, one
    // writer of a cmd stage's workspace outs at a time.
    const pLimit = (await import('p-limit')).default;
    const limit = pLimit(Math.max(1, options.jobs));
    const inflight = new Map<string, Promise<StageReport>>();
    const exclusive = new Map<string, ReturnType<typeof pLimit>>();
    const coordinator = `${hostname()}:${process.pid}`;
    const results = await Promise.all(
      runs.map(async ({ session: s, experiment }, i) => {
        const env = s.env(stop.signal);
        const facts = await gatherFacts(env, selection, refs);
        const dispatch = queue && remote ? queueDispatch(queue, remote, s, experiment, options, globals, records[i]!.id, coordinator, force) : undefined;
        const reports = await execute({
          env,
          facts,
          stages: selection,
          force,
          jobs: options.jobs,
          limit,
          keepGoing: options.keepGoing ?? false,
          signal: stop.signal,
          runId: records[i]!.id,
          run: {
            startedAt: records[i]!.startedAt,
            command: records[i]!.command,
            ...(options.trigger ? { scheduled: options.trigger.entry } : {}),
            ...(experiment ? { experiment: describeAssignments(experiment.assignments) } : {}),
          },
          refs,
          ui,
          remote,
          dispatch,
          ...(options.workerJob !== undefined
            ? { computeOnly: new Set(selection.slice(-1)), expectKeys: new Map([[selection.at(-1)!, options.workerJob]]), producer: workerChild.workerName() }
            : {}),
          ...(sweep
            ? {
                inflight,
                experiment: true,
                exclusive: (stage: string) => exclusive.get(stage) ?? exclusive.set(stage, pLimit(1)).get(stage)!,
              }
            : {}),
          onStageDone: (r) => printReport(experiment ? { ...r, stage: `${experiment.label} ${r.stage}` } : r, width, globals.verbose),
        });
        return { experiment, session: s, reports, record: records[i]! };
      }),
    );
    const allReports = results.flatMap((r) => r.reports);
    let push: PushRecord | undefined;

    if (globals.verbose)
      err(`stat cache: ${statCache.hashedFiles} file${statCache.hashedFiles === 1 ? '' : 's'} hashed in this run (unchanged files are not rehashed)`);
    if (remote && options.workerJob !== undefined) {
      // A worker's result must be on the remote for the coordinator, also when it was cached here.
      const target = allReports.find((r) => r.stage === selection.at(-1) && r.manifest && (r.outcome === 'ran' || r.outcome === 'cached'));
      if (target) await remote.ensure([target.manifest!], stop.signal);
      // Computed here, or found made (by whom, its manifest says): the run record credits who computed.
      if (target) await workerChild.reportToWorker({ computed: target.outcome === 'ran', computedBy: target.manifest!.worker });
    } else if (remote && options.push) {
      const computed = allReports.filter((r) => r.outcome === 'ran' && r.manifest && !r.worker).map((r) => ({ stage: r.stage, manifest: r.manifest! }));
      const { pushed, notPushed } = await remote.push(computed, stop.signal);
      out(`pushed ${pushed} of ${computed.length} computed result${computed.length === 1 ? '' : 's'} to ${remote.backend.url}`);
      push = { pushed, of: computed.length, remote: remote.backend.url, ...(notPushed.length ? { notPushed } : {}) };
    }
    for (const { reports, record, session: s } of results) {
      const counts = countOutcomes(reports);
      record.finishedAt = new Date().toISOString();
      record.durationMs = Date.now() - started;
      record.outcome = signalled ? 'interrupted' : counts.failed > 0 || counts.aborted > 0 ? 'failed' : 'ok';
      record.stages = reports.map((r) => ({
        stage: r.stage,
        outcome: r.outcome,
        key: r.key,
        durationMs: r.durationMs,
        reason: r.reason,
        error: r.error === undefined ? undefined : errorText(r.error),
        restored: r.restored,
        worker: r.worker,
        hint: r.hint,
      }));
      if (push) record.push = push;
      // A sweep compares experiments; which of them should become the model is the user's call.
      if (!sweep && record.outcome === 'ok' && s.pipeline.promote) {
        record.promotion = await (await import('../promotion.js')).promoteAndReport(s, record);
      }
      await writeFinalRecord(store, record);
      options.onRecord?.(record);
    }

    const counts = countOutcomes(allReports);
    const summary = (['ran', 'cached', 'failed', 'aborted', 'skipped'] as const)
      .filter((k) => counts[k] > 0)
      .map((k) => `${counts[k]} ${k}`)
      .join(', ');
    out(`${summary || 'nothing to do'} in ${formatDuration(Date.now() - started)}${sweep ? ` (${runs.length} experiments)` : ''}`);
    if (sweep) {
      const { sweepTable } = await import('../sweep.js');
      const rows = await sweepTable(
        results.map((r) => ({ experiment: r.experiment!, pipeline: r.session.pipeline, reports: r.reports, runId: r.record.id })),
        store,
      );
      for (const line of rows) out(line);
    } else {
      const { runResultLines } = await import('../run-results.js');
      for (const line of await runResultLines(session.pipeline, store, allReports)) out(line);
    }

    if (lock.lost.aborted) throw lock.lost.reason;
    if (signalled) {
      if (queue) err('stages already queued keep running on the workers; run again to pick up their results');
      throw new AbortedError('interrupted: running stages were stopped; nothing partial was committed');
    }
    if (counts.failed > 0) {
      const failed = [...new Set(allReports.filter((r) => r.outcome === 'failed').map((r) => r.stage))];
      throw new StageError(`${failed.length} stage${failed.length > 1 ? 's' : ''} failed: ${failed.join(', ')}`);
    }
    const promotion = records.find((r) => r.promotion?.decision === 'error')?.promotion;
    if (promotion) throw new StageError(`promotion failed: ${promotion.reason}`);
    if (push && push.pushed < push.of) throw new PushIncompleteError(pushShortfall(push));
  } catch (e) {
    // Ctrl-C while hashing or waiting surfaces as some abort error: report it as the interrupt it is.
    if (signalled && !(e instanceof PipelineError)) throw new AbortedError();
    throw e;
  } finally {
    await queue?.close();
    remote?.backend.close?.();
    try {
      if (lock) await statCache.save(); // only the lock holder writes the store
    } catch (e) {
      // Only a cache (files are rehashed next time): a full disk must not hide the run's outcome.
      err(`warning: could not save the stat cache: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      await lock?.release();
      endOrphanable();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    }
  }
}

/** The record's `overrides`: the command line's changes to pipeline.yaml, when it made any. */
function overridesOf(options: RunOptions, globals: GlobalOptions): Pick<RunRecord, 'overrides'> {
  if (!options.set.length && !options.unset.length && globals.backend === undefined) return {};
  return { overrides: { set: options.set, unset: options.unset, ...(globals.backend !== undefined ? { backend: globals.backend } : {}) } };
}

/** What the selected stages run with (after overrides): what `exp show` and `metrics --diff` compare. */
function effectiveParams(pipeline: Pipeline, selection: readonly string[]): EffectiveParams {
  const stages: EffectiveParams['stages'] = {};
  for (const name of selection) {
    const params = pipeline.stages.get(name)?.params;
    if (params && Object.keys(params).length) stages[name] = params;
  }
  return { params: pipeline.params, stages };
}

/** The run's final record; on a full disk, once more after emptying tmp/, then a warning (the stage errors still follow). */
async function writeFinalRecord(store: Session['store'], record: RunRecord): Promise<void> {
  try {
    await store.runs.write(record);
  } catch (first) {
    try {
      await store.cleanTmp();
      await store.runs.write(record);
    } catch {
      err(`warning: could not write the run record ${join(store.runs.dir, `${record.id}.json`)}: ${first instanceof Error ? first.message : String(first)}`);
    }
  }
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

function countOutcomes(reports: StageReport[]): Record<StageReport['outcome'], number> {
  const counts = { cached: 0, ran: 0, failed: 0, skipped: 0, aborted: 0 };
  for (const r of reports) counts[r.outcome]++;
  return counts;
}

function printReport(r: StageReport, width: number, verbose: boolean): void {
  switch (r.outcome) {
    case 'cached':
      if (r.pulled)
        out(stageLine('cached', r.stage, width, r.durationMs, `(pulled from the remote${r.restored ? `, restored ${r.restored.join(', ')}` : ''})`));
      else out(stageLine('cached', r.stage, width, r.durationMs, r.restored ? `(restored ${r.restored.join(', ')} from the store)` : undefined));
      break;
    case 'ran':
      out(
        stageLine(
          'ran',
          r.stage,
          width,
          r.durationMs,
          r.reason || r.worker ? `(${[r.worker && `on ${r.worker}`, r.reason].filter(Boolean).join(': ')})` : undefined,
        ),
      );
      break;
    case 'failed':
      out(stageLine('failed', r.stage, width, r.durationMs));
      err(`error: ${verbose && r.error instanceof Error && r.error.stack ? r.error.stack : errorText(r.error)}`);
      if (r.hint) err(`hint: ${r.hint}`);
      break;
    case 'aborted':
      out(stageLine('aborted', r.stage, width, r.durationMs, '(stopped; nothing committed)'));
      break;
    case 'skipped':
      out(stageLine('skipped', r.stage, width, undefined, r.reason ? `(${r.reason})` : undefined));
      break;
  }
}

async function openRemoteCache(session: Session, config: RemoteConfig, ui: RemoteCacheUi): Promise<RemoteCache> {
  const { openRemote } = await import('../../engine/remote/open.js');
  const { RemoteCache } = await import('../../engine/remote/cache.js');
  return new RemoteCache(session.store, await openRemote(config), config.jobs, ui);
}

/** Second Ctrl-C: leave now, but do not leave our lock behind, nor run records saying `running`. */
function hardExitRemovingLock(store: Session['store'], records: readonly RunRecord[], started: number, removeOwnLockSync: (storeDir: string) => void): never {
  for (const record of records) {
    try {
      const file = join(store.runs.dir, `${record.id}.json`);
      const done: RunRecord = { ...record, outcome: 'interrupted', finishedAt: new Date().toISOString(), durationMs: Date.now() - started };
      writeFileSync(`${file}.tmp-${process.pid}`, JSON.stringify(done, null, 2) + '\n');
      renameSync(`${file}.tmp-${process.pid}`, file);
    } catch {
      // Best effort: `runs` shows a record whose process is gone as killed.
    }
  }
  removeOwnLockSync(store.dir);
  process.exit(130);
}
