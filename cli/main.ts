#!/usr/bin/env node
// The `pipeline` command: parse arguments, dispatch to one module per command, and report any
// failure through the one error formatter with its exit code (0 ok, 1 failed, 2 usage/config, 3 push
// incomplete, 4 predict skipped images, 130 interrupted: the README's table).
// First: a worker's stage process dies with its worker from the moment it starts.
import './worker-child.js';
import { Command, CommanderError, Option } from 'commander';
import { formatError } from './format-error.js';
import { endQuietlyOnBrokenPipe } from './broken-pipe.js';
import * as dag from './commands/dag.js';
import * as exp from './commands/exp.js';
import * as gc from './commands/gc.js';
import * as metrics from './commands/metrics.js';
import * as predict from './commands/predict.js';
import * as promote from './commands/promote.js';
import * as pull from './commands/pull.js';
import * as push from './commands/push.js';
import * as run from './commands/run.js';
import * as runs from './commands/runs.js';
import * as schedule from './commands/schedule.js';
import * as schema from './commands/schema.js';
import * as show from './commands/show.js';
import * as status from './commands/status.js';
import * as verify from './commands/verify.js';
import * as worker from './commands/worker.js';

function buildProgram(): Command {
  const program = new Command('pipeline')
    .description('Run a content-addressed DAG of stages defined in pipeline.yaml')
    .option('-c, --config <file>', 'pipeline file', 'pipeline.yaml')
    .option('-v, --verbose', 'debug output and stack traces', false)
    .addOption(
      new Option('--backend <name>', 'tfjs backend for train/evaluate stages (overrides their backend param)').choices([
        'auto',
        'tensorflow',
        'native',
        'wasm',
        'cpu',
      ]),
    )
    .showHelpAfterError('(pipeline --help for usage)')
    .exitOverride();
  for (const command of [run, status, dag, show, runs, metrics, exp, predict, schedule, promote, push, pull, worker, gc, verify, schema])
    command.register(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; any other commander error was already printed: usage error.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    const verbose = argv.includes('--verbose') || argv.includes('-v');
    const { text, exitCode } = formatError(err, verbose);
    process.stderr.write(text + '\n');
    process.exitCode = exitCode;
  }
}

endQuietlyOnBrokenPipe();
await main(process.argv);
