// Experiments on the real CLI, with shell-command stages whose metrics are params (so each figure
// is chosen, not hoped for): run records keep their overrides and effective params, `exp show`
// compares runs and a sweep's experiments, `metrics --diff` finds the two runs to compare itself,
// and `status` says when a result was made with --set (and when a checkpoint waits).
import { afterEach, describe, expect, test } from '@jest/globals';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { runCli, workspace, type CliResult } from './helpers/cli.js';
import type { RunRecord } from '../engine/store/runs.js';
import type { ExperimentTable } from '../engine/experiments/table.js';

const PIPELINE = `params:
  acc: 0.5
  n: 3
  label: demo
stages:
  prep:
    cmd: seq 1 \${params.n} > nums.txt
    outs: [nums.txt]
  evaluate:
    cmd: printf '{"test_accuracy":%s,"test_loss":%s,"count":7}' "\${params.acc}" "\${params.n}" > metrics.json
    deps: [nums.txt]
    outs: [metrics.json]
`;

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function ws(yaml = PIPELINE): Promise<string> {
  const dir = await workspace(yaml, 'experiments-');
  dirs.push(dir);
  return dir;
}

/** Runs the CLI in `dir`, expecting exit `code` (the assertion shows stdout and stderr otherwise). */
async function cli(dir: string, args: string[], code = 0): Promise<CliResult> {
  const r = await runCli(args, { cwd: dir });
  expect(r).toMatchObject({ code });
  return r;
}

const records = async (dir: string) => JSON.parse((await cli(dir, ['runs', '--json', '--limit', '0'])).stdout) as RunRecord[];

/** stage → the rest of its status line. */
function statusLines(r: CliResult): Record<string, string> {
  const found: Record<string, string> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m) found[m[1]!] = m[2]!;
  }
  return found;
}

/** The cells of each line of a text table. */
const cells = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));

