// Evaluate and predict throughput (images/s): the path before the native backend (wasm) against the
// native path (issue 27), measured in one run.
//
//   node dist/bench/infer.js [--data ARCHIVE] [--before DIR] [--rounds 2] [--batch-size 128]
//                            [--predict-batch-size 64] [--work DIR]
//
// Set-up (not timed): the archive's test/ JPEGs (CIFAR-10: 10,000) unpacked into a folder; fetch →
// decode → normalize run by this build's CLI in a scratch workspace (evaluate's dataset); a model
// bundle of the seed CNN with its initial weights (throughput does not depend on the weights).
//
// - evaluate: the evaluate stage's loop (datasetRows + predictRows on the test split, then loss and
//   accuracy) in a child process per measurement, after one warm-up batch; backend wasm vs native.
// - predict: `pipeline predict FOLDER --out FILE` end to end, as a user runs it (node start, model
//   load, decoding on worker threads, classification, output): the --before checkout (default
//   /work/main; it must predate the pixel-map change, i.e. the per-pixel JavaScript loop) on
//   --backend wasm against this build on --backend native; this build on wasm is printed too, so
//   the backend's share of the gain shows.
// Configurations alternate (old, new, old, new…) so a machine whose speed drifts hits both alike;
// the ratio is of the medians. Nothing here is a timed assertion: it prints figures.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatasetReader } from '../lib/dataset/reader.js';
import { splitRange } from '../lib/dataset/format.js';
import { extractArchive } from '../lib/fetch/extract.js';
import { BUNDLE_FILE, BUNDLE_FORMAT, BUNDLE_VERSION, MODEL_FILE, bundleNormalization, type ModelBundle } from '../lib/model/bundle.js';
import { datasetRows, oneHotOf, pixelTable, type Normalization } from '../lib/model/data.js';
import { loadModel, saveModel } from '../lib/model/io.js';
import { lossAndAccuracy, predictRows } from '../lib/model/predict.js';
import { initBackend, type BackendPreference } from '../lib/tf/backend.js';
import { buildSeedModel } from './seed-model.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..'); // dist/bench → the checkout
const SELF = fileURLToPath(import.meta.url);

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

interface EvaluateResult {
  backend: string;
  images: number;
  seconds: number;
  cpuSeconds: number;
  accuracy: number;
}

/** In a child: the evaluate stage's loop on the test split, timed after one warm-up batch. */
async function childEvaluate(): Promise<void> {
  const backend = await initBackend(arg('backend', 'wasm') as BackendPreference);
  const reader = await DatasetReader.open(arg('dataset', ''));
  try {
    const norm = JSON.parse(await readFile(arg('normalization', ''), 'utf8')) as Normalization;
    const [start, end] = splitRange(reader.manifest, 'test');
    const index = Int32Array.from({ length: end - start }, (_, i) => start + i);
    const rows = datasetRows(reader, index, pixelTable(norm, reader.manifest.shape[2]), 'test');
    const targets = oneHotOf(reader, index);
    const model = await loadModel(arg('model', ''));
    const batchSize = Number(arg('batch-size', '128'));
    await predictRows(model, { ...rows, count: Math.min(batchSize, rows.count) }, batchSize); // warm-up: primitives, JIT
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const probs = await predictRows(model, rows, batchSize);
    const { accuracy } = lossAndAccuracy(probs, targets, rows.classes);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(c0);
    const result: EvaluateResult = { backend: backend.name, images: rows.count, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, accuracy };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    model.dispose();
  } finally {
    reader.close();
  }
}

