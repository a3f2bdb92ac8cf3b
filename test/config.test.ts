// Config loading: substitution, --set, defaults, implied needs, and every validation error with its
// exact location — in process, with small fake kinds (the CLI tests cover the same through `pipeline dag`).
import { describe, test, expect } from '@jest/globals';
import { z } from 'zod';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline } from '../engine/config/load.js';
import { parsePipeline } from '../engine/config/parse.js';
import { parseSet } from '../engine/config/overrides.js';
import { UNSET } from '../engine/config/overrides.js';
import { ConfigErrors, UsageError } from '../engine/errors.js';
import { interpolate, interpolateString, lookupParam, type InterpolationError } from '../engine/config/interpolate.js';
import type { Pipeline } from '../engine/config/pipeline.js';
import { findUnknownKeys } from '../engine/config/unknown-keys.js';
import { fakeKinds } from './helpers/fake-kinds.js';

const parse = (text: string, sets: string[] = []): Pipeline =>
  parsePipeline(text, { file: '/ws/pipeline.yaml', shownAs: 'pipeline.yaml', kinds: fakeKinds, sets });

/** The error lines a pipeline produces (fails the test if it loads). */
function errorsOf(text: string, sets: string[] = []): string[] {
  try {
    parse(text, sets);
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors.map((e) => e.message);
    throw err;
  }
  throw new Error('expected the pipeline to be rejected');
}

const yaml = (lines: string[]) => lines.join('\n') + '\n';

const WORKFLOW = yaml([
  'params:', //                                        1
  '  seed: 7', //                                      2
  '  lr: 0.5', //                                      3
  '  data:', //                                        4
  '    dir: data/raw', //                              5
  '    size: 100', //                                  6
  'stages:', //                                        7
  '  prep:', //                                        8
  '    cmd: ./prep.sh --seed ${params.seed} ${HOME}', // 9
  '    deps: [prep.sh, "./${params.data.dir}/"]', //   10
  '    outs: [data/clean]', //                         11
  '  gen:', //                                         12
  '    uses: source', //                               13
  '    with:', //                                      14
  '      size: ${params.data.size}', //                15
  '  base:', //                                        16
  '    uses: learn', //                                17
  '    needs: [gen]', //                               18
  '    with:', //                                      19
  '      epochs: 2', //                                20
  '      lr: ${params.lr}', //                         21
  '      tag: run-${params.seed}-${params.lr}', //     22
  '  tuned:', //                                       23
  '    uses: learn', //                                24
  '    desc: starts from base', //                     25
  '    with:', //                                      26
  '      epochs: 3', //                                27
  '      init_from: base', //                          28
  '  report:', //                                      29
  '    cmd: cat data/clean/x > report.txt', //         30
  '    deps: [data/clean/x]', //                       31
  '    outs: [report.txt]', //                         32
]);

describe('a valid pipeline resolves', () => {
  const p = parse(WORKFLOW);

  test('stages keep declaration order; kinds, root and locations are set', () => {
    expect([...p.stages.keys()]).toEqual(['prep', 'gen', 'base', 'tuned', 'report']);
    expect(p.root).toBe('/ws');
    expect(p.stages.get('prep')!.kind).toBe('cmd');
    expect(p.stages.get('tuned')!.kind).toBe('learn');
    expect(p.stages.get('tuned')!.loc).toEqual({ file: 'pipeline.yaml', line: 23, col: 3 });
  });

  test('${params.x} keeps its type when it is the whole value and is stringified inside text', () => {
    expect(p.stages.get('gen')!.params).toEqual({ size: 100, seed: 0 });
    expect(p.stages.get('base')!.params.lr).toBe(0.5);
    expect(p.stages.get('base')!.params.tag).toBe('run-7-0.5');
    // Only ${params.…} is substituted: shell variables pass through.
    expect(p.stages.get('prep')!.cmd).toBe('./prep.sh --seed 7 ${HOME}');
  });

  test('kind defaults are filled in', () => {
    expect(p.stages.get('tuned')!.params).toEqual({
      epochs: 3,
      lr: 0.01,
      shuffle: true,
      init_from: 'base',
      optimizer: { name: 'sgd', momentum: 0 },
      layers: [],
      tag: '',
    });
  });

  test('deps and outs are normalized workspace paths', () => {
    expect(p.stages.get('prep')!.deps).toEqual(['prep.sh', 'data/raw']);
    expect(p.stages.get('prep')!.outs).toEqual(['data/clean']);
  });

  test('needs: explicit, from params naming stages (stageRefs), and from deps under other outs', () => {
    expect(p.stages.get('base')!.needs).toEqual(['gen']);
    expect(p.stages.get('tuned')!.needs).toEqual(['base']);
    expect(p.stages.get('report')!.needs).toEqual(['prep']);
    expect(p.order).toEqual(['prep', 'gen', 'base', 'tuned', 'report']);
  });
});

