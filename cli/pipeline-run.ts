// A real `pipeline run` in a terminal, as the `run` command and each tick of `pipeline schedule` do
// it: the sessions and selection the flags ask for, the signals that stop the run, and the lines it
// prints. The run itself (lock, remote, queue, execute, records, push, promotion) is the engine's
// runPipeline (engine/runner/run-pipeline.ts); this module only turns flags into its options and
// its events into lines.
import { relative, resolve } from 'node:path';
import type { GlobalOptions } from './global-options.js';
import { formatDuration, printLine, stageLogger, stageProgress } from './output.js';
import { describePromotion } from './promotion.js';
import { queueTargetOf, type QueueRunOptions } from './queue-run.js';
import { runResultLines } from './run-results.js';
import { openSession } from './session.js';
import { errorText, nameWidth, overrideArgs, stageLine } from './stage-lines.js';
import { describeAssignments, experimentsOf, sweepTable, type Experiment, type MatrixAxis } from './sweep.js';
import * as workerChild from './worker-child.js';
import { chosenRemote } from './remote.js';
import { selectStages } from '../engine/config/graph.js';
import type { RemoteConfig } from '../engine/config/remote.js';
import { AbortedError, UsageError } from '../engine/errors.js';
import { queueSecretFrom } from '../engine/queue/jobs.js';
import type { QueueTarget } from '../engine/queue/target.js';
import { signalRunningCommands } from '../engine/run/cmd-stage.js';
import type { StageReport } from '../engine/run/execute.js';
import type { RunEvents } from '../engine/runner/events.js';
import { recordInterruptedSync } from '../engine/runner/records.js';
import { runPipeline, type ExperimentRun, type PipelineRun } from '../engine/runner/run-pipeline.js';
import type { QueueRunSpec } from '../engine/runner/queue.js';
import type { Session } from '../engine/session.js';
import { describeBreak, describeHolder, removeOwnLockSync } from '../engine/store/lock.js';
import type { RunRecord, RunTrigger } from '../engine/store/runs.js';

export interface RunOptions extends QueueRunOptions {
  force?: boolean;
  dryRun?: boolean;
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
  /** `--matrix`: a sweep over the cross product of these axes. */
  matrix?: MatrixAxis[];
  /** Set by `pipeline worker` for the child it runs a job in: the key the coordinator computed. */
  workerJob?: string;
}

/** What a run's flags resolve to, before anything is written: every experiment validated. */
export interface PreparedRun {
  runs: (ExperimentRun & { experiment?: Experiment })[];
  selection: string[];
  force: ReadonlySet<string>;
  remote?: RemoteConfig;
  queue?: QueueTarget;
}

// Through printLine: a stage's progress bar may be on screen (stages run side by side).
const out = (line: string) => printLine(process.stdout, line);
const err = (line: string) => printLine(process.stderr, line);

export async function prepareRun(targets: string[], options: RunOptions, globals: GlobalOptions): Promise<PreparedRun> {
  // One session per experiment of a sweep (each validated before anything is written), sharing a store.
  const experiments: (Experiment | undefined)[] = options.matrix?.length ? experimentsOf(options.matrix) : [undefined];
  const sessions: Session[] = [];
  for (const experiment of experiments) {
    const sets = [...overrideArgs(options), ...(experiment?.sets ?? [])];
    sessions.push(await openSession(globals.config, { sets, backend: globals.backend, reuse: sessions[0] }));
  }
  const selection = selectStages(sessions[0]!.pipeline, targets);
  const remote = chosenRemote(sessions[0]!.pipeline, options.remote);
  if (options.push && !remote) throw new UsageError('--push needs a remote (remote: in pipeline.yaml, or --remote URL)');
  const queue = await queueTargetOf(options, remote !== undefined);
  if (options.workerJob !== undefined && (targets.length !== 1 || !remote || experiments.length > 1))
    throw new UsageError('--worker-job runs one named stage with a remote');
  const force = new Set(options.force ? (targets.length ? targets : selection) : []);
  return { runs: sessions.map((session, i) => ({ session, experiment: experiments[i] })), selection, force, remote, queue };
}

/** A real `pipeline run` from its flags to its end (what each tick of `pipeline schedule` runs). */
export async function runToEnd(targets: string[], options: RunOptions, globals: GlobalOptions): Promise<void> {
  return runInTerminal(await prepareRun(targets, options, globals), options, globals);
}

