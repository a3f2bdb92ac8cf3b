// `pipeline schedule [--once] [--entry NAME]`: runs the `schedule:` entries of pipeline.yaml. Each
// tick is a normal `pipeline run` (same lock, same run records, promotion); a tick that fires while
// a run is going (here or in another process) is skipped and recorded, never overlapped. SIGTERM /
// SIGINT: no more ticks, the running one stops as Ctrl-C stops `pipeline run` (train keeps its
// checkpoints), the lock is released, exit 0.
import { Option, type Command } from 'commander';
import { availableParallelism } from 'node:os';
import type { GlobalOptions } from '../global-options.js';
import type { Session } from '../../engine/session.js';
import { errorText, portNumber, positiveInt } from '../stage-lines.js';
import { QUEUE_HELP, queueTimeoutOption } from '../queue-run.js';
import type { ScheduleEntry } from '../../engine/config/automation.js';
import type { RunRecord, RunTrigger } from '../../engine/store/runs.js';
import type { Tick, RunningTick } from '../../engine/schedule/scheduler.js';
import { openSession } from '../session.js';
import { loadPipeline } from '../../engine/config/load.js';
import { Scheduler, nextDue, nextFireTimes } from '../../engine/schedule/scheduler.js';
import { StageError, UsageError, LockError } from '../../engine/errors.js';
import { runToEnd } from '../pipeline-run.js';
import { newRunId } from '../../engine/store/runs.js';
import { notify } from '../../engine/schedule/notify.js';
import { parseQueueUrl } from '../../engine/queue/target.js';
import { queueSecretFrom } from '../../engine/queue/jobs.js';
import { boundStop, STOP_STEP_MS, type StopSteps } from '../../engine/lifecycle/bounded.js';
import type { MetricsExport } from '../../engine/metrics/start.js';
import { lastTicks } from '../../engine/schedule/catchup.js';
import { retainAfterTick, describePrune } from '../../engine/schedule/apply-retention.js';
import { overrunAlert } from '../../engine/schedule/overrun.js';

interface ScheduleOptions {
  once?: boolean;
  entry?: string;
  jobs: number;
  executor: 'local' | 'queue';
  queue?: string;
  queueTimeout?: number;
  metricsPort?: number;
  metricsFile?: string;
}

export function register(program: Command): void {
  program
    .command('schedule')
    .description('run the schedule: entries of pipeline.yaml (long-running; --once runs the next due entry now and exits)')
    .option('--once', 'run the next due entry (or --entry) now, then exit; for system cron, systemd timers and tests')
    .option('--entry <name>', 'only this schedule entry')
    .option('-j, --jobs <n>', 'how many stages may run at once in each run', positiveInt, availableParallelism())
    .addOption(
      new Option('--executor <where>', 'where each run computes its stages: local, or queue (`pipeline worker`s; needs --queue and a remote)')
        .choices(['local', 'queue'])
        .default('local'),
    )
    .option('--queue <url>', 'Redis of the stage queue for --executor queue (default: PIPELINE_QUEUE)')
    .addOption(queueTimeoutOption())
    .option('--metrics-port <port>', 'serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0: any free port)', portNumber)
    .option('--metrics-file <file>', 'write Prometheus metrics to FILE after each tick (a node_exporter textfile: name it *.prom)')
    .addHelpText('after', QUEUE_HELP)
    .action(async (options: ScheduleOptions, command: Command) => {
      if (options.executor === 'queue' && command.getOptionValueSource('jobs') === 'default') options.jobs = 64; // as run --executor queue
      await scheduleCommand(options, command.optsWithGlobals<GlobalOptions>());
    });
}

const out = (line: string) => process.stdout.write(line + '\n');
const err = (line: string) => process.stderr.write(line + '\n');