describe('implied needs from workspace paths', () => {
  const pipeline = (dep: string) =>
    parse(yaml(['stages:', '  make:', '    cmd: make', '    outs: [build/lib]', '  use:', '    cmd: use', `    deps: [${dep}]`]));
  test.each([
    ['build/lib', ['make']],
    ['build/lib/a.o', ['make']],
    ['build', ['make']], // a dep containing another stage's output reads it too
    ['build/libx', []],
    ['src', []],
  ])('dep %s → needs %j', (dep, needs) => {
    expect(pipeline(dep).stages.get('use')!.needs).toEqual(needs);
  });
});

describe('interpolation', () => {
  const params = { seed: 7, lr: 0.001, on: true, nothing: null, list: [3, 4], nested: { a: { b: 'deep' } }, obj: { x: 1 } };

  test.each([
    ['${params.seed}', 7],
    ['${ params.seed }', 7],
    ['${params.lr}', 0.001],
    ['${params.on}', true],
    ['${params.nothing}', null],
    ['${params.list}', [3, 4]],
    ['${params.list.1}', 4],
    ['${params.nested.a.b}', 'deep'],
    ['seed=${params.seed}', 'seed=7'],
    ['${params.seed}${params.seed}', '77'],
    ['x ${params.on} ${params.nothing}', 'x true null'],
    ['${params.obj}!', '{"x":1}!'],
    ['$HOME ${HOME} ${other.x}', '$HOME ${HOME} ${other.x}'],
  ])('%s → %j', (text, expected) => {
    expect(interpolateString(text, params)).toEqual({ value: expected, errors: [] });
  });

  test('unknown references are errors with a hint', () => {
    expect(interpolateString('${params.sed}', params).errors).toEqual(["unknown reference ${params.sed}: 'sed' is not in params (did you mean 'seed'?)"]);
    expect(interpolateString('a ${params.nested.a.c} b', params).errors).toEqual([
      "unknown reference ${params.nested.a.c}: 'c' is not in params.nested.a (params.nested.a has: b)",
    ]);
    expect(interpolateString('${params.list.5}', params).errors).toEqual([
      "unknown reference ${params.list.5}: params.list is a list of 2; '5' is not an index in it",
    ]);
    expect(interpolateString('${params.seed.x}', params).errors).toEqual(['unknown reference ${params.seed.x}: params.seed is 7, not a map']);
    expect(interpolateString('x ${params}', params).errors).toEqual(["malformed reference in 'x ${params}' (write ${params.name})"]);
  });

  test('interpolate walks lists and maps and reports paths', () => {
    const errors: InterpolationError[] = [];
    const out = interpolate({ a: ['${params.seed}', { b: '${params.nope}' }], c: 1 }, params, errors, ['with']);
    expect(out).toEqual({ a: [7, { b: '${params.nope}' }], c: 1 });
    expect(errors.map((e) => e.path)).toEqual([['with', 'a', 1, 'b']]);
  });

  test('lookupParam does not see inherited properties', () => {
    expect(lookupParam({}, 'constructor').found).toBe(false);
  });
});

