// `pipeline run [STAGE...]`: run the DAG (or the named stages and what they need), skipping stages
// whose cache key has a committed result. One line per stage: cached / ran / failed and the time.
import type { Command } from 'commander';
import { renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { GlobalOptions } from '../global-options.js';
import { collect, collectUnset, errorText, nameWidth, nonNegativeNumber, overrideArgs, positiveInt, stageLine, UNSET_HELP } from '../stage-lines.js';
import type { StageReport } from '../../engine/run/execute.js';
import type { Session } from '../../engine/session.js';
import type { StoreLock } from '../../engine/store/lock.js';
import type { RunRecord, RunTrigger } from '../../engine/store/runs.js';
import type { RemoteConfig } from '../../engine/config/remote.js';

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
    .option('-j, --jobs <n>', 'how many stages may run at once', positiveInt, availableParallelism())
    .option('-k, --keep-going', 'after a failure, keep running stages that do not depend on it')
    .option('--lock-timeout <seconds>', 'how long to wait for another run to release the store', nonNegativeNumber, 600)
    .option('--remote <url>', 'remote cache to use (s3://bucket/prefix or http(s)://...; default: remote: in pipeline.yaml)')
    .option('--no-remote', 'do not look up results on the remote cache')
    .option('--push', 'upload the results this run computed to the remote cache')
    .action(async (targets: string[], options: RunOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      await runCommand(targets, options, globals);
    });
}

const out = (line: string) => process.stdout.write(line + '\n');
const err = (line: string) => process.stderr.write(line + '\n');