async function scheduleCommand(options: ScheduleOptions, globals: GlobalOptions): Promise<void> {
  const session = await openSession(globals.config, { backend: globals.backend });
  const all = session.pipeline.schedule ?? [];
  if (all.length === 0) throw new UsageError(`${globals.config} has no schedule: entries (see docs/operations.md, "Scheduled retraining")`);
  const entries = options.entry === undefined ? all : all.filter((e) => e.name === options.entry);
  if (entries.length === 0) throw new UsageError(`no schedule entry '${options.entry}' (entries: ${all.map((e) => e.name).join(', ')})`);
  // The cluster, like each entry's overrides, must be usable now, not at 3 a.m.
  if (options.executor === 'queue') {
    const url = options.queue ?? process.env.PIPELINE_QUEUE;
    if (!url) throw new UsageError('--executor queue needs --queue redis://HOST:PORT (or PIPELINE_QUEUE)');
    if (!session.pipeline.remote)
      throw new UsageError('--executor queue needs a remote cache (remote: in pipeline.yaml): workers pull inputs from it and push results to it');
    parseQueueUrl(url);
    queueSecretFrom(process.env, '--executor queue');
  } else if (options.queue !== undefined) throw new UsageError('--queue is for --executor queue');
  else if (options.queueTimeout !== undefined) throw new UsageError('--queue-timeout is for --executor queue');
  // Each entry's overrides must make a valid pipeline now, not at 3 a.m.
  for (const entry of entries) {
    if (entry.sets.length) await loadPipeline(globals.config, { sets: entry.sets, kinds: session.kinds });
  }

  // prom-client is loaded only when metrics are asked for.
  const { startMetrics } = await import('../../engine/metrics/start.js');
  const queueUrl = options.executor === 'queue' ? (options.queue ?? process.env.PIPELINE_QUEUE) : undefined;
  const queue = queueUrl ? parseQueueUrl(queueUrl) : undefined;
  const metrics = await startMetrics({ port: options.metricsPort, file: options.metricsFile, queue }, err);
  if (metrics?.url) out(`metrics on ${metrics.url}`);
  try {
    await runSchedule(new TickRunner(session, options, globals, metrics), entries, options);
  } finally {
    await metrics?.close();
  }
}

async function runSchedule(ticks: TickRunner, entries: ScheduleEntry[], options: ScheduleOptions): Promise<void> {
  if (options.once) {
    const entry = options.entry !== undefined ? entries[0]! : nextDue(entries)!.entry;
    out(`schedule: running '${entry.name}' now (--once)`);
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      ticks.stopRequested = runHasNotSeen(sig);
      boundStop(tickDone, stopSteps(sig));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
    const tickDone = ticks.run({ entry, firedAt: new Date() });
    try {
      const result = await tickDone;
      if (result === 'failed' && !stopping) throw new StageError(`scheduled run '${entry.name}' failed (recorded in pipeline runs)`);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    }
    return;
  }

  const scheduler = new Scheduler(entries, {
    run: async (tick) => void (await ticks.run(tick)),
    skipped: (tick, running) => ticks.skip(tick, running),
  });
  ticks.onStart = (tick, runId) => {
    if (scheduler.current?.entry === tick.entry && scheduler.current.firedAt === tick.firedAt) scheduler.current.runId = runId;
  };
  for (const entry of entries) {
    const tz = entry.timezone ? ` ${entry.timezone}` : '';
    const next = nextFireTimes(entry, 3).map((d) => d.toISOString());
    out(`schedule ${entry.name}: '${entry.cron}'${tz}; next ${next.join(', ') || 'never'}`);
  }
  out(`scheduler started (pid ${process.pid}); SIGTERM or Ctrl-C stops it`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) return; // a second signal is `pipeline run`'s to handle (it exits at once)
      stopping = true;
      ticks.stopRequested = runHasNotSeen(sig);
      const running = scheduler.current;
      err(`received ${sig}: taking no more ticks${running ? `; stopping the running '${running.entry.name}' run` : ''}`);
      const stopped = scheduler.stop();
      boundStop(stopped, stopSteps(sig));
      void stopped.then(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('SIGHUP', onSignal);
        out('scheduler stopped');
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // A closed terminal or SSH session stops the scheduler as SIGTERM does (`pipeline run` does the same).
    process.on('SIGHUP', onSignal);
    scheduler.start();
    ticks.catchUp(scheduler).catch((e: unknown) => err(`catch-up: ${errorText(e)}`));
  });
}

/**
 * Whatever state Redis or the remote is in, the scheduler stops within seconds: a run still stopping
 * after a few seconds gets the second signal (it kills its commands, records itself as interrupted
 * and exits at once); anything else still going a few seconds later is left.
 */
function stopSteps(sig: NodeJS.Signals): StopSteps {
  return {
    escalate: () => {
      err(`still stopping after ${STOP_STEP_MS / 1000}s: stopping the running run at once`);
      process.emit(sig, sig);
    },
    giveUp: () => {
      err('scheduler stopped (gave up waiting for the run, Redis or the remote)');
      process.exit(130);
    },
  };
}

