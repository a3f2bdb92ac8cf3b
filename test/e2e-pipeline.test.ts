// The reference workflow end to end through the built CLI: the repository's own pipeline.yaml
// (fetch → decode → normalize → train → evaluate; augment → train_aug → evaluate_aug), on a small
// real CIFAR-10 subset downloaded from a local HTTP server, with short training.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { appendFile, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import type { ReportData } from '../lib/report/model.js';
import { browserAvailable, expectReadableReport, inspectReport } from './helpers/browser.js';
import { runCli } from './helpers/cli.js';
import { cifarSource, extractSubset } from './helpers/dataset.js';
import { TestFileServer } from './helpers/http-server.js';

const REPO_PIPELINE = resolve(new URL('../../pipeline.yaml', import.meta.url).pathname);
const STAGES = ['fetch', 'decode', 'normalize', 'train', 'evaluate', 'augment', 'train_aug', 'evaluate_aug', 'report'];

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
  const md5 = createHash('md5')
    .update(await readFile(archive))
    .digest('hex');
  server = await TestFileServer.start();
  const url = server.serve('/cifar-subset.tar.gz', archive);
  await copyFile(REPO_PIPELINE, join(dir, 'pipeline.yaml'));
  sets = [`fetch.url=${url}`, `fetch.md5=${md5}`, 'train.epochs=1', 'train_aug.epochs=1', 'augment.copies=1', 'augment.preview_count=2'].flatMap((s) => [
    '--set',
    s,
  ]);
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

    // The run ends with the headline metrics and where the report is.
    const metricsOf = async (stage: string) =>
      JSON.parse(await readFile(join(dir, 'artifacts', 'stages', stage, 'metrics.json'), 'utf8')) as { test_accuracy: number; test_loss: number };
    const phase1 = await metricsOf('evaluate');
    const phase2 = await metricsOf('evaluate_aug');
    expect(first.stdout).toContain(`evaluate      Test accuracy ${phase1.test_accuracy.toFixed(4)}  Test score ${phase1.test_loss.toFixed(4)}  (train)`);
    expect(first.stdout).toContain(`evaluate_aug  Test accuracy ${phase2.test_accuracy.toFixed(4)}  Test score ${phase2.test_loss.toFixed(4)}  (train_aug)`);
    expect(first.stdout).toMatch(/^report: artifacts\/stages\/report\/index\.html$/m);
    const reportDir = join(dir, 'artifacts', 'stages', 'report');
    const report = JSON.parse(await readFile(join(reportDir, 'report.json'), 'utf8')) as ReportData;
    // Phase 2 continues phase 1's epoch axis; the two phases are compared class by class.
    expect(report.curves.phases.map((p) => [p.stage, p.first, p.last])).toEqual([
      ['train', 1, 1],
      ['train_aug', 2, 2],
    ]);
    expect(report.comparisons.map((c) => [c.before, c.after])).toEqual([['evaluate', 'evaluate_aug']]);
    expect(report.comparisons[0]!.classes).toHaveLength(10);
    expect(report.evaluations.map((e) => e.accuracy)).toEqual([phase1.test_accuracy, phase2.test_accuracy]);
    expect(report.data.decode?.counts?.train?.total).toBe(400);
    expect(report.stages.filter((s) => s.stage !== 'report').map((s) => s.outcome)).toEqual(Array(8).fill('ran'));
    expect(report.history.covers).toHaveLength(1);
    const md = await readFile(join(reportDir, 'report.md'), 'utf8');
    expect(md).toContain(`Test accuracy **${phase2.test_accuracy.toFixed(4)}**`);
    if (browserAvailable('e2e-pipeline report')) {
      const facts = await inspectReport(join(reportDir, 'index.html'), 'report-e2e-default-pipeline.png');
      expectReadableReport(facts, report.data.classes);
      expect(facts.confusion).toHaveLength(2);
      expect(facts.confusion[0]!.expected.flat().reduce((a, b) => a + b, 0)).toBe(100);
    }

    const second = await runCli(['run', '--backend', 'wasm', ...sets], { cwd: dir });
    expect(second.code).toBe(0);
    for (const stage of STAGES) expect(second.stdout).toMatch(new RegExp(`^cached\\s+${stage}\\s`, 'm'));
    expect(second.stdout).toMatch(/^report: artifacts\/stages\/report\/index\.html$/m);

    // A changed evaluate param: evaluate and the report rerun; the history shows both runs and why.
    const third = await runCli(['run', '--backend', 'wasm', ...sets, '--set', 'evaluate.top_mistakes=5'], { cwd: dir });
    expect(third.code).toBe(0);
    expect(third.stdout).toMatch(/^ran\s+evaluate\s/m);
    expect(third.stdout).toMatch(/^ran\s+report\s/m);
    const again = JSON.parse(await readFile(join(reportDir, 'report.json'), 'utf8')) as ReportData;
    // The second run found everything cached: folded into the first row, not a row of its own.
    expect(again.history.rows).toHaveLength(2);
    expect(again.history.covers).toHaveLength(3);
    expect(again.history.rows[0]!.repeated).toHaveLength(1);
    expect(again.history.rows[1]!.changes).toEqual(['evaluate: params changed: top_mistakes 20 → 5']);
    expect(again.history.rows.map((r) => r.metrics.evaluate?.accuracy)).toEqual([phase1.test_accuracy, phase1.test_accuracy]);

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
