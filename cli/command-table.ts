// Every command of `pipeline`, as its help lists it, with the module that defines and runs it. The
// one lazy boundary of the CLI: cli/main.ts loads only the module of the command being run (a
// command module imports what it runs statically), so `pipeline --help` and a quick command load
// nothing they do not use.
import type { Command } from 'commander';

/** A command module: registers its command(s) and flags on the program; everything it runs it imports statically. */
export interface CommandModule {
  register(program: Command): void;
}

/** A command as `pipeline --help` lists it, and its module: loaded (once) only when the command runs or its own help is asked. */
export interface CommandEntry {
  name: string;
  /** How `pipeline --help` shows it: name, [options] and arguments, as the module declares them. */
  term: string;
  summary: string;
  load(): Promise<CommandModule>;
}

/** promote.js registers promote and rollback: one loader for both. */
const loadPromote = () => import('./commands/promote.js');

/** Every command, in the order `pipeline --help` lists them (test/cli-help.test.ts checks them against the modules). */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'run',
    term: 'run [options] [stages...]',
    summary: 'run the pipeline, or the named stages and what they need; stages with a cached result are skipped',
    load: () => import('./commands/run.js'),
  },
  {
    name: 'status',
    term: 'status [options] [stages...]',
    summary: 'show which stages are up to date and why the others are stale (runs nothing)',
    load: () => import('./commands/status.js'),
  },
  {
    name: 'dag',
    term: 'dag [options] [stages...]',
    summary: 'validate pipeline.yaml and print its stages in run order with what each needs',
    load: () => import('./commands/dag.js'),
  },
  {
    name: 'show',
    term: 'show [options] <stage>',
    summary: "show a stage's latest result: key, params, inputs, outputs (digests, sizes, paths), run time",
    load: () => import('./commands/show.js'),
  },
  {
    name: 'runs',
    term: 'runs [options]',
    summary: 'list past runs, newest first: id, start, duration, outcome of each stage',
    load: () => import('./commands/runs.js'),
  },
  {
    name: 'logs',
    term: 'logs [options] [run] [stage]',
    summary: "print a stage's output kept from a run (default: the latest run that has it), each attempt in order",
    load: () => import('./commands/logs.js'),
  },
  {
    name: 'cancel',
    term: 'cancel [options] [run]',
    summary: "stop a running run (default: the newest running one) and record it as cancelled; a queue run's jobs are removed or stopped",
    load: () => import('./commands/cancel.js'),
  },
  {
    name: 'metrics',
    term: 'metrics [options] [run]',
    summary: "every evaluate stage's metrics for the latest run, or two runs side by side with their param changes (--diff)",
    load: () => import('./commands/metrics.js'),
  },
  { name: 'exp', term: 'exp', summary: 'experiments: runs and sweep experiments compared (exp show)', load: () => import('./commands/exp.js') },
  {
    name: 'predict',
    term: 'predict [options] <paths...>',
    summary: 'classify images with a trained model: top-k classes and probabilities as CSV or JSON lines',
    load: () => import('./commands/predict.js'),
  },
  {
    name: 'ui',
    term: 'ui [options]',
    summary: 'serve a local web app over the store: runs (live), the DAG, logs, experiments, reports, models, schedule',
    load: () => import('./commands/ui.js'),
  },
  {
    name: 'schedule',
    term: 'schedule [options]',
    summary: 'run the schedule: entries of pipeline.yaml (long-running; --once runs the next due entry now and exits)',
    load: () => import('./commands/schedule.js'),
  },
  { name: 'promote', term: 'promote [options] [run]', summary: "make a run's model the current one (models/current), whatever its metric", load: loadPromote },
  { name: 'rollback', term: 'rollback [options]', summary: 'make the model that was current before the current one current again', load: loadPromote },
  {
    name: 'push',
    term: 'push [options] [stages...]',
    summary: 'upload the current results of the pipeline, or of the named stages and what they need, to the remote cache',
    load: () => import('./commands/push.js'),
  },
  {
    name: 'pull',
    term: 'pull [options] [stages...]',
    summary: 'download from the remote cache the results of the pipeline, or of the named stages and what they need, that the store lacks',
    load: () => import('./commands/pull.js'),
  },
  {
    name: 'worker',
    term: 'worker [options]',
    summary: 'compute stages queued by `pipeline run --executor queue` (in this checkout and its store) until stopped',
    load: () => import('./commands/worker.js'),
  },
  {
    name: 'gc',
    term: 'gc [options]',
    summary: 'delete stored outputs not referenced by the current pipeline or the last N runs',
    load: () => import('./commands/gc.js'),
  },
  {
    name: 'verify',
    term: 'verify [options]',
    summary: 'rehash every stored object and report corrupt or missing ones (exit 1 if any)',
    load: () => import('./commands/verify.js'),
  },
  {
    name: 'schema',
    term: 'schema [options]',
    summary: 'print the JSON Schema of pipeline.yaml (for editor completion and checks)',
    load: () => import('./commands/schema.js'),
  },
];
