// Validation through the real CLI: each kind of config error is reported as file:line:col: what,
// with exit code 2, by `pipeline dag` and `pipeline run` alike, and nothing is run or written.
import { describe, test, expect, afterAll } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace } from './helpers/cli.js';

const yaml = (lines: string[]) => lines.join('\n') + '\n';
const made: string[] = [];

afterAll(async () => {
  await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function ws(text: string): Promise<string> {
  const dir = await workspace(text, 'validate-');
  made.push(dir);
  return dir;
}

/** Runs the command and checks the config-error contract; returns the error lines. */
async function configErrors(dir: string, args: string[]): Promise<string[]> {
  const before = await readdir(dir);
  const result = await runCli(args, { cwd: dir });
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 2, stdout: '' });
  // Nothing written: no store, no new files (and, for `run`, no command ran: they would write).
  expect(existsSync(join(dir, 'artifacts'))).toBe(false);
  expect(await readdir(dir)).toEqual(before);
  expect(result.stderr.startsWith('error: ')).toBe(true);
  return result.stderr.slice('error: '.length).trimEnd().split('\n');
}

/** The same errors from `dag` and from `run` (whose stages would write marker files if they ran). */
async function expectErrors(text: string, expected: string[], extraArgs: string[] = []): Promise<void> {
  const dir = await ws(text);
  expect(await configErrors(dir, ['dag', ...extraArgs])).toEqual(expected);
  expect(await configErrors(dir, ['run', ...extraArgs])).toEqual(expected);
}