/** The signal, if no `pipeline run` was listening for it (ours is then the only listener). */
function runHasNotSeen(sig: NodeJS.Signals): NodeJS.Signals | undefined {
  return process.listenerCount(sig) > 1 ? undefined : sig;
}

type TickResult = NonNullable<RunTrigger['result']>;

/** Runs one tick as `pipeline run` would (cli/pipeline-run.ts), then records its result and sends its notifications. */
class TickRunner {
  onStart?: (tick: Tick, runId: string) => void;
  /** Set on SIGTERM / SIGINT: a run that was starting when it came is stopped as soon as it can be. */
  stopRequested: NodeJS.Signals | undefined;
  /** Runs already alerted about (skip_alert_after): one alert per run that holds ticks up. */
  private readonly alerted = new Set<string>();

  constructor(
    private readonly session: Session,
    private readonly options: ScheduleOptions,
    private readonly globals: GlobalOptions,
    private readonly metrics?: MetricsExport,
  ) {}

  async run(tick: RunningTick): Promise<TickResult> {
    const { entry } = tick;
    const trigger: RunTrigger = {
      type: 'schedule',
      entry: entry.name,
      firedAt: tick.firedAt.toISOString(),
      ...(tick.catchup ? { catchup: { missed: tick.catchup.missed } } : {}),
    };
    out(
      `tick ${entry.name} at ${trigger.firedAt}: pipeline run${entry.stages.length ? ' ' + entry.stages.join(' ') : ''}${entry.sets.map((s) => ` --set ${s}`).join('')}`,
    );
    let record: RunRecord | undefined;
    let failure: unknown;
    try {
      const onRecord = (r: RunRecord) => {
        if (!record) {
          this.onStart?.(tick, r.id);
          // The signal came before the run listened for it: hand it over now.
          if (this.stopRequested) process.emit(this.stopRequested, this.stopRequested);
        }
        record = r;
      };
      // lockTimeout 0: a run going in another process means this tick is skipped, not queued.
      await runToEnd(
        entry.stages,
        {
          set: entry.sets,
          unset: [],
          jobs: this.options.jobs,
          lockTimeout: 0,
          trigger,
          onRecord,
          executor: this.options.executor,
          queue: this.options.queue,
          queueTimeout: this.options.queueTimeout,
        },
        this.globals,
      );
    } catch (e) {
      failure = e;
    }

    let result: TickResult;
    if (!record && failure instanceof LockError) {
      // Another process holds the store: this tick does not run (and is not a failure).
      await this.skip(tick, undefined, errorText(failure));
      return 'skipped';
    }
    if (!record) {
      // It failed before a run record existed (e.g. pipeline.yaml became invalid): record that too.
      const now = new Date();
      record = {
        id: newRunId(now),
        command: process.argv.slice(2),
        pid: process.pid,
        startedAt: now.toISOString(),
        finishedAt: now.toISOString(),
        durationMs: 0,
        outcome: 'failed',
        stages: [],
        trigger,
        error: errorText(failure),
      };
      result = 'failed';
    } else if (record.outcome === 'interrupted' || record.outcome === 'cancelled') result = record.outcome;
    else if (record.outcome !== 'ok' || failure) result = 'failed';
    else result = record.stages.some((s) => s.outcome === 'ran') ? 'ran' : 'nothing-changed';
    record.trigger = { ...trigger, result };
    if (failure && !record.error && record.stages.every((s) => s.outcome !== 'failed')) record.error = errorText(failure);

    // A stopped run (a signal, or `pipeline cancel`) is someone's decision: nobody is alerted.
    const hooks = result === 'failed' ? entry.onFailure : result === 'interrupted' || result === 'cancelled' ? [] : entry.onSuccess;
    if (hooks.length) {
      const notifications = await notify(hooks, payloadOf(this.session.pipeline.file, entry, record, result, failure), this.session.pipeline.root);
      for (const n of notifications) if (!n.ok) err(`tick ${entry.name}: notification ${n.target} failed: ${n.error}`);
      record.notifications = notifications;
    }
    await this.session.store.runs.write(record);
    await this.measure(entry.name, record);
    const line = `tick ${entry.name}: ${result} (run ${record.id})`;
    if (result === 'failed') err(`${line}: ${failureReason(record, failure)}`);
    else out(line);
    await this.retain();
    return result;
  }

