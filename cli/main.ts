#!/usr/bin/env node
// The `pipeline` command: parse arguments, load the one command module they name
// (cli/command-table.ts), and report any failure through the one error formatter with its exit code
// (0 ok, 1 failed, 2 usage/config, 3 push incomplete, 4 predict skipped images, 130 interrupted:
// the table in docs/operations.md).
// First: a worker's stage process dies with its worker from the moment it starts.
import './worker-child.js';
import { Command, CommanderError, Help, Option } from 'commander';
import { formatError } from './format-error.js';
import { endQuietlyOnBrokenPipe } from './broken-pipe.js';
import { COMMANDS, type CommandModule } from './command-table.js';
import { MisreadArguments } from '../engine/errors.js';

/** The global options that take a value: the word after them is not the command. */
const VALUE_OPTIONS = new Set(['-c', '--config', '--backend']);

/** The command the arguments name (`pipeline help CMD` names CMD), before commander parses them. */
function commandNamed(args: readonly string[]): string | undefined {
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return undefined;
    if (arg.startsWith('-')) {
      if (VALUE_OPTIONS.has(arg)) i++;
      continue;
    }
    if (arg === 'help' && !help) {
      help = true;
      continue;
    }
    return arg;
  }
  return undefined;
}

/**
 * The program with the named command's module loaded (all of them with `all`); the others stand in
 * as their help line only. A stand-in that gets run means the arguments were not read as commander
 * reads them: then everything is loaded and the arguments parsed again.
 */
async function buildProgram(argv: readonly string[], all = false): Promise<Command> {
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
  const named = commandNamed(argv.slice(2));
  const load = new Set(COMMANDS.filter((c) => all || c.name === named).map((c) => c.load));
  const modules = new Map(await Promise.all([...load].map(async (l) => [l, await l()] as const)));
  const terms = new Map<Command, string>();
  const registered = new Set<CommandModule>();
  for (const entry of COMMANDS) {
    const module = modules.get(entry.load);
    if (module) {
      if (!registered.has(module)) module.register(program);
      registered.add(module);
      continue;
    }
    if (program.commands.some((c) => c.name() === entry.name)) continue;
    const standIn = program
      .command(entry.name)
      .description(entry.summary)
      .helpOption(false)
      .allowUnknownOption()
      .allowExcessArguments()
      .action(async () => {
        throw new MisreadArguments();
      });
    terms.set(standIn, entry.term);
  }
  const help = new Help();
  program.configureHelp({ subcommandTerm: (cmd) => terms.get(cmd) ?? help.subcommandTerm(cmd) });
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    try {
      await (await buildProgram(argv)).parseAsync(argv);
    } catch (err) {
      if (!(err instanceof MisreadArguments)) throw err;
      await (await buildProgram(argv, true)).parseAsync(argv);
    }
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