describe('run records and exp show', () => {
  test('each run records its overrides and effective params; exp show lists runs and a sweep, sorted, as text, JSON and CSV', async () => {
    const dir = await ws();
    await cli(dir, ['run']);
    await cli(dir, ['run', '--set', 'params.acc=0.7', '--unset', 'params.label']);
    const sweep = await cli(dir, ['run', '--matrix', 'params.acc=0.6,0.8', '--matrix', 'params.n=3,4']);
    expect(sweep.stdout).toContain('(4 experiments)');

    const [plain, set, ...experiments] = await records(dir).then((r) => r.reverse());
    expect(plain!.overrides).toBeUndefined();
    expect(plain!.effective).toEqual({ params: { acc: 0.5, n: 3, label: 'demo' }, stages: {} });
    expect(set!.overrides).toEqual({ set: ['params.acc=0.7'], unset: ['params.label'] });
    expect(set!.effective!.params).toEqual({ acc: 0.7, n: 3 });
    const listed = (await cli(dir, ['runs', '--limit', '0'])).stdout;
    expect(listed).toMatch(new RegExp(`^${set!.id} .*\\n {4}overrides --set params\\.acc=0\\.7 --unset params\\.label\\n`, 'm'));
    expect(experiments.map((e) => [e.experiment!.index, e.effective!.params.acc, e.effective!.params.n])).toEqual([
      [1, 0.6, 3],
      [2, 0.6, 4],
      [3, 0.8, 3],
      [4, 0.8, 4],
    ]);

    // Text: newest first, the params that differ (label does: one run removed it), evaluate's metrics.
    const text = cells((await cli(dir, ['exp', 'show'])).stdout);
    expect(text[0]).toEqual(['run', 'exp', 'params.acc', 'params.n', 'params.label', 'evaluate.test_accuracy', 'evaluate.test_loss', 'evaluate.count']);
    expect(text.slice(1).map((r) => r.slice(0, 2))).toEqual([
      [experiments[0]!.id, '1/4'],
      [experiments[1]!.id, '2/4'],
      [experiments[2]!.id, '3/4'],
      [experiments[3]!.id, '4/4'],
      [set!.id, '0.7'],
      [plain!.id, '0.5'],
    ]);
    expect(text[4]).toEqual([experiments[3]!.id, '4/4', '0.8', '4', 'demo', '0.8', '4', '7']);
    expect(text[5]).toEqual([set!.id, '0.7', '3', '-', '0.7', '3', '7']);

    // Best first: accuracy high to low, loss low to high; ties stay newest first. --limit keeps the best.
    const byAcc = cells((await cli(dir, ['exp', 'show', '--sort', 'test_accuracy', '--limit', '3'])).stdout);
    expect(byAcc.slice(1, 4).map((r) => r[0])).toEqual([experiments[2]!.id, experiments[3]!.id, set!.id]);
    expect(byAcc[4]!.join(' ')).toBe('(3 of 6 runs; --limit 0 shows all)');
    const byLoss = cells((await cli(dir, ['exp', 'show', '--sort', 'evaluate.test_loss'])).stdout);
    expect(byLoss.slice(1).map((r) => r.at(-2))).toEqual(['3', '3', '3', '3', '4', '4']);

    const json = JSON.parse((await cli(dir, ['exp', 'show', '--json'])).stdout) as ExperimentTable;
    expect(json.params).toEqual(['params.acc', 'params.n', 'params.label']);
    expect(json.metrics).toEqual(['evaluate.test_accuracy', 'evaluate.test_loss', 'evaluate.count']);
    expect(json.rows[0]).toMatchObject({
      run: experiments[0]!.id,
      sweep: experiments[0]!.experiment!.sweep,
      experiment: { index: 1, of: 4 },
      outcome: 'ok',
      params: { 'params.acc': 0.6, 'params.n': 3, 'params.label': 'demo' },
      metrics: { 'evaluate.test_accuracy': 0.6, 'evaluate.test_loss': 3 },
    });

    const csv = (await cli(dir, ['exp', 'show', '--csv'])).stdout.trim().split('\n');
    expect(csv[0]).toBe('run,sweep,experiment,started,outcome,params.acc,params.n,params.label,evaluate.test_accuracy,evaluate.test_loss,evaluate.count');
    expect(csv[5]).toBe(`${set!.id},,,${set!.startedAt},ok,0.7,3,,0.7,3,7`);

    await cli(dir, ['exp', 'show', '--json', '--csv'], 2);
    expect((await cli(dir, ['exp', 'show', '--sort', 'nope'], 2)).stderr).toMatch(/--sort nope: no such metric or param \(metrics: evaluate\.test_accuracy, /);
  });

  test('exp show leaves out the params that are the same everywhere; --all shows them', async () => {
    const dir = await ws();
    await cli(dir, ['run']);
    await cli(dir, ['run', '--set', 'params.acc=0.9']);
    expect(cells((await cli(dir, ['exp', 'show'])).stdout)[0]).toEqual(['run', 'params.acc', 'evaluate.test_accuracy', 'evaluate.test_loss', 'evaluate.count']);
    expect(cells((await cli(dir, ['exp', 'show', '--all'])).stdout)[0]!.slice(0, 4)).toEqual(['run', 'params.acc', 'params.n', 'params.label']);
    const empty = await ws();
    expect((await cli(empty, ['exp', 'show'])).stdout).toBe('no runs yet\n');
  });
});

describe('metrics --diff', () => {
  test('without ids: the last two runs with metrics of the same stage, with the params that changed', async () => {
    const dir = await ws();
    await cli(dir, ['run']);
    expect((await cli(dir, ['metrics', '--diff'], 2)).stderr).toMatch(/only one run \(\S+\) has metrics of its stages: nothing to compare it with yet/);
    await cli(dir, ['run', '--set', 'params.acc=0.75', '--set', 'params.n=5']);
    await cli(dir, ['run', 'prep']); // no metrics: not one of the two
    const [, b, a] = await records(dir); // newest first

    const diff = (await cli(dir, ['metrics', '--diff'])).stdout;
    expect(diff).toMatch(new RegExp(`^stage\\s+metric\\s+${a!.id}\\s+${b!.id}\\s+change$`, 'm'));
    expect(diff).toMatch(/^evaluate\s+test_accuracy\s+0\.5\s+0\.75\s+\+0\.25$/m);
    expect(diff).toMatch(/^evaluate\s+test_loss\s+3\s+5\s+\+2$/m);
    expect(diff).toMatch(new RegExp(`^param\\s+${a!.id}\\s+${b!.id}$`, 'm'));
    expect(diff).toMatch(/^params\.acc\s+0\.5\s+0\.75$/m);
    expect(diff).toMatch(/^params\.n\s+3\s+5$/m);

    // One id: that run against the newest comparable one; the same pair, so the same answer.
    const one = JSON.parse((await cli(dir, ['metrics', '--diff', a!.id.slice(0, 22), '--json'])).stdout) as {
      a: string;
      b: string;
      params: { param: string; a: unknown; b: unknown }[];
    };
    expect(one).toMatchObject({ a: a!.id, b: b!.id });
    expect(one.params).toEqual([
      { param: 'params.acc', a: 0.5, b: 0.75 },
      { param: 'params.n', a: 3, b: 5 },
    ]);
    await cli(dir, ['metrics', '--diff', 'a', 'b', 'c'], 2);
  });
});

describe('status after run --set', () => {
  test('says which run and overrides made the stale results, and how to reuse them; only when they are the whole difference', async () => {
    const dir = await ws();
    await cli(dir, ['run', '--set', 'params.acc=0.7']);
    const [made] = await records(dir);
    const hint = `the latest result was made with --set params.acc=0.7 (run ${made!.id}); \`pipeline run --set params.acc=0.7\` reuses it`;
    expect(statusLines(await cli(dir, ['status']))).toEqual({ prep: 'up to date', evaluate: `stale: ${hint}` });
    expect(statusLines(await cli(dir, ['status', '--set', 'params.acc=0.7']))).toEqual({ prep: 'up to date', evaluate: 'up to date' });
    const json = JSON.parse((await cli(dir, ['status', '--json'])).stdout) as { stages: { stage: string; reasons: Record<string, unknown>[] }[] };
    expect(json.stages[1]!.reasons).toEqual([{ type: 'overrides', run: made!.id, set: ['params.acc=0.7'], unset: [], message: hint }]);

    // A change of pipeline.yaml too: the overrides alone no longer explain it, so status says what changed.
    await writeFile(join(dir, 'pipeline.yaml'), PIPELINE.replace('n: 3', 'n: 4'));
    const edited = statusLines(await cli(dir, ['status']));
    expect(edited.prep).toBe('stale: code changed: cmd `seq 1 3 > nums.txt` → `seq 1 4 > nums.txt`');
    expect(edited.evaluate).not.toContain('latest result was made with');
  });

  test('a kind stage: the params as written (not what the key holds, such as fetch `unpack`), and a checkpoint waiting', async () => {
    const dir = await ws(`stages:
  fetch:
    uses: fetch
    with:
      url: http://nonexistent.invalid/data.tar.gz
      md5: c32a1d4ab5d03f1284b67883e8d87530
`);
    await mkdir(join(dir, 'src', 'a'), { recursive: true });
    await writeFile(join(dir, 'src', 'a', 'f.txt'), 'hi\n');
    await tar.create({ gzip: true, file: join(dir, 'data.tar.gz'), cwd: join(dir, 'src') }, ['a']);

    // Offline: the quick start's way round it. A plain status then names the overrides, nothing else.
    await cli(dir, ['run', '--set', 'fetch.url=data.tar.gz', '--unset', 'fetch.md5']);
    const [made] = await records(dir);
    const args = '--set fetch.url=data.tar.gz --unset fetch.md5';
    expect((await cli(dir, ['status'])).stdout).toBe(
      `fetch  stale: the latest result was made with ${args} (run ${made!.id}); \`pipeline run ${args}\` reuses it\n`,
    );

    // Written into pipeline.yaml, then a checksum added: the change in the user's words.
    await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  fetch:\n    uses: fetch\n    with:\n      url: data.tar.gz\n');
    expect((await cli(dir, ['status'])).stdout).toBe('fetch  up to date\n');
    expect((await cli(dir, ['run'])).stdout).toMatch(/^cached\s+fetch/m); // now the latest result of a plain run
    await writeFile(
      join(dir, 'pipeline.yaml'),
      'stages:\n  fetch:\n    uses: fetch\n    with:\n      url: data.tar.gz\n      md5: c32a1d4ab5d03f1284b67883e8d87530\n',
    );
    const status = JSON.parse((await cli(dir, ['status', '--json'])).stdout) as { stages: { key: string; reasons: { message: string }[] }[] };
    expect(status.stages[0]!.reasons.map((r) => r.message)).toEqual(['params changed: md5 (unset) → "c32a1d4ab5d03f1284b67883e8d87530"']);

    // An interrupted run's checkpoint: for another key it is kept; for this key the next run resumes from it.
    const key = status.stages[0]!.key;
    const other = join(dir, 'artifacts', 'resume', 'fetch-0123456789abcdef');
    await mkdir(join(other, 'download'), { recursive: true });
    await writeFile(join(other, 'download', 'part'), 'x');
    expect((await cli(dir, ['status'])).stdout).toContain(
      "; an interrupted run's checkpoint is kept in artifacts/resume/fetch-0123456789abcdef: the stage resumes from it when it runs with the inputs and params it had\n",
    );
    const own = join(dir, 'artifacts', 'resume', `fetch-${key.slice(0, 16)}`);
    await mkdir(own, { recursive: true });
    expect((await cli(dir, ['status'])).stdout).not.toContain(own.slice(-16)); // an empty one holds nothing to resume
    await writeFile(join(own, 'latest.json'), '{}');
    expect((await cli(dir, ['status'])).stdout).toContain(
      `; an interrupted run's checkpoint waits in artifacts/resume/fetch-${key.slice(0, 16)}: the next run resumes from it\n`,
    );
    expect(await readFile(join(dir, 'pipeline.yaml'), 'utf8')).toContain('md5'); // status wrote nothing
  });
});