/** Runs the prepared run to its end; Ctrl-C / SIGTERM / SIGHUP stop it. Throws what it failed with. */
export async function runInTerminal(prepared: PreparedRun, options: RunOptions, globals: GlobalOptions): Promise<void> {
  const { store } = prepared.runs[0]!.session;
  const stop = new AbortController();
  const records = new Map<string, RunRecord>();
  // Ctrl-C / SIGTERM / SIGHUP (a closed terminal or SSH session): abort running stages (they are
  // killed, nothing partial is committed), then release the lock and exit 130. A second signal
  // exits at once, recording the run as interrupted.
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      signalRunningCommands('SIGKILL');
      const startedAt = Math.min(...[...records.values()].map((r) => Date.parse(r.startedAt)));
      recordInterruptedSync(store, [...records.values()], startedAt);
      removeOwnLockSync(store.dir);
      process.exit(130);
    }
    signalled = true;
    err(`${sig === 'SIGINT' ? 'interrupted' : `received ${sig}`}: stopping running stages (again to exit at once)`);
    stop.abort(new AbortedError());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // A worker's child stops when its worker dies (cli/worker-child.ts), as if interrupted.
  const endOrphanable = workerChild.whileOrphanable(() => onSignal('SIGTERM'));
  try {
    const onRecord = (record: RunRecord) => {
      records.set(record.id, record);
      options.onRecord?.(record);
    };
    const run = await runPipeline({
      runs: prepared.runs,
      selection: prepared.selection,
      force: prepared.force,
      jobs: options.jobs,
      keepGoing: options.keepGoing ?? false,
      lockTimeoutSeconds: options.lockTimeout,
      signal: stop.signal,
      command: process.argv.slice(2),
      trigger: options.trigger,
      ...overridesOf(options, globals),
      remote: prepared.remote,
      push: options.push,
      queue: prepared.queue ? queueSpec(prepared, options, globals) : undefined,
      workerJob:
        options.workerJob !== undefined ? { key: options.workerJob, producer: workerChild.workerName(), report: workerChild.reportToWorker } : undefined,
      events: terminalEvents(prepared, options, globals, onRecord),
      finished: (r) => printRunEnd(prepared, r),
    });
    if (run.failure) throw run.failure;
  } finally {
    endOrphanable();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}

/** The record's `overrides`: the command line's changes to pipeline.yaml, when it made any. */
function overridesOf(options: RunOptions, globals: GlobalOptions): { overrides?: RunRecord['overrides'] } {
  if (!options.set.length && !options.unset.length && globals.backend === undefined) return {};
  return { overrides: { set: options.set, unset: options.unset, ...(globals.backend !== undefined ? { backend: globals.backend } : {}) } };
}

/** What every queue job of the run carries: the pipeline file and overrides a worker runs its stage with. */
function queueSpec(prepared: PreparedRun, options: RunOptions, globals: GlobalOptions): QueueRunSpec {
  const { pipeline } = prepared.runs[0]!.session;
  return {
    target: prepared.queue!,
    secret: queueSecretFrom(process.env, '--executor queue'),
    timeoutMs: options.queueTimeout,
    job: {
      config: relative(pipeline.root, resolve(globals.config)),
      sets: options.set,
      unset: options.unset,
      ...(globals.backend ? { backend: globals.backend } : {}),
    },
  };
}

/** The run's events as terminal lines: stage lines on stdout, notes and warnings on stderr. */
function terminalEvents(prepared: PreparedRun, options: RunOptions, globals: GlobalOptions, onRecord: (r: RunRecord) => void): RunEvents {
  const sweep = prepared.runs.length > 1;
  const labelWidth = sweep ? Math.max(...prepared.runs.map((r) => r.experiment!.label.length)) + 1 : 0;
  const width = nameWidth(prepared.selection) + labelWidth;
  const waitNote = ` (up to ${options.lockTimeout}s, --lock-timeout)`;
  return {
    stage: { logger: (s) => stageLogger(s, globals.verbose), progress: (s) => stageProgress(s) },
    lockWaiting: (h) => process.stderr.write(`waiting for the store lock, held by ${describeHolder(h)}${waitNote}\n`),
    lockBroken: (h) => process.stderr.write(`${describeBreak(h)}\n`),
    leftoverStopped: (g) =>
      err(`stopped the command of stage ${g.stage} (process group ${g.pgid}) left running by pid ${g.ownerPid}, which is no longer running`),
    record: onRecord,
    sweepStarting: (experiments) => {
      for (const e of experiments) out(`${e.label}: ${describeAssignments(e.assignments)}`);
    },
    stageQueued: (stage, url) => {
      if (globals.verbose) err(`${stage}: queued on ${url}`);
    },
    stageDone: (r, experiment) => printReport(experiment ? { ...r, stage: `${experiment.label} ${r.stage}` } : r, width, globals.verbose),
    hashed: (files) => {
      if (globals.verbose) err(`stat cache: ${files} file${files === 1 ? '' : 's'} hashed in this run (unchanged files are not rehashed)`);
    },
    pushed: (p) => out(`pushed ${p.pushed} of ${p.of} computed result${p.of === 1 ? '' : 's'} to ${p.remote}`),
    promotion: (d) => (d.decision === 'error' ? process.stderr : process.stdout).write(describePromotion(d) + '\n'),
    warning: (line) => err(`warning: ${line}`),
    notice: (line) => err(line),
  };
}

/** The summary line, then the sweep's table or the evaluate stages' headline metrics. */
async function printRunEnd(prepared: PreparedRun, run: PipelineRun): Promise<void> {
  const sweep = prepared.runs.length > 1;
  const { pipeline, store } = prepared.runs[0]!.session;
  const summary = (['ran', 'cached', 'failed', 'aborted', 'skipped'] as const)
    .filter((k) => run.counts[k] > 0)
    .map((k) => `${run.counts[k]} ${k}`)
    .join(', ');
  out(`${summary || 'nothing to do'} in ${formatDuration(Date.now() - run.startedAt)}${sweep ? ` (${prepared.runs.length} experiments)` : ''}`);
  const lines = sweep
    ? await sweepTable(
        run.results.map((r) => ({ experiment: r.experiment!, pipeline: r.session.pipeline, reports: r.reports, runId: r.record.id })),
        store,
      )
    : await runResultLines(pipeline, store, run.reports);
  for (const line of lines) out(line);
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
