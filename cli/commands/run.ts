// `pipeline run [STAGE...]`: run the DAG (or the named stages and what they need), skipping stages
// whose cache key has a committed result. One line per stage: cached / ran / failed and the time.
import { Option, type Command } from 'commander';
import { availableParallelism } from 'node:os';
import type { GlobalOptions } from '../global-options.js';
import { printLine } from '../output.js';
import { collect, collectUnset, errorText, nameWidth, nonNegativeNumber, positiveInt, stageLine, UNSET_HELP } from '../stage-lines.js';
import type { Session } from '../../engine/session.js';
import type { RemoteConfig } from '../../engine/config/remote.js';
import type { RunOptions } from '../pipeline-run.js';
import { collectAxis, describeAssignments } from '../sweep.js';
import { QUEUE_HELP, queueTimeoutOption } from '../queue-run.js';
import { prepareRun, runInTerminal } from '../pipeline-run.js';
import { gatherFacts, resolvePlan } from '../../engine/plan/facts.js';
import { describeReasons } from '../../engine/plan/reasons.js';
import { openRemote } from '../../engine/remote/open.js';
import { fetchManifest } from '../../engine/remote/transfer.js';

export type { RunOptions };

/** Stages in flight on the queue at once unless --jobs says otherwise. */
const QUEUE_DEFAULT_JOBS = 64;

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
  const prepared = await prepareRun(targets, options, globals);
  if (!options.dryRun) return runInTerminal(prepared, options, globals);
  for (const { session, experiment } of prepared.runs) {
    if (experiment) out(`${experiment.label}: ${describeAssignments(experiment.assignments)}`);
    await dryRun(session, prepared.selection, prepared.force, prepared.remote);
  }
}

async function dryRun(session: Session, selection: string[], force: ReadonlySet<string>, remoteConfig?: RemoteConfig): Promise<void> {
  const env = session.env(new AbortController().signal);
  const facts = await gatherFacts(env, selection);
  let plan = await resolvePlan(env, facts, selection, { force });
  // As a real run would: a stage missing here but on the remote would be pulled, not computed, and
  // its outputs then key the stages after it (so the remote is asked again, a level further).
  const pulled = new Set<string>();
  if (remoteConfig) {
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