describe('config errors: exit 2, file:line:col, nothing written', () => {
  test('YAML syntax error', async () => {
    await expectErrors(yaml(['stages:', '  a:', '    cmd: touch ran', '   outs: [x]']), [
      'pipeline.yaml:4:1: YAML: All mapping items must start at the same column',
    ]);
  });

  test('unknown keys at the top, in a stage and in params, with hints', async () => {
    await expectErrors(
      yaml([
        'stages:', //                        1
        '  prep:', //                        2
        '    cmd: touch ran', //             3
        '    out: [x]', //                   4
        '  split:', //                       5
        '    uses: normalize', //            6
        '    needs: [prep]', //              7
        '    with:', //                      8
        '      validation_splt: 0.1', //     9
        'parms: {}', //                      10
      ]),
      [
        "pipeline.yaml:4:5: stage 'prep': unknown key 'out' (did you mean 'outs'?) (allowed: cmd, deps, outs, needs, desc, timeout, retries)",
        "pipeline.yaml:9:7: stage 'split': unknown param 'validation_splt' for kind normalize (did you mean 'validation_split'?)",
        "pipeline.yaml:10:1: unknown top-level key 'parms' (did you mean 'params'?) (allowed: params, stages, schedule, promote, retention, remote, workspace)",
      ],
    );
  });

  test('both uses: and cmd:, and neither', async () => {
    await expectErrors(yaml(['stages:', '  a:', '    uses: decode', '    cmd: touch ran', '  b:', '    desc: nothing']), [
      "pipeline.yaml:2:3: stage 'a' has both uses: and cmd: (a stage runs either a kind or a shell command)",
      "pipeline.yaml:5:3: stage 'b' needs uses: <kind> or cmd: <shell command>",
    ]);
  });

  test('unknown kind, listing the known ones', async () => {
    const { builtinKinds } = await import('../stages/index.js');
    const known = [...builtinKinds.keys()].join(', ');
    await expectErrors(yaml(['stages:', '  a:', '    cmd: touch ran', '  b:', '    uses: decod']), [
      `pipeline.yaml:5:11: stage 'b': unknown kind 'decod' (did you mean 'decode'?) (known kinds: ${known})`,
    ]);
  });

  test('missing params: at the with: key, or at the stage when there is no with:', async () => {
    await expectErrors(yaml(['stages:', '  a:', '    uses: fetch', '  b:', '    uses: fetch', '    with:', '      md5: c32a1d4ab5d03f1284b67883e8d87530']), [
      "pipeline.yaml:2:3: stage 'a': missing param 'url' (expected string)",
      "pipeline.yaml:6:5: stage 'b': missing param 'url' (expected string)",
    ]);
  });

  test('params of the wrong type, also through ${params.x} and --set', async () => {
    await expectErrors(
      yaml([
        'params:', //                             1
        '  split: lots', //                       2
        'stages:', //                             3
        '  a:', //                                4
        '    uses: normalize', //                 5
        '    with:', //                           6
        '      validation_split: ${params.split}', // 7
        '      seed: 1', //                       8
      ]),
      [
        'pipeline.yaml:7:25: stage \'a\': with.validation_split: expected number, got string "lots"',
        "pipeline.yaml:8:13: stage 'a': with.seed: expected integer, got number 1.5 (overridden by --set a.seed=1.5)",
      ],
      ['--set', 'a.seed=1.5'],
    );
  });

  test('unknown needs and params naming unknown stages', async () => {
    await expectErrors(
      yaml([
        'stages:', //                       1
        '  train:', //                      2
        '    cmd: touch ran', //            3
        '  check:', //                      4
        '    cmd: touch ran2', //           5
        '    needs: [trian]', //            6
        '  evaluate:', //                   7
        '    uses: evaluate', //            8
        '    with:', //                     9
        '      model: trainn', //           10
      ]),
      [
        "pipeline.yaml:6:13: stage 'check': needs unknown stage 'trian' (did you mean 'train'?)",
        "pipeline.yaml:10:14: stage 'evaluate': names unknown stage 'trainn' (with: model) (did you mean 'train'?)",
      ],
    );
  });

  test('a cycle, printed, at its first stage', async () => {
    await expectErrors(
      yaml([
        'stages:',
        '  prep:',
        '    cmd: touch ran',
        '  train:',
        '    cmd: touch model',
        '    needs: [prep, evaluate]',
        '  evaluate:',
        '    cmd: touch metrics',
        '    needs: [train]',
      ]),
      ['pipeline.yaml:4:3: cycle: train -> evaluate -> train'],
    );
  });

  test('an output claimed by two stages, and nested outputs', async () => {
    await expectErrors(
      yaml([
        'stages:', //                          1
        '  a:', //                             2
        '    cmd: mkdir -p data && touch data/a', // 3
        '    outs: [data]', //                 4
        '  b:', //                             5
        '    cmd: touch data', //              6
        '    outs: [data]', //                 7
        '  c:', //                             8
        '    cmd: mkdir -p data/x', //         9
        '    outs: [data/x]', //               10
      ]),
      [
        "pipeline.yaml:7:12: stage 'b': output 'data' is also an output of stage 'a' (pipeline.yaml:4:12)",
        "pipeline.yaml:10:12: stage 'c': output 'data/x' is inside output 'data' of stage 'a' (pipeline.yaml:4:12)",
      ],
    );
  });

  test('an empty stages map', async () => {
    await expectErrors(yaml(['params:', '  seed: 1', 'stages: {}']), ['pipeline.yaml:3:1: stages: is empty (define at least one stage)']);
  });

  test('an unknown ${params.x} reference', async () => {
    await expectErrors(yaml(['params:', '  seed: 1', 'stages:', '  a:', '    cmd: touch ran-${params.sede}']), [
      "pipeline.yaml:5:10: stage 'a': unknown reference ${params.sede}: 'sede' is not in params (did you mean 'seed'?)",
    ]);
  });

  test('an unknown stage in --set (and a malformed --set)', async () => {
    const text = yaml(['stages:', '  split:', '    uses: normalize']);
    await expectErrors(
      text,
      ["--set splt.seed=3: unknown stage 'splt' (did you mean 'split'?) (stages: split; params.NAME sets a top-level param)"],
      ['--set', 'splt.seed=3'],
    );
    await expectErrors(text, ['--set seed: expected STAGE.PARAM=VALUE or params.NAME=VALUE'], ['--set', 'seed']);
  });

  test('a missing pipeline file, and --config naming another', async () => {
    const dir = await ws(yaml(['stages:', '  a:', '    cmd: touch ran']));
    await mkdir(join(dir, 'conf'));
    await writeFile(join(dir, 'conf', 'p.yaml'), yaml(['stages:', '  a:', '    cmd: touch ran', '    needs: [b]']));
    expect(await configErrors(dir, ['dag', '--config', 'missing.yaml'])).toEqual(['cannot read missing.yaml: no such file (--config FILE names another)']);
    expect(await configErrors(dir, ['--config', 'conf/p.yaml', 'run'])).toEqual(["conf/p.yaml:4:13: stage 'a': needs unknown stage 'b'"]);
  });
});

