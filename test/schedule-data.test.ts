// Scheduled retraining on real (small) data through the built CLI: a tick notices a changed remote
// (HTTP ETag, no declared checksum) and retrains, an unchanged one runs nothing; an image folder
// that gains, loses or changes files reruns decode and what follows; SIGTERM during a scheduled
// training run exits 0 with a store that verifies, and the next tick resumes from the checkpoint;
// `init_from: current` warm-starts from the promoted model and keys on it.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { copyFile, cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { runCli } from './helpers/cli.js';
import { cifarSource, extractSubset } from './helpers/dataset.js';
import { TestFileServer } from './helpers/http-server.js';
import type { RunRecord } from '../engine/store/runs.js';

const MODEL =
  '[{type: conv2d, filters: 8, kernel_size: 3, activation: relu}, {type: maxPooling2d, pool_size: 2}, {type: flatten}, {type: dense, units: 10, activation: softmax}]';

function pipelineYaml(url: string, train: Record<string, string | number> = {}, extra = ''): string {
  const trainWith = Object.entries({ backend: 'wasm', workers: 1, epochs: 1, batch_size: 32, ...train })
    .map(([k, v]) => `      ${k}: ${v}`)
    .join('\n');
  return `stages:
  fetch:
    uses: fetch
    with: {url: "${url}"}
  decode:
    uses: decode
    needs: [fetch]
  normalize:
    uses: normalize
    needs: [decode]
  train:
    uses: train
    needs: [normalize]
    with:
${trainWith}
      model: ${MODEL}
  evaluate:
    uses: evaluate
    needs: [normalize, train]
    with: {backend: wasm}
schedule:
  nightly:
    cron: "0 3 * * *"
  decode_only:
    cron: "0 4 * * *"
    stages: [decode]
${extra}`;
}

const ALL = ['fetch', 'decode', 'normalize', 'train', 'evaluate'];
let root: string;
let tree: string;
let server: TestFileServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'schedule-data-'));
  const source = await cifarSource({ perClassTrain: 12, perClassTest: 4 });
  tree = join(root, 'tree');
  await extractSubset(source.archive, tree, 12, 4);
  server = await TestFileServer.start();
});

afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

async function workspaceWith(name: string, yaml: string): Promise<string> {
  const dir = join(root, name);
  await cp(tree, join(dir, 'data'), { recursive: true });
  await writeFile(join(dir, 'pipeline.yaml'), yaml);
  return dir;
}

const latestRecord = async (cwd: string): Promise<RunRecord> =>
  (JSON.parse((await runCli(['runs', '--json', '--limit', '1'], { cwd })).stdout) as RunRecord[])[0]!;
const outcomes = (r: RunRecord) => Object.fromEntries(r.stages.map((s) => [s.stage, s.outcome]));
const all = (outcome: string) => Object.fromEntries(ALL.map((s) => [s, outcome]));

/** One `schedule --once` of the `nightly` entry, or of the `--entry` in `args`. */
async function tick(cwd: string, ...args: string[]): Promise<RunRecord> {
  // Named, not "the next due entry": between 03:00 and 04:00 UTC that would be decode_only.
  const entry = args.includes('--entry') ? [] : ['--entry', 'nightly'];
  const result = await runCli(['schedule', '--once', ...entry, ...args], { cwd });
  expect(result.stderr).not.toMatch(/error/i);
  expect(result.code).toBe(0);
  return latestRecord(cwd);
}

describe('new data', () => {
  test('a remote whose file (and ETag) changed retrains; an unchanged one runs no stage', async () => {
    const dir = join(root, 'http');
    const archives = [join(root, 'a.tar.gz'), join(root, 'b.tar.gz')];
    await tar.create({ gzip: true, file: archives[0]!, cwd: tree }, ['train', 'test']);
    // The second archive: one more training image per class.
    const more = join(root, 'tree-b');
    await cp(tree, more, { recursive: true });
    for (const cls of await readdir(join(more, 'train'))) {
      const first = (await readdir(join(more, 'train', cls)))[0]!;
      await copyFile(join(more, 'train', cls, first), join(more, 'train', cls, `extra-${first}`));
    }
    await tar.create({ gzip: true, file: archives[1]!, cwd: more }, ['train', 'test']);
    const served = join(root, 'served.tar.gz');
    await copyFile(archives[0]!, served);
    const url = server.serve('/data/cifar.tar.gz', served);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'pipeline.yaml'), pipelineYaml(url));

    const first = await tick(dir);
    expect(outcomes(first)).toEqual(all('ran'));
    expect(first.trigger).toMatchObject({ type: 'schedule', entry: 'nightly', result: 'ran' });

    server.reset();
    const unchanged = await tick(dir);
    expect(outcomes(unchanged)).toEqual(all('cached'));
    expect(unchanged.trigger?.result).toBe('nothing-changed');
    expect(server.requestsFor('GET')).toEqual([]);

    await copyFile(archives[1]!, served);
    const changed = await tick(dir);
    expect(outcomes(changed)).toEqual(all('ran'));
    expect(changed.stages.find((s) => s.stage === 'fetch')!.reason).toMatch(/runtime changed|etag/i);
    const counts = JSON.parse(await readFile(join(dir, 'artifacts', 'stages', 'decode', 'decode.json'), 'utf8')) as { counts: { train: { total: number } } };
    expect(counts.counts.train.total).toBe(130);
  });

  test('an image folder that gains, loses or changes files reruns decode and everything after it', async () => {
    const dir = await workspaceWith('folder', pipelineYaml('data'));
    expect(outcomes(await tick(dir))).toEqual(all('ran'));
    const cats = join(dir, 'data', 'train', 'cat');
    const files = (await readdir(cats)).sort();
    await copyFile(join(cats, files[0]!), join(cats, 'added.jpg'));
    expect(outcomes(await tick(dir))).toEqual(all('ran'));
    const decodeRecord = async () =>
      JSON.parse(await readFile(join(dir, 'artifacts', 'stages', 'decode', 'decode.json'), 'utf8')) as {
        counts: { train: { per_class: Record<string, number> } };
        changes: Record<string, number> | null;
      };
    const decodeJson = async () => (await decodeRecord()).counts.train.per_class;
    expect((await decodeJson()).cat).toBe(13);
    // Only what arrived was decoded; the rest kept its rows (the same shard objects).
    const total = 12 * 10 + 4 * 10;
    expect((await decodeRecord()).changes).toMatchObject({ added: 1, changed: 0, removed: 0, decoded: 1, reused: total });

    // The decode_only entry runs decode and what it needs.
    await rm(join(cats, files[1]!));
    const removed = await tick(dir, '--entry', 'decode_only');
    expect(outcomes(removed)).toEqual({ fetch: 'ran', decode: 'ran' });
    expect((await decodeJson()).cat).toBe(12);
    expect((await decodeRecord()).changes).toMatchObject({ added: 0, changed: 0, removed: 1, decoded: 0, reused: total });
    await copyFile(join(dir, 'data', 'train', 'dog', (await readdir(join(dir, 'data', 'train', 'dog')))[0]!), join(cats, files[2]!));
    expect(outcomes(await tick(dir, '--entry', 'decode_only'))).toEqual({ fetch: 'ran', decode: 'ran' });
    expect((await decodeRecord()).changes).toMatchObject({ added: 0, changed: 1, removed: 0, decoded: 1, reused: total - 1 });
    expect(outcomes(await tick(dir, '--entry', 'decode_only'))).toEqual({ fetch: 'cached', decode: 'cached' });
  });
});