  /** Replays the missed tick of each `catchup:` entry, from the last ticks in the run records. */
  async catchUp(scheduler: Scheduler): Promise<void> {
    if (!this.session.pipeline.schedule?.some((e) => e.catchup)) return;
    const last = lastTicks(await this.session.store.runs.list());
    await scheduler.catchUp(last, (entry, m) =>
      out(
        `catch-up ${entry.name}: ${m.missed} tick${m.missed === 1 ? '' : 's'} missed since ${last.get(entry.name)!.toISOString()}; running the one due at ${m.at.toISOString()} now`,
      ),
    );
  }

  /** `retention:` after each tick; a failure to prune is printed, never fatal to the scheduler. */
  async retain(): Promise<void> {
    const policy = this.session.pipeline.retention;
    if (!policy) return;
    try {
      const report = await retainAfterTick(this.session.store, this.session.pipeline.root, policy, ['pipeline', ...process.argv.slice(2)].join(' '));
      const line = report && describePrune(report);
      if (line) out(`retention: ${line}`);
    } catch (e) {
      err(`retention: ${errorText(e)}`);
    }
  }

  /** Records a tick that did not start because a run was going; alerts if that run is overdue. */
  async skip(tick: Tick, running: RunningTick | undefined, why?: string): Promise<void> {
    const note = why ?? `run ${running?.runId ?? '(starting)'} of '${running?.entry.name}' (fired ${running?.firedAt.toISOString()}) is still going`;
    const now = new Date();
    const record: RunRecord = {
      id: newRunId(now),
      command: process.argv.slice(2),
      pid: process.pid,
      startedAt: now.toISOString(),
      finishedAt: now.toISOString(),
      durationMs: 0,
      outcome: 'skipped',
      stages: [],
      trigger: { type: 'schedule', entry: tick.entry.name, firedAt: tick.firedAt.toISOString(), result: 'skipped', note },
    };
    err(`tick ${tick.entry.name} at ${tick.firedAt.toISOString()}: skipped: ${note}`);
    const notifications = await overrunAlert(this.session, tick, running, record.id, this.alerted, now);
    for (const n of notifications ?? []) if (!n.ok) err(`tick ${tick.entry.name}: notification ${n.target} failed: ${n.error}`);
    if (notifications) record.notifications = notifications;
    await this.session.store.runs.write(record);
    await this.measure(tick.entry.name, record);
  }

  private async measure(entry: string, record: RunRecord): Promise<void> {
    this.metrics?.metrics.tick(entry, record);
    await this.metrics?.flush();
  }
}

/** Why a run failed, as on_failure and the scheduler's line say it: its own error, else its first failed stage's (e.g. `stage train timed out after 30s`). */
function failureReason(record: RunRecord, failure: unknown): string | undefined {
  const stage = record.stages.find((s) => s.outcome === 'failed' && s.error) ?? record.stages.find((s) => s.error);
  return record.error ?? stage?.error ?? (failure ? errorText(failure) : undefined);
}

function payloadOf(pipelineFile: string, entry: ScheduleEntry, record: RunRecord, result: TickResult, failure: unknown) {
  const counts = new Map<string, number>();
  for (const s of record.stages) counts.set(s.outcome, (counts.get(s.outcome) ?? 0) + 1);
  const parts = [...counts].map(([k, n]) => `${n} ${k}`);
  if (record.promotion) parts.push(`promotion: ${record.promotion.decision} (${record.promotion.reason})`);
  const error = failureReason(record, failure);
  return {
    event: result === 'failed' ? ('failure' as const) : ('success' as const),
    pipeline: pipelineFile,
    schedule: entry.name,
    runId: record.id,
    result,
    summary: `${entry.name}: ${result}${parts.length ? `; ${parts.join(', ')}` : ''}${result === 'failed' && error ? `; ${error}` : ''}`,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt ?? new Date().toISOString(),
    stages: record.stages.map((s) => ({ stage: s.stage, outcome: s.outcome, ...(s.error ? { error: s.error } : {}) })),
    ...(record.promotion ? { promotion: record.promotion } : {}),
    ...(error ? { error, ...(result === 'failed' ? { reason: error } : {}) } : {}),
  };
}
