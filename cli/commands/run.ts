// `pipeline run [STAGE...]`: run the DAG (or the named stages and what they need), skipping stages
// whose cache key has a committed result. One line per stage: cached / ran / failed and the time.
import type { Command } from 'commander';
import { readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { GlobalOptions } from '../main.js';
import { collect, collectUnset, errorText, nameWidth, nonNegativeNumber, overrideArgs, positiveInt, stageLine, UNSET_HELP } from '../stage-lines.js';
import type { StageReport } from '../../engine/execute.js';
import type { RunRecord } from '../../engine/runs.js';

export interface RunOptions {
  force?: boolean;
  dryRun?: boolean;
  set: string[];
  unset: string[];
  jobs: number;
  keepGoing?: boolean;
  lockTimeout: number;
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
  runModules?.catch(() => {});
  const [{ openSession }, { selectStages }] = await Promise.all([import('../../engine/session.js'), import('../../engine/config.js')]);
  const session = await openSession(globals.config, { sets: overrideArgs(options), backend: globals.backend });
  const selection = selectStages(session.pipeline, targets);
  const force = new Set(options.force ? (targets.length ? targets : selection) : []);
  if (!runModules) return dryRun(session, selection, force);
  return runForReal(await runModules, session, selection, force, options, globals);
}

function loadRunModules() {
  return Promise.all([
    import('../../engine/lock.js'),
    import('../../engine/facts.js'),
    import('../../engine/execute.js'),
    import('../../engine/runs.js'),
    import('../output.js'),
    import('../../engine/errors.js'),
    import('../../engine/cmd-stage.js'),
    import('proper-lockfile'),
  ]);
}

type Session = Awaited<ReturnType<typeof import('../../engine/session.js').openSession>>;

async function dryRun(session: Session, selection: string[], force: ReadonlySet<string>): Promise<void> {
  const { gatherFacts, resolvePlan } = await import('../../engine/facts.js');
  const { describeReasons } = await import('../../engine/reasons.js');
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
  modules: Awaited<ReturnType<typeof loadRunModules>>,
  session: Session,
  selection: string[],
  force: ReadonlySet<string>,
  options: RunOptions,
  globals: GlobalOptions,
): Promise<void> {
  const [{ acquireStoreLock, describeHolder }, { gatherFacts }, { execute }, { newRunId }, { stageLogger, stageProgress, formatDuration }, errors, { signalRunningCommands }] =
    modules;
  const { store, statCache } = session;
  const started = Date.now();
  const stop = new AbortController();

  // Ctrl-C / SIGTERM: abort running stages (they are killed, nothing partial is committed), then
  // release the lock and exit 130. A second signal exits at once.
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      signalRunningCommands('SIGKILL');
      hardExitRemovingLock(store.dir);
    }
    signalled = true;
    err(`${sig === 'SIGINT' ? 'interrupted' : `received ${sig}`}: stopping running stages (again to exit at once)`);
    stop.abort(new errors.AbortedError());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let lock: Awaited<ReturnType<typeof acquireStoreLock>> | undefined;
  try {
    await store.init();
    lock = await acquireStoreLock(store.dir, {
      timeoutMs: options.lockTimeout * 1000,
      command: ['pipeline', ...process.argv.slice(2)].join(' '),
      signal: stop.signal,
      onWait: (h) => err(`waiting for the store lock, held by ${describeHolder(h)} (up to ${options.lockTimeout}s, --lock-timeout)`),
      onBreak: (h) => err(`broke the store lock left by pid ${h.pid} (${h.command}), which is no longer running`),
    });
    lock.lost.addEventListener('abort', () => stop.abort(lock!.lost.reason), { once: true });
    await store.cleanTmp();

    const record: RunRecord = {
      id: newRunId(new Date(started)),
      command: process.argv.slice(2),
      pid: process.pid,
      startedAt: new Date(started).toISOString(),
      outcome: 'running',
      stages: [],
    };
    await store.runs.write(record);

    const refs = await store.readRefs();
    const env = session.env(stop.signal);
    const facts = await gatherFacts(env, selection, refs);
    const width = nameWidth(selection);
    const reports = await execute({
      env,
      facts,
      stages: selection,
      force,
      jobs: options.jobs,
      keepGoing: options.keepGoing ?? false,
      signal: stop.signal,
      runId: record.id,
      refs,
      ui: { logger: (s) => stageLogger(s, globals.verbose), progress: (s) => stageProgress(s) },
      onStageDone: (r) => printReport(r, width, globals.verbose),
    });

    if (globals.verbose) err(`stat cache: ${statCache.hashedFiles} file${statCache.hashedFiles === 1 ? '' : 's'} hashed in this run (unchanged files are not rehashed)`);
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
    await store.runs.write(record);

    const summary = (['ran', 'cached', 'failed', 'aborted', 'skipped'] as const)
      .filter((k) => counts[k] > 0)
      .map((k) => `${counts[k]} ${k}`)
      .join(', ');
    out(`${summary || 'nothing to do'} in ${formatDuration(Date.now() - started)}`);

    if (lock.lost.aborted) throw lock.lost.reason;
    if (signalled) throw new errors.AbortedError('interrupted: running stages were stopped; nothing partial was committed');
    if (counts.failed > 0) {
      const failed = reports.filter((r) => r.outcome === 'failed').map((r) => r.stage);
      throw new errors.StageError(`${failed.length} stage${failed.length > 1 ? 's' : ''} failed: ${failed.join(', ')}`);
    }
  } catch (e) {
    // Ctrl-C while hashing or waiting surfaces as some abort error: report it as the interrupt it is.
    if (signalled && !(e instanceof errors.PipelineError)) throw new errors.AbortedError();
    throw e;
  } finally {
    try {
      if (lock) await statCache.save(); // only the lock holder writes the store
    } finally {
      await lock?.release();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
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
      out(stageLine('cached', r.stage, width, r.durationMs, r.restored ? `(restored ${r.restored.join(', ')} from the store)` : undefined));
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

/** Second Ctrl-C: leave now, but do not leave our lock behind. */
function hardExitRemovingLock(storeDir: string): never {
  try {
    const holder = JSON.parse(readFileSync(join(storeDir, 'lock.json'), 'utf8')) as { pid?: number };
    if (holder.pid === process.pid) {
      rmSync(join(storeDir, 'lock.json'), { force: true });
      rmSync(join(storeDir, 'lock'), { recursive: true, force: true });
    }
  } catch {
    // Best effort: the next run breaks a lock whose holder pid is gone anyway.
  }
  process.exit(130);
}
