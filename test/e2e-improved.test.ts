// pipelines/improved.yaml end to end through the built CLI, in one workspace with the default
// pipeline.yaml, on a small real CIFAR-10 subset with short training: its store is the
// workspace's, the shared data stages are computed once for both pipelines, neither pipeline's
// results displace the other's, and its report shows the default pipeline's evaluations next to
// its own once they exist.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import type { ReportData } from '../lib/report/model.js';
import { runCli } from './helpers/cli.js';
import { cifarSource, extractSubset } from './helpers/dataset.js';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const IMPROVED = ['--config', 'pipelines/improved.yaml'];

let dir: string;
let dataSets: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'e2e-improved-'));
  const source = await cifarSource({ perClassTrain: 40, perClassTest: 10 });
  await extractSubset(source.archive, join(dir, 'tree'), 40, 10);
  const archive = join(dir, 'cifar-subset.tar.gz');
  await tar.create({ gzip: true, file: archive, cwd: join(dir, 'tree') }, ['train', 'test']);
  const md5 = createHash('md5')
    .update(await readFile(archive))
    .digest('hex');
  await copyFile(join(REPO, 'pipeline.yaml'), join(dir, 'pipeline.yaml'));
  await mkdir(join(dir, 'pipelines'));
  await copyFile(join(REPO, 'pipelines', 'improved.yaml'), join(dir, 'pipelines', 'improved.yaml'));
  dataSets = ['--set', `fetch.url=${archive}`, '--set', `fetch.md5=${md5}`];
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const readJson = async <T>(...path: string[]): Promise<T> => JSON.parse(await readFile(join(dir, ...path), 'utf8')) as T;

describe('pipelines/improved.yaml beside pipeline.yaml', () => {
  test('one store, shared data stages, separate results; the report compares with the default pipeline', async () => {
    const improvedSets = [...dataSets, '--set', 'train_improved.epochs=2'];
    const first = await runCli(['run', '--backend', 'wasm', ...IMPROVED, ...improvedSets], { cwd: dir });
    expect(first.code).toBe(0);
    for (const stage of ['fetch', 'decode', 'normalize', 'train_improved', 'evaluate_improved', 'report_improved']) {
      expect(first.stdout).toMatch(new RegExp(`^ran\\s+${stage}\\s`, 'm'));
    }
    // The store is the workspace's (workspace: ..), not one beside the pipeline file.
    expect(existsSync(join(dir, 'artifacts', 'stages', 'train_improved', 'train.json'))).toBe(true);
    expect(existsSync(join(dir, 'pipelines', 'artifacts'))).toBe(false);
    const train = await readJson<Record<string, unknown>>('artifacts', 'stages', 'train_improved', 'train.json');
    expect(train).toMatchObject({
      epochs: 2,
      label_smoothing: 0.1,
      weight_decay: 0.05,
      batch_augment: { crop_padding: 4, fill_mode: 'reflect', horizontal_flip: true },
      params: { total: 1_676_842 },
    });
    // Nothing to compare with yet: said, not failed.
    expect(first.stderr + first.stdout).toMatch(/compare_with evaluate: no result in this store yet/);
    const alone = await readJson<ReportData>('artifacts', 'stages', 'report_improved', 'report.json');
    expect(alone.evaluations.map((e) => e.stage)).toEqual(['evaluate_improved']);

    // The default pipeline in the same workspace: the data stages are the same results.
    const defaults = await runCli(
      [
        'run',
        '--backend',
        'wasm',
        ...dataSets,
        '--set',
        'train.epochs=1',
        '--set',
        'train_aug.epochs=1',
        '--set',
        'augment.copies=1',
        '--set',
        'augment.preview_count=2',
      ],
      { cwd: dir },
    );
    expect(defaults.code).toBe(0);
    for (const stage of ['fetch', 'decode', 'normalize']) expect(defaults.stdout).toMatch(new RegExp(`^cached\\s+${stage}\\s`, 'm'));
    for (const stage of ['train', 'evaluate', 'train_aug', 'evaluate_aug', 'report']) expect(defaults.stdout).toMatch(new RegExp(`^ran\\s+${stage}\\s`, 'm'));

    // Back to the improved pipeline: only its report reruns, now next to the default's results.
    const second = await runCli(['run', '--backend', 'wasm', ...IMPROVED, ...improvedSets], { cwd: dir });
    expect(second.code).toBe(0);
    for (const stage of ['fetch', 'decode', 'normalize', 'train_improved', 'evaluate_improved']) {
      expect(second.stdout).toMatch(new RegExp(`^cached\\s+${stage}\\s`, 'm'));
    }
    expect(second.stdout).toMatch(/^ran\s+report_improved\s/m);
    const report = await readJson<ReportData>('artifacts', 'stages', 'report_improved', 'report.json');
    const metrics = (stage: string) => readJson<{ test_accuracy: number }>('artifacts', 'stages', stage, 'metrics.json');
    expect(report.evaluations.map((e) => [e.stage, e.accuracy, e.compared !== undefined])).toEqual([
      ['evaluate_improved', (await metrics('evaluate_improved')).test_accuracy, false],
      ['evaluate', (await metrics('evaluate')).test_accuracy, true],
      ['evaluate_aug', (await metrics('evaluate_aug')).test_accuracy, true],
    ]);
    expect(report.comparisons.map((c) => [c.before, c.after])).toEqual([
      ['evaluate', 'evaluate_improved'],
      ['evaluate_aug', 'evaluate_improved'],
    ]);
    expect(report.comparisons[0]!.classes).toHaveLength(10);
    // Learning curves: this pipeline's 2 epochs, the default's two phases (dashed) on one axis.
    expect(report.curves.phases.map((p) => [p.stage, p.first, p.last, p.compared ?? false])).toEqual([
      ['train', 1, 1, true],
      ['train_improved', 1, 2, false],
      ['train_aug', 2, 2, true],
    ]);
    // The model card speaks of this pipeline's model only.
    expect(JSON.stringify(report.model_card)).not.toContain('evaluate_aug');
    const md = await readFile(join(dir, 'artifacts', 'stages', 'report_improved', 'report.md'), 'utf8');
    expect(md).toMatch(
      /- \*\*evaluate_improved\*\* \(train_improved\): Test accuracy \*\*[\d.]+\*\*, Test score [\d.]+ \([+-][\d.]+ vs evaluate, [+-][\d.]+ vs evaluate_aug\)/,
    );
    expect(md).toMatch(/- \*\*evaluate_aug\*\* \(train_aug\): .*compared: another pipeline's result in this store/);

    // Unchanged: everything cached, for both pipelines; neither displaced the other's latest results.
    const third = await runCli(['run', '--backend', 'wasm', ...IMPROVED, ...improvedSets], { cwd: dir });
    expect(third.code).toBe(0);
    expect(third.stdout).not.toMatch(/^ran\s/m);
    const status = await runCli(
      [
        'status',
        '--backend',
        'wasm',
        ...dataSets,
        '--set',
        'train.epochs=1',
        '--set',
        'train_aug.epochs=1',
        '--set',
        'augment.copies=1',
        '--set',
        'augment.preview_count=2',
      ],
      { cwd: dir },
    );
    expect(status.code).toBe(0);
    expect(status.stdout).not.toMatch(/stale/);
  });
});
