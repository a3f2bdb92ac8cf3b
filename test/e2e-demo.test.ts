// pipelines/demo.yaml, the README's quick-start demo, end to end through the built CLI: on the
// CIFAR-10 JPEG archive (or generated stand-in data), with the subset and epochs cut further so the
// test stays short. It runs every stage into the workspace's store (workspace: ..), caps the
// images per class as its decode says, ends with a test accuracy and the report's path, and a
// second run is all cached. The demo's own figures (what the README quotes) are checked in the file.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runCli } from './helpers/cli.js';
import { cifarSource, CLASSES } from './helpers/dataset.js';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const DEMO = join(REPO, 'pipelines', 'demo.yaml');
const STAGES = ['fetch', 'demo_decode', 'demo_normalize', 'demo_train', 'demo_evaluate', 'demo_report'];
const TRAIN_PER_CLASS = 20;
const TEST_PER_CLASS = 5;

let dir: string;
let args: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'e2e-demo-'));
  await mkdir(join(dir, 'pipelines'));
  await copyFile(DEMO, join(dir, 'pipelines', 'demo.yaml'));
  const source = await cifarSource({ perClassTrain: TRAIN_PER_CLASS, perClassTest: TEST_PER_CLASS });
  args = [
    'run',
    '--backend',
    'wasm',
    '--config',
    'pipelines/demo.yaml',
    '--set',
    `fetch.url=${source.archive}`,
    '--unset',
    'fetch.md5',
    '--set',
    `demo_decode.max_per_class.train=${TRAIN_PER_CLASS}`,
    '--set',
    `demo_decode.max_per_class.test=${TEST_PER_CLASS}`,
    '--set',
    'demo_train.epochs=1',
  ];
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const readJson = async <T>(...path: string[]): Promise<T> => JSON.parse(await readFile(join(dir, ...path), 'utf8')) as T;

describe('pipelines/demo.yaml', () => {
  test('is what the README says: the default data, 500/100 images per class, 5 epochs, its own stage names', async () => {
    const demo = parseYaml(await readFile(DEMO, 'utf8')) as {
      workspace: string;
      stages: Record<string, { uses: string; with?: Record<string, unknown> }>;
    };
    const defaults = parseYaml(await readFile(join(REPO, 'pipeline.yaml'), 'utf8')) as typeof demo;
    expect(demo.workspace).toBe('..');
    expect(Object.keys(demo.stages)).toEqual(STAGES);
    // The same fetch as pipeline.yaml: one download for both, and the same key.
    expect(demo.stages.fetch).toEqual(defaults.stages.fetch);
    expect(demo.stages.demo_decode!.with).toEqual({ max_per_class: { train: 500, test: 100 } });
    expect(demo.stages.demo_train!.with).toMatchObject({ epochs: 5, batch_size: 128 });
  });

  test('runs end to end on the archive: every stage, the capped dataset, a test accuracy, the report; then all cached', async () => {
    const first = await runCli(args, { cwd: dir });
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    for (const stage of STAGES) expect(first.stdout).toMatch(new RegExp(`^ran\\s+${stage}\\s`, 'm'));
    expect(first.stdout).toMatch(/^demo_evaluate\s+Test accuracy \d\.\d{4}\s+Test score \d+\.\d{4}\s+\(demo_train\)$/m);
    expect(first.stdout).toContain('report: artifacts/stages/demo_report/index.html');

    // The store is the workspace's, next to pipelines/ (workspace: ..).
    expect(existsSync(join(dir, 'artifacts', 'stages', 'demo_report', 'index.html'))).toBe(true);
    expect(existsSync(join(dir, 'pipelines', 'artifacts'))).toBe(false);
    const decode = await readJson<{ max_per_class: unknown; counts: Record<string, { total: number; per_class: Record<string, number> }> }>(
      'artifacts',
      'stages',
      'demo_decode',
      'decode.json',
    );
    expect(decode.max_per_class).toEqual({ train: TRAIN_PER_CLASS, test: TEST_PER_CLASS });
    for (const c of CLASSES) {
      expect(decode.counts.train!.per_class[c]).toBe(TRAIN_PER_CLASS);
      expect(decode.counts.test!.per_class[c]).toBe(TEST_PER_CLASS);
    }
    const metrics = await readJson<{ test_accuracy: number; count?: number }>('artifacts', 'stages', 'demo_evaluate', 'metrics.json');
    expect(metrics.test_accuracy).toBeGreaterThanOrEqual(0);
    expect(metrics.test_accuracy).toBeLessThanOrEqual(1);

    const again = await runCli(args, { cwd: dir });
    expect(again.code).toBe(0);
    for (const stage of STAGES) expect(again.stdout).toMatch(new RegExp(`^cached\\s+${stage}\\s`, 'm'));
  });
});