function runEvaluate(backend: string, dataset: string, normalization: string, model: string, batchSize: number): EvaluateResult {
  const args = [SELF, '--child-evaluate', '--backend', backend, '--dataset', dataset, '--normalization', normalization, '--model', model];
  const out = execFileSync(process.execPath, [...args, '--batch-size', String(batchSize)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!) as EvaluateResult;
}

interface PredictResult {
  seconds: number;
  /** CPU time of the predict process and its threads. */
  cpuSeconds: number;
}

/** `pipeline predict` of `checkout` on the folder, end to end. */
function runPredict(checkout: string, backend: string, folder: string, bundle: string, out: string, batchSize: number, cwd: string): PredictResult {
  const cli = join(checkout, 'dist', 'cli', 'main.js');
  const args = [cli, 'predict', folder, '--model', bundle, '--backend', backend, '--batch-size', String(batchSize), '--out', out];
  childCpuSeconds();
  const t0 = performance.now();
  const run = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const seconds = (performance.now() - t0) / 1000;
  if (run.status !== 0) throw new Error(`${checkout} predict --backend ${backend} exited ${run.status}: ${run.stderr}`);
  return { seconds, cpuSeconds: childCpuSeconds() };
}

let childCpuSoFar = 0;
/** CPU seconds of waited-for children since the previous call (/proc/self/stat cutime + cstime, in ticks of 1/100 s): node has no API for it. */
function childCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const total = (Number(fields[13]) + Number(fields[14])) / 100; // fields 16 and 17 of proc(5), counted from field 3
    const since = total - childCpuSoFar;
    childCpuSoFar = total;
    return since;
  } catch {
    return NaN;
  }
}

async function unpackTestImages(archive: string, dest: string): Promise<string> {
  await extractArchive(archive, archive.endsWith('.zip') ? 'zip' : 'tar.gz', dest, { label: archive });
  const test = join(dest, 'test');
  if (!existsSync(test)) throw new Error(`${archive} has no test/ folder`);
  return test;
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

/** fetch → decode → normalize of the archive by this build's CLI: the dataset and normalization evaluate reads. */
async function prepareDataset(archive: string, workspace: string): Promise<{ dataset: string; normalization: string }> {
  const cli = join(ROOT, 'dist', 'cli', 'main.js');
  const yaml = `stages:\n  fetch:\n    uses: fetch\n    with: {url: ${JSON.stringify(resolve(archive))}}\n  decode:\n    uses: decode\n    needs: [fetch]\n  normalize:\n    uses: normalize\n    needs: [decode]\n    with: {method: scale, validation_split: 0.2, seed: 42}\n`;
  await writeFile(join(workspace, 'pipeline.yaml'), yaml);
  execFileSync(process.execPath, [cli, 'run'], { cwd: workspace, stdio: ['ignore', 'ignore', 'inherit'] });
  const stage = join(workspace, 'artifacts', 'stages', 'normalize');
  return { dataset: join(stage, 'dataset'), normalization: join(stage, 'normalization.json') };
}

async function writeBundle(dir: string, classes: string[]): Promise<void> {
  await initBackend('wasm');
  const model = buildSeedModel();
  await saveModel(model, dir);
  model.dispose();
  const bundle: ModelBundle = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    model: MODEL_FILE,
    classes,
    input: { size: [32, 32, 3], layout: 'NHWC', channel_order: 'RGB', resize: 'bilinear' },
    normalization: bundleNormalization({ method: 'scale', scale: 1 / 255 }, 3),
    output: 'float32 [N, classes]: the probability of each class, in the order of classes',
    training: { stage: 'bench', data_digest: '', data: 'none: initial weights', augmented: null, train_count: 0, val_count: 0, epochs: 0 },
    metrics: { epoch: 0, loss: null, acc: null, val_loss: null, val_acc: null },
  };
  await writeFile(join(dir, BUNDLE_FILE), JSON.stringify(bundle, null, 2));
}

