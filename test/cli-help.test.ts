// `pipeline --help` is drawn from the command table (cli/command-table.ts) without loading the
// command modules: each entry must say what its module defines, and every command must have one.
import { expect, test } from '@jest/globals';
import { Command, Help } from 'commander';
import { COMMANDS } from '../cli/command-table.js';

test("the table's help line of each command is the one its module defines", async () => {
  const help = new Help();
  for (const entry of COMMANDS) {
    const program = new Command('pipeline');
    (await entry.load()).register(program);
    const command = program.commands.find((c) => c.name() === entry.name);
    expect(command && { name: entry.name, term: help.subcommandTerm(command), summary: command.description() }).toEqual({
      name: entry.name,
      term: entry.term,
      summary: entry.summary,
    });
  }
});

test('every command a module registers is in the table', async () => {
  const program = new Command('pipeline');
  for (const load of new Set(COMMANDS.map((c) => c.load))) (await load()).register(program);
  expect(program.commands.map((c) => c.name()).sort()).toEqual(COMMANDS.map((c) => c.name).sort());
});