describe('pipeline dag', () => {
  const text = yaml([
    'params:',
    '  seed: 3',
    'stages:',
    '  prep:',
    '    cmd: mkdir -p data && echo ${params.seed} > data/raw.txt',
    '    outs: [data]',
    '  split:',
    '    uses: normalize',
    '    needs: [prep]',
    '    with: {seed: "${params.seed}"}',
    '  stats:',
    '    cmd: wc data/raw.txt > stats.txt',
    '    deps: [data/raw.txt]',
    '    outs: [stats.txt]',
    '  report-all:',
    '    cmd: cat stats.txt',
    '    deps: [stats.txt]',
    '    needs: [split]',
  ]);

  test('text: stages in run order with their kind and needs', async () => {
    const dir = await ws(text);
    const result = await runCli(['dag'], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      ['prep        (cmd)', 'split       (normalize)  <- prep', 'stats       (cmd)        <- prep', 'report-all  (cmd)        <- split, stats', ''].join('\n'),
    );
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
  });

  test('named stages print only what they need', async () => {
    const dir = await ws(text);
    const result = await runCli(['dag', 'stats'], { cwd: dir });
    expect(result.stdout).toBe('prep   (cmd)\nstats  (cmd)  <- prep\n');
    const unknown = await runCli(['dag', 'stat'], { cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("error: unknown stage 'stat' (did you mean 'stats'?) (stages: prep, split, stats, report-all)\n");
  });

  test('mermaid and dot', async () => {
    const dir = await ws(text);
    const mermaid = await runCli(['dag', '--format', 'mermaid'], { cwd: dir });
    expect(mermaid.stdout).toBe(
      [
        'graph TD',
        '  prep["prep<br/><small>cmd</small>"]',
        '  split["split<br/><small>normalize</small>"]',
        '  stats["stats<br/><small>cmd</small>"]',
        '  stage1["report-all<br/><small>cmd</small>"]',
        '  prep --> split',
        '  prep --> stats',
        '  split --> stage1',
        '  stats --> stage1',
        '',
      ].join('\n'),
    );
    const dot = await runCli(['dag', '--format', 'dot'], { cwd: dir });
    expect(dot.stdout).toBe(
      [
        'digraph pipeline {',
        '  rankdir=TB;',
        '  node [shape=box];',
        '  "prep" [label="prep\\n(cmd)"];',
        '  "split" [label="split\\n(normalize)"];',
        '  "stats" [label="stats\\n(cmd)"];',
        '  "report-all" [label="report-all\\n(cmd)"];',
        '  "prep" -> "split";',
        '  "prep" -> "stats";',
        '  "split" -> "report-all";',
        '  "stats" -> "report-all";',
        '}',
        '',
      ].join('\n'),
    );
    const bad = await runCli(['dag', '--format', 'svg'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/argument 'svg' is invalid. Allowed choices are text, mermaid, dot/);
  });

  test('--set can change the graph', async () => {
    const dir = await ws(yaml(['stages:', '  a: {uses: train}', '  b: {uses: train}', '  c:', '    uses: evaluate', '    with: {model: a}']));
    expect((await runCli(['dag', 'c'], { cwd: dir })).stdout).toBe('a  (train)\nc  (evaluate)  <- a\n');
    expect((await runCli(['dag', 'c', '--set', 'c.model=b'], { cwd: dir })).stdout).toBe('b  (train)\nc  (evaluate)  <- b\n');
    // --unset removes a param (as --set c.model= does); a --set of the same param wins over it.
    expect((await runCli(['dag', 'c', '--unset', 'c.model'], { cwd: dir })).stdout).toBe('c  (evaluate)\n');
    expect((await runCli(['dag', 'c', '--set', 'c.model=b', '--unset', 'c.model'], { cwd: dir })).stdout).toBe('b  (train)\nc  (evaluate)  <- b\n');
    expect(await configErrors(dir, ['dag', '--unset', 'c.modle'])).toEqual([
      "--set c.modle=: nothing to remove: c.with.modle is not set (did you mean 'model'?)",
    ]);
    const bad = await runCli(['dag', '--unset', 'c.model=b'], { cwd: dir });
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('expected STAGE.PARAM or params.NAME, without a value') });
  });
});