describe('--set', () => {
  test('values parse as YAML scalars (numbers, booleans, quoted strings) or flow collections', () => {
    expect(parseSet('train.lr=0.01').value).toBe(0.01);
    expect(parseSet('train.on=true').value).toBe(true);
    expect(parseSet('train.name="3"').value).toBe('3');
    expect(parseSet('train.url=http://x/y?a=b').value).toBe('http://x/y?a=b');
    expect(parseSet('train.sizes=[32, 64]').value).toEqual([32, 64]);
    expect(parseSet('train.text=a: b').value).toBe('a: b');
    expect(parseSet('train.empty=').value).toBe(UNSET); // removes the param
    expect(parseSet("train.empty=''").value).toBe('');
    expect(parseSet('train.opt.name=adam')).toMatchObject({ target: 'train', path: ['opt', 'name'], value: 'adam' });
  });

  test('malformed --set is a usage error', () => {
    expect(() => parseSet('train=3')).toThrow(UsageError);
    expect(() => parseSet('train.lr')).toThrow(UsageError);
    expect(() => parseSet('train..lr=1')).toThrow(/expected STAGE.PARAM=VALUE/);
  });

  test('overrides kind params (nested paths too) and top-level params before substitution', () => {
    const p = parse(WORKFLOW, ['base.lr=0.25', 'base.optimizer.name=adam', 'params.seed=9', 'params.data.size=5', 'tuned.tag="007"']);
    expect(p.stages.get('base')!.params).toMatchObject({ lr: 0.25, optimizer: { name: 'adam', momentum: 0 }, tag: 'run-9-0.5' });
    expect(p.stages.get('gen')!.params.size).toBe(5);
    expect(p.stages.get('prep')!.cmd).toBe('./prep.sh --seed 9 ${HOME}');
    expect(p.stages.get('tuned')!.params.tag).toBe('007');
    expect(p.params.seed).toBe(9);
  });

  test('a --set value may itself reference params', () => {
    expect(parse(WORKFLOW, ['base.epochs=${params.data.size}']).stages.get('base')!.params.epochs).toBe(100);
  });

  test('a --set that changes a stage reference changes the graph', () => {
    const p = parse(WORKFLOW, ['tuned.init_from=gen']);
    expect(p.stages.get('tuned')!.needs).toEqual(['gen']);
  });

  test('unknown stage, cmd stage, or a path through a scalar are errors', () => {
    expect(errorsOf(WORKFLOW, ['bse.lr=1', 'prep.x=1', 'base.lr.x=1'])).toEqual([
      "--set bse.lr=1: unknown stage 'bse' (did you mean 'base'?) (stages: prep, gen, base, tuned, report; params.NAME sets a top-level param)",
      "--set prep.x=1: stage 'prep' is a cmd: stage; only uses: stages have params to set",
      '--set base.lr.x=1: base.with.lr is "${params.lr}", not a map',
    ]);
  });

  test('an empty value (--set x= or --unset x) removes a param; a later --set of it wins', () => {
    const p = parse(WORKFLOW, ['tuned.init_from=', 'base.lr=']);
    expect(p.stages.get('tuned')!.params.init_from).toBeUndefined();
    expect(p.stages.get('tuned')!.needs).toEqual([]);
    expect(p.stages.get('base')!.params.lr).toBe(0.01); // the kind's default
    expect(parse(WORKFLOW, ['tuned.init_from=', 'tuned.init_from=gen']).stages.get('tuned')!.needs).toEqual(['gen']);
  });

  test('removing what is not written is an error, with a hint', () => {
    expect(errorsOf(WORKFLOW, ['tuned.init_frm=', 'params.sed=', 'base.optimizer.name=', 'params.data.dir.x='])).toEqual([
      "--set tuned.init_frm=: nothing to remove: tuned.with.init_frm is not set (did you mean 'init_from'?)",
      "--set params.sed=: nothing to remove: params.sed is not set (did you mean 'seed'?)",
      '--set base.optimizer.name=: nothing to remove: base.with.optimizer is not set',
      '--set params.data.dir.x=: params.data.dir is "data/raw", not a map',
    ]);
  });

  test('a bad value from --set is reported where the param is written, naming the --set', () => {
    expect(errorsOf(WORKFLOW, ['base.epochs=many'])).toEqual([
      'pipeline.yaml:20:15: stage \'base\': with.epochs: expected number, got string "many" (overridden by --set base.epochs=many)',
    ]);
    expect(errorsOf(WORKFLOW, ['tuned.shuffle=maybe'])).toEqual([
      'pipeline.yaml:26:5: stage \'tuned\': with.shuffle: expected boolean, got string "maybe" (from --set tuned.shuffle=maybe)',
    ]);
  });
});