describe('SIGTERM during a scheduled training run', () => {
  test('exits 0, leaves a store that verifies, and the next tick resumes from the checkpoint', async () => {
    const dir = await workspaceWith('sigterm', pipelineYaml('data', { epochs: 12 }, '  often:\n    cron: "* * * * * *"\n'));
    let signalled = false;
    const stopped = await runCli(['schedule', '--entry', 'often'], {
      cwd: dir,
      onOutput: (chunk, child) => {
        if (!signalled && /\[train\] Epoch 2\/12 - /.test(chunk)) {
          signalled = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(signalled).toBe(true);
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toMatch(/received SIGTERM: taking no more ticks; stopping the running 'often' run/);
    expect(stopped.stdout).toMatch(/^aborted\s+train\s/m);
    expect(stopped.stdout).toMatch(/^tick often: interrupted /m);
    const history = JSON.parse((await runCli(['runs', '--json', '--limit', '0'], { cwd: dir })).stdout) as RunRecord[];
    // Ticks that fired during the run were skipped; exactly one run started.
    const started = history.filter((r) => r.outcome !== 'skipped');
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ outcome: 'interrupted', trigger: { entry: 'often', result: 'interrupted' } });
    await expect(readdir(join(dir, 'artifacts', 'lock'))).rejects.toMatchObject({ code: 'ENOENT' });

    const verify = await runCli(['verify'], { cwd: dir });
    expect(verify.code).toBe(0);

    const next = await runCli(['schedule', '--once', '--entry', 'nightly'], { cwd: dir });
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(/\[train\] resuming after epoch (\d+)\/12 from checkpoint/);
    expect(outcomes(await latestRecord(dir))).toEqual({ fetch: 'cached', decode: 'cached', normalize: 'cached', train: 'ran', evaluate: 'ran' });
    const info = JSON.parse(await readFile(join(dir, 'artifacts', 'stages', 'train', 'train.json'), 'utf8')) as { resumed_after_epoch: number };
    expect(info.resumed_after_epoch).toBeGreaterThanOrEqual(2);
  });
});

describe('warm starts', () => {
  test('init_from: current trains from scratch until a model is promoted, then from it, keyed on it', async () => {
    const dir = await workspaceWith('warm', pipelineYaml('data', { init_from: 'current' }, 'promote:\n  evaluate: evaluate\n'));
    const first = await runCli(['schedule', '--once', '--entry', 'nightly'], { cwd: dir });
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/\[train\] init_from: current, but no model has been promoted yet: training from scratch/);
    expect(first.stdout).toMatch(/^promote: promoted the new model to models\/current .*no current model yet/m);
    const info = JSON.parse(await readFile(join(dir, 'models', 'current', 'model-info.json'), 'utf8')) as { trainKey: string };

    // The promoted model is an input of the next training: its key changed.
    const dry = await runCli(['run', '--dry-run'], { cwd: dir });
    expect(dry.stdout).toMatch(/^cached\s+normalize\s/m);
    expect(dry.stdout).toMatch(/^run\s+train\s.*runtime changed/m);

    const second = await runCli(['schedule', '--once', '--entry', 'nightly'], { cwd: dir });
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/\[train\] initial weights from the current model \(.*models\/history\/.+\)/);
    const record = await latestRecord(dir);
    expect(record.stages.find((s) => s.stage === 'train')!.key).not.toBe(info.trainKey);
    expect(record.promotion?.decision).toMatch(/^(promoted|kept)$/);
    expect(record.promotion?.champion).toEqual(expect.any(Number));
  });
});