export async function runCommand(targets: string[], options: RunOptions, globals: GlobalOptions): Promise<void> {
  // Start loading what a real run needs while the pipeline is read and validated.
  const runModules = options.dryRun ? undefined : loadRunModules();
  const { openSession } = await import('../session.js');
  const { selectStages } = await import('../../engine/config/graph.js');
  const session = await openSession(globals.config, { sets: overrideArgs(options), backend: globals.backend });
  const selection = selectStages(session.pipeline, targets);
  const { chosenRemote } = await import('../remote.js');
  const remote = chosenRemote(session.pipeline, options.remote);
  if (options.push && !remote) {
    const { UsageError } = await import('../../engine/errors.js');
    throw new UsageError('--push needs a remote (remote: in pipeline.yaml, or --remote URL)');
  }
  const force = new Set(options.force ? (targets.length ? targets : selection) : []);
  if (!runModules) return dryRun(session, selection, force);
  return runForReal(runModules, session, selection, force, options, globals, remote);
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

async function dryRun(session: Session, selection: string[], force: ReadonlySet<string>): Promise<void> {
  const { gatherFacts, resolvePlan } = await import('../../engine/plan/facts.js');
  const { describeReasons } = await import('../../engine/plan/reasons.js');
  const env = session.env(new AbortController().signal);
  const facts = await gatherFacts(env, selection);
  const plan = await resolvePlan(env, facts, selection, { force });
  const width = nameWidth(selection);
  let toRun = 0;
  for (const p of plan.stages) {
    if (p.action === 'run') toRun++;
    const note = p.action === 'cached' ? (p.restore.length ? `would restore ${p.restore.join(', ')}` : '') : describeReasons(p.reasons);
    out(stageLine(p.action, p.stage, width, undefined, note));
  }
  out(`dry run: ${toRun} to run, ${plan.stages.length - toRun} cached (nothing was run or written)`);
}

async function runForReal(
  modules: ReturnType<typeof loadRunModules>,
  session: Session,
  selection: string[],
  force: ReadonlySet<string>,
  options: RunOptions,
  globals: GlobalOptions,
  remoteConfig?: RemoteConfig,
): Promise<void> {
  const { acquireCommandLock } = await modules.storeLock;
  const { removeOwnLockSync } = await modules.lock;
  const { gatherFacts } = await modules.facts;
  const { execute } = await modules.execute;
  const { newRunId } = await modules.runs;
  const { stageLogger, stageProgress, formatDuration } = await modules.output;
  const { AbortedError, PipelineError, StageError } = await modules.errors;
  const { signalRunningCommands } = await modules.cmdStage;
  const { stopLeftoverGroups } = await modules.commandGroups;
  await modules.lockfile;
  const { store, statCache } = session;
  const started = Date.now();
  const stop = new AbortController();

  // Ctrl-C / SIGTERM / SIGHUP (a closed terminal or SSH session): abort running stages (they are
  // killed, nothing partial is committed), then release the lock and exit 130. A second signal
  // exits at once, recording the run as interrupted.
  let signalled = false;
  let record: RunRecord | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      signalRunningCommands('SIGKILL');
      hardExitRemovingLock(store, record, started, removeOwnLockSync);
    }
    signalled = true;
    err(`${sig === 'SIGINT' ? 'interrupted' : `received ${sig}`}: stopping running stages (again to exit at once)`);
    stop.abort(new AbortedError());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  let lock: StoreLock | undefined;
  let remote: Awaited<ReturnType<typeof openRemoteCache>> | undefined;
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

    record = {
      id: newRunId(new Date(started)),
      command: process.argv.slice(2),
      pid: process.pid,
      startedAt: new Date(started).toISOString(),
      outcome: 'running',
      stages: [],
      ...(options.trigger ? { trigger: options.trigger } : {}),
    };
    await store.runs.write(record);
    options.onRecord?.(record);

    const refs = await store.readRefs();
    const env = session.env(stop.signal);
    const facts = await gatherFacts(env, selection, refs);
    const width = nameWidth(selection);
    const ui = { logger: (s: string) => stageLogger(s, globals.verbose), progress: (s: string) => stageProgress(s) };
    remote = remoteConfig ? await openRemoteCache(session, remoteConfig, ui) : undefined;
    const reports = await execute({
      env,
      facts,
      stages: selection,
      force,
      jobs: options.jobs,
      keepGoing: options.keepGoing ?? false,
      signal: stop.signal,
      runId: record.id,
      run: { startedAt: record.startedAt, command: record.command, ...(options.trigger ? { scheduled: options.trigger.entry } : {}) },
      refs,
      ui,
      remote,
      onStageDone: (r) => printReport(r, width, globals.verbose),
    });

    if (globals.verbose) err(`stat cache: ${statCache.hashedFiles} file${statCache.hashedFiles === 1 ? '' : 's'} hashed in this run (unchanged files are not rehashed)`);
    if (remote && options.push) {
      const computed = reports.filter((r) => r.outcome === 'ran' && r.manifest).map((r) => ({ stage: r.stage, manifest: r.manifest! }));
      const pushed = await remote.push(computed, stop.signal);
      out(`pushed ${pushed} of ${computed.length} computed result${computed.length === 1 ? '' : 's'} to ${remote.backend.url}`);
    }
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
    }));
    if (record.outcome === 'ok' && session.pipeline.promote) {
      record.promotion = await (await import('../promotion.js')).promoteAndReport(session, record);
    }
    await writeFinalRecord(store, record);
    options.onRecord?.(record);

    const summary = (['ran', 'cached', 'failed', 'aborted', 'skipped'] as const)
      .filter((k) => counts[k] > 0)
      .map((k) => `${counts[k]} ${k}`)
      .join(', ');
    out(`${summary || 'nothing to do'} in ${formatDuration(Date.now() - started)}`);
    const { runResultLines } = await import('../run-results.js');
    for (const line of await runResultLines(session.pipeline, store, reports)) out(line);

    if (lock.lost.aborted) throw lock.lost.reason;
    if (signalled) throw new AbortedError('interrupted: running stages were stopped; nothing partial was committed');
    if (counts.failed > 0) {
      const failed = reports.filter((r) => r.outcome === 'failed').map((r) => r.stage);
      throw new StageError(`${failed.length} stage${failed.length > 1 ? 's' : ''} failed: ${failed.join(', ')}`);
    }
    if (record.promotion?.decision === 'error') throw new StageError(`promotion failed: ${record.promotion.reason}`);
  } catch (e) {
    // Ctrl-C while hashing or waiting surfaces as some abort error: report it as the interrupt it is.
    if (signalled && !(e instanceof PipelineError)) throw new AbortedError();
    throw e;
  } finally {
    remote?.backend.close?.();
    try {
      if (lock) await statCache.save(); // only the lock holder writes the store
    } catch (e) {
      // Only a cache (files are rehashed next time): a full disk must not hide the run's outcome.
      err(`warning: could not save the stat cache: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      await lock?.release();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    }
  }
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

function countOutcomes(reports: StageReport[]): Record<StageReport['outcome'], number> {
  const counts = { cached: 0, ran: 0, failed: 0, skipped: 0, aborted: 0 };
  for (const r of reports) counts[r.outcome]++;
  return counts;
}

function printReport(r: StageReport, width: number, verbose: boolean): void {
  switch (r.outcome) {
    case 'cached':
      if (r.pulled) out(stageLine('cached', r.stage, width, r.durationMs, `(pulled from the remote${r.restored ? `, restored ${r.restored.join(', ')}` : ''})`));
      else out(stageLine('cached', r.stage, width, r.durationMs, r.restored ? `(restored ${r.restored.join(', ')} from the store)` : undefined));
      break;
    case 'ran':
      out(stageLine('ran', r.stage, width, r.durationMs, r.reason ? `(${r.reason})` : undefined));
      break;
    case 'failed':
      out(stageLine('failed', r.stage, width, r.durationMs));
      err(`error: ${verbose && r.error instanceof Error && r.error.stack ? r.error.stack : errorText(r.error)}`);
      break;
    case 'aborted':
      out(stageLine('aborted', r.stage, width, r.durationMs, '(stopped; nothing committed)'));
      break;
    case 'skipped':
      out(stageLine('skipped', r.stage, width, undefined, r.reason ? `(${r.reason})` : undefined));
      break;
  }
}

async function openRemoteCache(session: Session, config: RemoteConfig, ui: import('../../engine/remote/cache.js').RemoteCacheUi) {
  const { openRemote } = await import('../../engine/remote/open.js');
  const { RemoteCache } = await import('../../engine/remote/cache.js');
  return new RemoteCache(session.store, await openRemote(config), config.jobs, ui);
}

/** Second Ctrl-C: leave now, but do not leave our lock behind, nor a run record saying `running`. */
function hardExitRemovingLock(store: Session['store'], record: RunRecord | undefined, started: number, removeOwnLockSync: (storeDir: string) => void): never {
  if (record) {
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
