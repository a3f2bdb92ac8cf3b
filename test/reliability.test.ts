// Reliability of the built CLI under hostile but ordinary use (issue 13): kill signals, orphaned
// commands, bit flips in the store, outs that would delete files the tool does not own, odd
// pipeline files, and params that try to become shell code.
import { afterEach, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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

describe('run never deletes or writes files it does not own', () => {
  test('an out under a symlinked parent directory that leaves the pipeline directory is refused', async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'reliability-elsewhere-'));
    dirs.push(elsewhere);
    await writeFile(join(elsewhere, 'victim.txt'), 'precious\n');
    await mkdir(join(elsewhere, 'victims'));
    await writeFile(join(elsewhere, 'victims', 'a.txt'), 'precious too\n');
    const dir = await ws(`
stages:
  file:
    cmd: echo overwritten > sub/victim.txt
    outs: [sub/victim.txt]
  tree:
    cmd: mkdir -p sub/victims && echo overwritten > sub/victims/a.txt
    outs: [sub/victims]
`);
    await symlink(elsewhere, join(dir, 'sub'));
    const r = await runCli(['run', '--keep-going'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stage file: out sub\/victim\.txt resolves to .*outside the pipeline directory/);
    expect(r.stderr).toMatch(/stage tree: out sub\/victims resolves to .*outside the pipeline directory/);
    expect(await readFile(join(elsewhere, 'victim.txt'), 'utf8')).toBe('precious\n');
    expect(await readFile(join(elsewhere, 'victims', 'a.txt'), 'utf8')).toBe('precious too\n');
  });

  const invalid: [string, string, RegExp][] = [
    [
      'its own dep',
      'stages:\n  sort:\n    cmd: sort -n data.txt -o data.txt\n    deps: [data.txt]\n    outs: [data.txt]\n',
      /^error: pipeline\.yaml:5:12: stage 'sort': output 'data\.txt' is also its dep \(pipeline\.yaml:4:12\)/m,
    ],
    [
      'a directory holding its dep',
      'stages:\n  a:\n    cmd: ls data > data/list.txt\n    deps: [data/in.txt]\n    outs: [data]\n',
      /^error: pipeline\.yaml:5:12: stage 'a': output 'data' contains its dep 'data\/in\.txt' \(pipeline\.yaml:4:12\)/m,
    ],
    ['the pipeline file', 'stages:\n  a:\n    cmd: echo hi > pipeline.yaml\n    outs: [pipeline.yaml]\n', /^error: pipeline\.yaml:4:12: stage 'a': output 'pipeline\.yaml' is the pipeline file/m],
    ['.git', 'stages:\n  a:\n    cmd: echo hi > .git/x\n    outs: [.git/x]\n', /^error: pipeline\.yaml:4:12: stage 'a': output '\.git\/x' is inside \.git/m],
  ];
  test.each(invalid)('an out naming %s is a config error (exit 2) and nothing is deleted', async (_what, yaml, message) => {
    const dir = await ws(yaml);
    await writeFile(join(dir, 'data.txt'), '3\n1\n2\n');
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'data', 'in.txt'), 'in\n');
    await mkdir(join(dir, '.git'));
    await writeFile(join(dir, '.git', 'x'), 'git\n');
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(await read(dir, 'data.txt')).toBe('3\n1\n2\n');
    expect(await read(dir, 'data/in.txt')).toBe('in\n');
    expect(await read(dir, '.git/x')).toBe('git\n');
    expect(await read(dir, 'pipeline.yaml')).toBe(yaml);
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
  });
});