describe('validation errors, each at its location, all reported at once (sorted by line)', () => {
  test('unknown keys at every level, with hints; missing and wrong params; nested params', () => {
    const text = yaml([
      'params:', //                                                     1
      '  seed: 1', //                                                   2
      'stages:', //                                                     3
      '  gen:', //                                                      4
      '    uses: source', //                                            5
      '    whith:', //                                                  6
      '      size: 3', //                                               7
      '  base:', //                                                     8
      '    uses: learn', //                                             9
      '    nedes: [gen]', //                                            10
      '    with:', //                                                   11
      '      epocs: 2', //                                              12
      '      optimizer: {name: adam, momentun: 0.9}', //                13
      '      layers:', //                                               14
      '        - {type: dense, units: 10, activation: relu}', //        15
      '        - {type: dropout, rate: 2}', //                          16
      '        - {type: conv}', //                                      17
      '  third:', //                                                    18
      '    cmd: echo', //                                               19
      '    with: {a: 1}', //                                            20
      'stagez: {}', //                                                  21
    ]);
    expect(errorsOf(text)).toEqual([
      "pipeline.yaml:4:3: stage 'gen': missing param 'size' (expected number)",
      "pipeline.yaml:6:5: stage 'gen': unknown key 'whith' (did you mean 'with'?) (allowed: uses, with, needs, desc, timeout, retries)",
      "pipeline.yaml:10:5: stage 'base': unknown key 'nedes' (did you mean 'needs'?) (allowed: uses, with, needs, desc, timeout, retries)",
      "pipeline.yaml:11:5: stage 'base': missing param 'epochs' (expected number)",
      "pipeline.yaml:12:7: stage 'base': unknown param 'epocs' for kind learn (did you mean 'epochs'?)",
      "pipeline.yaml:13:31: stage 'base': unknown param 'optimizer.momentun' for kind learn (did you mean 'momentum'?)",
      "pipeline.yaml:15:36: stage 'base': unknown param 'layers[0].activation' for kind learn (allowed: type, units)",
      "pipeline.yaml:16:33: stage 'base': with.layers[1].rate: Too big: expected number to be <1",
      "pipeline.yaml:17:18: stage 'base': with.layers[2].type: Invalid discriminator value. Expected 'dense' | 'dropout'",
      "pipeline.yaml:20:5: stage 'third': with: is only for uses: stages",
      "pipeline.yaml:21:1: unknown top-level key 'stagez' (did you mean 'stages'?) (allowed: params, stages, schedule, promote, retention, remote, workspace)",
    ]);
  });

  test('wrong types point at the value, through ${params.x} substitution', () => {
    const text = yaml([
      'params:',
      '  n: three',
      'stages:',
      '  gen:',
      '    uses: source',
      '    with:',
      '      size: ${params.n}',
      '  base:',
      '    uses: learn',
      '    with: {epochs: 1.5, lr: -1, shuffle: "yes"}',
    ]);
    expect(errorsOf(text)).toEqual([
      'pipeline.yaml:7:13: stage \'gen\': with.size: expected number, got string "three"',
      "pipeline.yaml:10:20: stage 'base': with.epochs: expected integer, got number 1.5",
      "pipeline.yaml:10:29: stage 'base': with.lr: Too small: expected number to be >0",
      'pipeline.yaml:10:42: stage \'base\': with.shuffle: expected boolean, got string "yes"',
    ]);
  });

  test('uses and cmd: both, neither, unknown kind, and stage-level type errors', () => {
    const text = yaml([
      'stages:', //                       1
      '  both:', //                       2
      '    uses: source', //              3
      '    cmd: echo', //                 4
      '  neither:', //                    5
      '    desc: nothing to do', //       6
      '  typo:', //                       7
      '    uses: sorce', //               8
      '  nokind:', //                     9
      '    uses: fancy', //               10
      '  badcmd:', //                     11
      '    cmd: [echo, hi]', //           12
      '    outs: data', //                13
      '  notmap: echo hi', //             14
      '  bad name:', //                   15
      '    cmd: echo', //                 16
    ]);
    expect(errorsOf(text)).toEqual([
      "pipeline.yaml:2:3: stage 'both' has both uses: and cmd: (a stage runs either a kind or a shell command)",
      "pipeline.yaml:5:3: stage 'neither' needs uses: <kind> or cmd: <shell command>",
      "pipeline.yaml:8:11: stage 'typo': unknown kind 'sorce' (did you mean 'source'?) (known kinds: source, learn)",
      "pipeline.yaml:10:11: stage 'nokind': unknown kind 'fancy' (known kinds: source, learn)",
      "pipeline.yaml:12:10: stage 'badcmd': cmd: expected string, got a list",
      'pipeline.yaml:13:11: stage \'badcmd\': outs: expected list, got string "data"',
      'pipeline.yaml:14:3: stage \'notmap\' must be a map with uses: <kind> or cmd: <command>, found string "echo hi"',
      "pipeline.yaml:15:3: stage 'bad name': a stage name is letters, digits, _ and -, starting with a letter or _",
    ]);
  });

  test('unknown needs and unknown stages named by params, with hints', () => {
    const text = yaml([
      'stages:', //                          1
      '  gen:', //                           2
      '    uses: source', //                 3
      '    with: {size: 1}', //              4
      '  base:', //                          5
      '    uses: learn', //                  6
      '    needs: [gen, gne]', //            7
      '    with:', //                        8
      '      epochs: 1', //                  9
      '      init_from: bsae', //            10
    ]);
    expect(errorsOf(text)).toEqual([
      "pipeline.yaml:7:18: stage 'base': needs unknown stage 'gne' (did you mean 'gen'?)",
      "pipeline.yaml:10:18: stage 'base': names unknown stage 'bsae' (with: init_from) (did you mean 'base'?)",
    ]);
  });

  test('cycles print the loop in data-flow order, located at its first-declared stage', () => {
    const text = yaml([
      'stages:', //                          1
      '  train:', //                         2
      '    uses: learn', //                  3
      '    needs: [evaluate]', //            4
      '    with: {epochs: 1}', //            5
      '  evaluate:', //                      6
      '    cmd: evaluate', //                7
      '    needs: [train]', //               8
      '  a:', //                             9
      '    cmd: a', //                       10
      '    deps: [c.txt]', //                11
      '    outs: [a.txt]', //                12
      '  b:', //                             13
      '    cmd: b', //                       14
      '    deps: [a.txt]', //                15
      '    outs: [b.txt]', //                16
      '  c:', //                             17
      '    cmd: c', //                       18
      '    deps: [b.txt]', //                19
      '    outs: [c.txt]', //                20
      '  self:', //                          21
      '    uses: learn', //                  22
      '    with: {epochs: 1, init_from: self}', // 23
    ]);
    expect(errorsOf(text)).toEqual([
      'pipeline.yaml:2:3: cycle: train -> evaluate -> train',
      'pipeline.yaml:9:3: cycle: a -> b -> c -> a',
      'pipeline.yaml:21:3: cycle: self -> self',
    ]);
  });

  test('an output claimed twice, or nested in another, is an error at the later claim', () => {
    const text = yaml([
      'stages:', //                       1
      '  a:', //                          2
      '    cmd: a', //                    3
      '    outs: [data, out.txt]', //     4
      '  b:', //                          5
      '    cmd: b', //                    6
      '    outs: [./data/x, logs]', //    7
      '  c:', //                          8
      '    cmd: c', //                    9
      '    outs: [out.txt, logs/c, c, c/]', // 10
    ]);
    expect(errorsOf(text)).toEqual([
      "pipeline.yaml:7:12: stage 'b': output 'data/x' is inside output 'data' of stage 'a' (pipeline.yaml:4:12)",
      "pipeline.yaml:10:12: stage 'c': output 'out.txt' is also an output of stage 'a' (pipeline.yaml:4:18)",
      "pipeline.yaml:10:21: stage 'c': output 'logs/c' is inside output 'logs' of stage 'b' (pipeline.yaml:7:22)",
      "pipeline.yaml:10:32: stage 'c': output 'c' is listed twice (pipeline.yaml:10:29)",
    ]);
  });

  test('paths escaping the root, absolute paths, the store directory', () => {
    const text = yaml(['stages:', '  a:', '    cmd: a', '    deps: [../secret, /etc/passwd, x/../../y, .]', '    outs: [artifacts/objects, ok/../fine]']);
    expect(errorsOf(text)).toEqual([
      "pipeline.yaml:4:12: stage 'a': deps path '../secret' escapes the pipeline directory",
      "pipeline.yaml:4:23: stage 'a': deps path '/etc/passwd' is absolute (paths are relative to the pipeline directory)",
      "pipeline.yaml:4:36: stage 'a': deps path 'x/../../y' escapes the pipeline directory",
      "pipeline.yaml:4:47: stage 'a': deps path '.' is the whole pipeline directory",
      "pipeline.yaml:5:12: stage 'a': outs path 'artifacts/objects' overlaps the store directory artifacts/",
    ]);
  });

  test('unknown ${params} references, and params referencing params', () => {
    const text = yaml([
      'params:', //                              1
      '  seed: 1', //                            2
      '  twice: ${params.seed}', //              3
      'stages:', //                              4
      '  a:', //                                 5
      '    cmd: run --seed ${params.sed}', //    6
      '    outs: ["${params.out}"]', //          7
    ]);
    expect(errorsOf(text)).toEqual([
      'pipeline.yaml:3:10: params cannot reference other params (only stages can use ${params.x})',
      "pipeline.yaml:6:10: stage 'a': unknown reference ${params.sed}: 'sed' is not in params (did you mean 'seed'?)",
      "pipeline.yaml:7:12: stage 'a': unknown reference ${params.out}: 'out' is not in params (params has: seed, twice)",
    ]);
  });

  test("YAML syntax errors carry the parser's line and column (and only they are reported)", () => {
    expect(errorsOf(yaml(['stages:', '  a:', '    cmd: [echo', '  b:', '    cmd: b']))).toEqual([
      'pipeline.yaml:4:3: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    expect(errorsOf(yaml(['stages:', '  a:', '    cmd: a', '  a:', '    cmd: b']))).toEqual(['pipeline.yaml:4:3: YAML: Map keys must be unique']);
    expect(errorsOf(yaml(['stages:', '  a:', '    cmd: a', '    deps: [${params.x}]']))[0]).toMatch(
      /^pipeline\.yaml:4:\d+: YAML: .* \(quote values containing \$\{\.\.\.\} inside \[\.\.\.\] or \{\.\.\.\}: "\$\{params\.x\}"\)$/,
    );
    expect(errorsOf(yaml(['stages:', '  a: *nowhere']))).toEqual(['pipeline.yaml:2:6: YAML: unknown alias *nowhere']);
  });

  test('empty files, empty or missing stages, wrong top-level shapes', () => {
    expect(errorsOf('')).toEqual(['pipeline.yaml:1:1: the file is empty (expected a stages: map)']);
    expect(errorsOf('# nothing\n')).toEqual(['pipeline.yaml:1:1: the file is empty (expected a stages: map)']);
    expect(errorsOf('stages: {}\n')).toEqual(['pipeline.yaml:1:1: stages: is empty (define at least one stage)']);
    expect(errorsOf('params: {a: 1}\nstages:\n')).toEqual(['pipeline.yaml:2:1: stages: is empty (define at least one stage)']);
    expect(errorsOf('params: {a: 1}\n')).toEqual(['pipeline.yaml:1:1: no stages: map (define at least one stage)']);
    expect(errorsOf('- a\n- b\n')).toEqual(['pipeline.yaml:1:1: expected a map with params: and stages:, found a list']);
    expect(errorsOf('params: [1]\nstages:\n  a: {cmd: a}\n')).toEqual(['pipeline.yaml:1:9: params: must be a map of names to values, found a list']);
    // Empty values are shown at their key.
    expect(errorsOf('stages:\n  a:\n    uses: source\n    with:\n  b:\n    cmd: b\n    needs:\n')).toEqual([
      "pipeline.yaml:4:5: stage 'a': with: expected map, got nothing",
      "pipeline.yaml:7:5: stage 'b': needs: expected list, got nothing",
    ]);
    expect(errorsOf('stages:\n  params:\n    cmd: y\n')).toEqual([
      "pipeline.yaml:2:3: stage 'params': 'params' is reserved (--set params.x=... sets a top-level param)",
    ]);
  });

  test('anchors and aliases resolve, and locations follow them', () => {
    const text = yaml(['common: &common', '  epochs: 2', 'stages:', '  a:', '    uses: learn', '    with: *common']);
    expect(errorsOf(text)).toEqual([
      "pipeline.yaml:1:1: unknown top-level key 'common' (allowed: params, stages, schedule, promote, retention, remote, workspace)",
    ]);
    const merged = parse(
      yaml([
        'params:',
        '  learn_defaults: &defaults {epochs: 2, lr: 0.5}',
        'stages:',
        '  a: {uses: learn, with: *defaults}',
        '  b:',
        '    uses: learn',
        '    with:',
        '      <<: *defaults',
        '      lr: 0.25',
      ]),
    );
    expect(merged.stages.get('a')!.params).toMatchObject({ epochs: 2, lr: 0.5 });
    expect(merged.stages.get('b')!.params).toMatchObject({ epochs: 2, lr: 0.25 });
    // An error in an aliased block points at the alias's anchor, where the value is written.
    expect(errorsOf(yaml(['params:', '  bad: &bad {epochs: two}', 'stages:', '  a: {uses: learn, with: *bad}']))).toEqual([
      'pipeline.yaml:2:22: stage \'a\': with.epochs: expected number, got string "two"',
    ]);
  });
});

describe('loadPipeline', () => {
  test('reads the file, shows its path relative to cwd, and reports a missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'config-'));
    try {
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  a:\n    cmd: a\n    needs: [b]\n');
      await expect(loadPipeline('pipeline.yaml', { cwd: dir, kinds: fakeKinds })).rejects.toThrow("pipeline.yaml:4:13: stage 'a': needs unknown stage 'b'");
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  a:\n    cmd: a\n');
      const p = await loadPipeline(join(dir, 'pipeline.yaml'), { cwd: dir, kinds: fakeKinds });
      expect(p.file).toBe(join(dir, 'pipeline.yaml'));
      expect(p.root).toBe(dir);
      const missing = loadPipeline('other.yaml', { cwd: dir, kinds: fakeKinds });
      await expect(missing).rejects.toBeInstanceOf(ConfigErrors);
      await expect(missing).rejects.toThrow('cannot read other.yaml: no such file (--config FILE names another)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('workspace:', () => {
  test('a pipeline in a subdirectory names the workspace its store and relative paths belong to', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'config-ws-'));
    try {
      await mkdir(join(dir, 'pipelines'));
      const file = join(dir, 'pipelines', 'other.yaml');
      await writeFile(file, 'workspace: ..\nstages:\n  a:\n    cmd: cat data.txt > out.txt\n    deps: [data.txt]\n    outs: [out.txt]\n');
      const p = await loadPipeline(file, { cwd: dir, kinds: fakeKinds });
      expect(p.root).toBe(dir);
      expect(p.file).toBe(file);
      // The pipeline file is protected under its path inside the workspace.
      await writeFile(file, 'workspace: ..\nstages:\n  a:\n    cmd: echo > pipelines/other.yaml\n    outs: [pipelines/other.yaml]\n');
      await expect(loadPipeline(file, { cwd: dir, kinds: fakeKinds })).rejects.toThrow(
        "pipelines/other.yaml:5:12: stage 'a': output 'pipelines/other.yaml' is the pipeline file",
      );
      await writeFile(file, 'workspace: ../nowhere\nstages:\n  a:\n    cmd: a\n');
      await expect(loadPipeline(file, { cwd: dir, kinds: fakeKinds })).rejects.toThrow(
        `pipelines/other.yaml:1:12: workspace: '../nowhere' is not a directory (${join(dir, 'nowhere')})`,
      );
      await writeFile(file, 'workspace: [a]\nstages:\n  a:\n    cmd: a\n');
      await expect(loadPipeline(file, { cwd: dir, kinds: fakeKinds })).rejects.toThrow('workspace: must be a directory path relative to the pipeline file');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('findUnknownKeys', () => {
  test('plain and strict objects reject extras; loose objects and records accept them', () => {
    const schema = z.object({
      plain: z.object({ a: z.number() }).optional(),
      strict: z.strictObject({ a: z.number() }).default({ a: 1 }),
      loose: z.looseObject({ a: z.number() }).optional(),
      byName: z.record(z.string(), z.object({ w: z.number() })).optional(),
      pair: z.tuple([z.object({ x: z.number() }), z.number()]).optional(),
      either: z.union([z.object({ kind: z.literal('a'), a: z.number() }), z.object({ kind: z.literal('b'), b: z.number() })]).optional(),
    });
    const value = {
      plain: { a: 1, b: 2 },
      strict: { a: 1, c: 3 },
      loose: { a: 1, anything: 4 },
      byName: { one: { w: 1, v: 2 } },
      pair: [{ x: 1, y: 2 }, 3],
      either: { kind: 'b', b: 1, c: 2 },
      top: 5,
    };
    expect(findUnknownKeys(schema, value).map((u) => [...u.path, u.key].join('.'))).toEqual([
      'plain.b',
      'strict.c',
      'byName.one.v',
      'pair.0.y',
      'either.c',
      'top',
    ]);
  });
});
