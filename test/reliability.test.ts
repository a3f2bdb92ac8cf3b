// Reliability of the built CLI under hostile but ordinary use (issue 13): kill signals, orphaned
// commands, bit flips in the store, outs that would delete files the tool does not own, odd
// pipeline files, and params that try to become shell code.
import { afterEach, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace, type CliResult } from './helpers/cli.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function ws(yaml: string): Promise<string> {
  const dir = await workspace(yaml, 'reliability-');
  dirs.push(dir);
  return dir;
}

/** Runs the CLI and expects success (on failure the assertion shows stdout and stderr). */
async function ok(args: string[], cwd: string): Promise<CliResult> {
  const r = await runCli(args, { cwd });
  expect(r).toMatchObject({ code: 0 });
  return r;
}

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');

describe('params given on the command line never run as shell code', () => {
  const yaml = `
params:
  x: hello world
stages:
  plain:
    cmd: echo \${params.x} > plain.txt
    outs: [plain.txt]
  quoted:
    cmd: echo "x=\${params.x}" > quoted.txt
    outs: [quoted.txt]
`;

  test('--set values with $(...), backticks and ; are passed as text', async () => {
    const dir = await ws(yaml);
    for (const value of ['$(touch pwned1)', '`touch pwned2`', 'a; touch pwned3', "it's; touch pwned4; '", 'a"; touch pwned5; "']) {
      const r = await ok(['run', '--set', `params.x=${value}`], dir);
      expect(r.stdout).toMatch(/ran\s+plain/);
      expect((await read(dir, 'quoted.txt')).trimEnd()).toBe(`x=${value}`);
    }
    for (const n of [1, 2, 3, 4, 5]) expect(existsSync(join(dir, `pwned${n}`))).toBe(false);
    // Unquoted, a value is split into words like any shell variable (never parsed as code).
    await ok(['run', '--set', 'params.x=a; touch pwned3'], dir);
    expect(await read(dir, 'plain.txt')).toBe('a; touch pwned3\n');
  });

  test('values from pipeline.yaml work as before, and a changed value reruns the stage', async () => {
    const dir = await ws(yaml);
    await ok(['run'], dir);
    expect(await read(dir, 'plain.txt')).toBe('hello world\n');
    expect(await read(dir, 'quoted.txt')).toBe('x=hello world\n');
    const again = await ok(['run'], dir);
    expect(again.stdout).toMatch(/cached\s+plain/);
    const changed = await ok(['run', '--set', 'params.x=other'], dir);
    expect(changed.stdout).toMatch(/ran\s+plain/);
    expect(await read(dir, 'plain.txt')).toBe('other\n');
  });
});
