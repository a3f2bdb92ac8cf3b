// The reference workflow end to end through the built CLI: the repository's own pipeline.yaml
// (fetch → decode → normalize → train → evaluate; augment → train_aug → evaluate_aug), on a small
// real CIFAR-10 subset downloaded from a local HTTP server, with short training.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { appendFile, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import { runCli } from './helpers/cli.js';
import { cifarSource, extractSubset } from './helpers/dataset.js';
import { TestFileServer } from './helpers/http-server.js';

const REPO_PIPELINE = resolve(new URL('../../pipeline.yaml', import.meta.url).pathname);
const STAGES = ['fetch', 'decode', 'normalize', 'train', 'evaluate', 'augment', 'train_aug', 'evaluate_aug'];

let dir: string;
let server: TestFileServer;
let sets: string[];
let archive: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'e2e-pipeline-'));
  const source = await cifarSource({ perClassTrain: 40, perClassTest: 10 });
  await extractSubset(source.archive, join(dir, 'tree'), 40, 10);
  archive = join(dir, 'cifar-subset.tar.gz');
  await tar.create({ gzip: true, file: archive, cwd: join(dir, 'tree') }, ['train', 'test']);
  const md5 = createHash('md5').update(await readFile(archive)).digest('hex');
  server = await TestFileServer.start();
  const url = server.serve('/cifar-subset.tar.gz', archive);
  await copyFile(REPO_PIPELINE, join(dir, 'pipeline.yaml'));
  sets = [
    `fetch.url=${url}`,
    `fetch.md5=${md5}`,
    'train.epochs=1',
    'train_aug.epochs=1',
    'augment.copies=1',
    'augment.preview_count=2',
  ].flatMap((s) => ['--set', s]);
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the default pipeline', () => {
  test('runs every stage, then is fully cached, then reruns only what a param change touches', async () => {
    const first = await runCli(['run', '--backend', 'wasm', ...sets], { cwd: dir });
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    for (const stage of STAGES) expect(first.stdout).toMatch(new RegExp(`^ran\\s+${stage}\\s`, 'm'));

    for (const stage of ['evaluate', 'evaluate_aug']) {
      const metrics = JSON.parse(await readFile(join(dir, 'artifacts', 'stages', stage, 'metrics.json'), 'utf8')) as {
        test_accuracy: number;
        test_loss: number;
        confusion_matrix: number[][];
      };
      expect(metrics.test_accuracy).toBeGreaterThanOrEqual(0);
      expect(metrics.test_accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(metrics.test_loss)).toBe(true);
      // Every test image is counted once in the confusion matrix.
      expect(metrics.confusion_matrix.flat().reduce((a, b) => a + b, 0)).toBe(100);
    }
    const trainAug = JSON.parse(await readFile(join(dir, 'artifacts', 'stages', 'train_aug', 'train.json'), 'utf8')) as {
      init_from: string;
      backend: string;
    };
    expect(trainAug.init_from).toBe('train');
    expect(trainAug.backend).toBe('wasm');

    const second = await runCli(['run', '--backend', 'wasm', ...sets], { cwd: dir });
    expect(second.code).toBe(0);
    for (const stage of STAGES) expect(second.stdout).toMatch(new RegExp(`^cached\\s+${stage}\\s`, 'm'));

    const dry = await runCli(['run', '--dry-run', '--backend', 'wasm', ...sets, '--set', 'augment.seed=7'], { cwd: dir });
    expect(dry.code).toBe(0);
    for (const stage of ['fetch', 'decode', 'normalize', 'train', 'evaluate']) {
      expect(dry.stdout).toMatch(new RegExp(`^cached\\s+${stage}\\s`, 'm'));
    }
    expect(dry.stdout).toMatch(/^run\s+augment\s.*seed 42 → 7/m);
    for (const stage of ['train_aug', 'evaluate_aug']) expect(dry.stdout).toMatch(new RegExp(`^run\\s+${stage}\\s`, 'm'));
  });
});

describe('a remote without a declared checksum', () => {
  test('is keyed on its validators: an unchanged remote downloads nothing, a changed one reruns downstream', async () => {
    const ws = await mkdtemp(join(tmpdir(), 'e2e-etag-'));
    try {
      const copy = join(ws, 'served.tar.gz');
      await copyFile(archive, copy);
      const url = server.serve('/etag/cifar.tar.gz', copy);
      await writeFile(
        join(ws, 'pipeline.yaml'),
        `stages:\n  fetch:\n    uses: fetch\n    with: {url: "${url}"}\n  decode:\n    uses: decode\n    needs: [fetch]\n`,
      );
      server.reset();
      const first = await runCli(['run'], { cwd: ws });
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/^ran\s+fetch\s/m);
      expect(server.requestsFor('GET').length).toBeGreaterThan(0);

      server.reset();
      const second = await runCli(['run'], { cwd: ws });
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/^cached\s+fetch\s/m);
      expect(second.stdout).toMatch(/^cached\s+decode\s/m);
      expect(server.requestsFor('GET')).toEqual([]);
      expect(server.requestsFor('HEAD').length).toBeGreaterThan(0);
      expect(server.bytesSent).toBe(0);

      // A changed remote (new size, new ETag): fetch downloads again and decode follows.
      await appendFile(copy, Buffer.alloc(1024));
      const third = await runCli(['run', '--dry-run'], { cwd: ws });
      expect(third.stdout).toMatch(/^run\s+fetch\s/m);
      expect(third.stdout).toMatch(/^run\s+decode\s/m);
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  });
});