async function main(): Promise<void> {
  const archive = arg('data', '/work/shared/datasets/cifar10-jpeg.tar.gz');
  const before = resolve(arg('before', '/work/main'));
  const rounds = Number(arg('rounds', '2'));
  const batchSize = Number(arg('batch-size', '128'));
  const predictBatch = Number(arg('predict-batch-size', '64'));
  const work = arg('work', '') || (await mkdtemp(join(tmpdir(), 'bench-infer-')));
  const ownWork = !process.argv.includes('--work');
  try {
    console.log(`load average at start: ${load()}`);
    const workspace = join(work, 'ws');
    await mkdir(workspace, { recursive: true });
    const { dataset, normalization } = await prepareDataset(archive, workspace);
    const folder = existsSync(join(work, 'images', 'test')) ? join(work, 'images', 'test') : await unpackTestImages(archive, join(work, 'images'));
    const images = await countFiles(folder);
    const reader = await DatasetReader.open(dataset);
    const classes = reader.manifest.classes;
    reader.close();
    const bundle = join(work, 'bundle');
    if (!existsSync(join(bundle, BUNDLE_FILE))) await writeBundle(bundle, classes);
    const model = bundle;
    const beforePredict = join(before, 'dist', 'lib', 'predict', 'predict.js');
    if (!existsSync(beforePredict)) throw new Error(`--before ${before}: no built checkout there (dist/lib/predict/predict.js)`);
    if ((await readFile(beforePredict, 'utf8')).includes('PixelMapper')) {
      console.log(`warning: --before ${before} already maps pixels in wasm: it is not "before"; build a checkout of an earlier commit and name it`);
    }
    console.log(`${images} test images; evaluate batch ${batchSize}, predict batch ${predictBatch}; ${rounds} rounds; before = ${before}`);

    const evalRuns: Record<string, EvaluateResult[]> = { wasm: [], native: [] };
    const predictRuns: Record<string, PredictResult[]> = { 'before, wasm': [], 'this, wasm': [], 'this, native': [] };
    for (let r = 0; r < rounds; r++) {
      // Alternate which configuration goes first, so a trend favours neither.
      const evalOrder = r % 2 === 0 ? ['wasm', 'native'] : ['native', 'wasm'];
      for (const b of evalOrder) {
        const e = runEvaluate(b, dataset, normalization, model, batchSize);
        evalRuns[b]!.push(e);
        console.log(
          `round ${r + 1} evaluate ${b.padEnd(6)} (${e.backend}): ${(e.images / e.seconds).toFixed(0)} img/s, ${(e.images / e.cpuSeconds).toFixed(0)} img/cpu-s (load ${load()})`,
        );
      }
      const predictOrder: Array<[string, string, string]> = [
        ['before, wasm', before, 'wasm'],
        ['this, native', ROOT, 'native'],
        ['this, wasm', ROOT, 'wasm'],
      ];
      if (r % 2 === 1) predictOrder.reverse();
      for (const [label, checkout, backend] of predictOrder) {
        const p = runPredict(checkout, backend, folder, bundle, join(work, 'out.csv'), predictBatch, workspace);
        predictRuns[label]!.push(p);
        console.log(
          `round ${r + 1} predict ${label.padEnd(12)}: ${(images / p.seconds).toFixed(0)} img/s end to end (${p.seconds.toFixed(2)} s, ${p.cpuSeconds.toFixed(1)} CPU s) (load ${load()})`,
        );
      }
    }
    const evalRate = (b: string) => median(evalRuns[b]!.map((e) => e.images / e.seconds));
    const predictRate = (l: string) => median(predictRuns[l]!.map((p) => images / p.seconds));
    console.log('');
    console.log('| | before (wasm) | native | ratio |');
    console.log('|---|---|---|---|');
    console.log(
      `| evaluate, img/s | ${evalRate('wasm').toFixed(0)} | ${evalRate('native').toFixed(0)} | **${(evalRate('native') / evalRate('wasm')).toFixed(2)}×** |`,
    );
    console.log(
      `| predict end to end, img/s | ${predictRate('before, wasm').toFixed(0)} | ${predictRate('this, native').toFixed(0)} | **${(predictRate('this, native') / predictRate('before, wasm')).toFixed(2)}×** |`,
    );
    console.log(`(this build's predict on wasm: ${predictRate('this, wasm').toFixed(0)} img/s; medians of ${rounds} runs; load at end ${load()})`);
  } finally {
    if (ownWork) await rm(work, { recursive: true, force: true });
  }
}

if (process.argv.includes('--child-evaluate')) await childEvaluate();
else await main();
