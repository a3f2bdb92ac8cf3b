// Benchmark (issue 24, augmented copies as shards): the CIFAR-10 JPEG archive through the built CLI,
// fetch → decode → normalize (set up, not measured), then augment (`--copies` copies) and a train
// stage on them (`--epochs`, a small conv net, wasm, 1 worker), for this build and (with --before)
// another one. Per measured stage: wall time of its own process, the stage's time from the run
// record and peak RSS (/usr/bin/time); then augment's output bytes and the store's, and the loader
// alone (this process): img/s of batches of 64 rows of one copy made into model inputs, from the
// copies dataset (crc-checked) or, for a build before it, from copy_000.npy read row by row.
//   npx tsc -p . && node dist/bench/augment-train.js [--before DIR] [--copies 4] [--epochs 2] [--no-train] [--keep]
// --before DIR: another checkout, built; its dist/cli/main.js is run the same way.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatasetReader } from '../lib/dataset/reader.js';
import { datasetRows, pixelTable } from '../lib/model/data.js';
import { openNpyRows } from '../lib/npy.js';

const PROJECT_ROOT = resolve(new URL('../..', import.meta.url).pathname);
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const ARCHIVE = resolve(opt('--archive') ?? process.env.CIFAR10_JPEG_ARCHIVE ?? join(PROJECT_ROOT, '..', 'shared', 'datasets', 'cifar10-jpeg.tar.gz'));
const BEFORE = opt('--before') ? resolve(opt('--before')!) : undefined;
const COPIES = Number(opt('--copies') ?? 4);
const EPOCHS = Number(opt('--epochs') ?? 2);
const KEEP = args.includes('--keep');
const TRAIN = !args.includes('--no-train');

const PIPELINE = `stages:
  fetch:
    uses: fetch
    with: {url: "${ARCHIVE}"}
  decode:
    uses: decode
    needs: [fetch]
  normalize:
    uses: normalize
    needs: [decode]
  augment:
    uses: augment
    needs: [normalize]
    with: {copies: ${COPIES}, preview_count: 2}
  train_aug:
    uses: train
    needs: [normalize]
    with:
      augmented: augment
      backend: wasm
      workers: 1
      epochs: ${EPOCHS}
      batch_size: 64
      model: [{type: conv2d, filters: 16, kernel_size: 3, activation: relu}, {type: maxPooling2d, pool_size: 2}, {type: flatten}, {type: dense, units: 10, activation: softmax}]
`;

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const line = (label: string, value: string) => console.log(`  ${label.padEnd(36)} ${value}`);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

/** One CLI command in its own process: wall time and peak RSS (/usr/bin/time). */
function timed(cli: string, cwd: string, cliArgs: string[]): { ms: number; peakMb: number; code: number } {
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, cli, ...cliArgs], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const ms = performance.now() - started;
  if (r.status !== 0) console.log(r.stdout.slice(-3000), r.stderr.slice(-3000));
  return { ms, peakMb: Number(r.stderr.trim().split('\n').pop()) / 1024, code: r.status ?? -1 };
}

/** The newest run record's time for `stage`. */
async function stageMs(root: string, stage: string): Promise<number> {
  const dir = join(root, 'artifacts', 'runs');
  const newest = (await readdir(dir))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .pop()!;
  const record = JSON.parse(await readFile(join(dir, newest), 'utf8')) as { stages: Array<{ stage: string; durationMs: number }> };
  return record.stages.find((s) => s.stage === stage)?.durationMs ?? NaN;
}

async function bytesUnder(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const f of await readdir(dir, { recursive: true })) {
    const s = await stat(join(dir, f));
    if (s.isFile()) {
      files++;
      bytes += s.size;
    }
  }
  return { files, bytes };
}

/** Model inputs of one copy's rows, 64 at a time, as training gathers them (no training): img/s. */
async function loaderRate(augmentDir: string): Promise<string> {
  const table = pixelTable({ method: 'scale', scale: 1 / 255 }, 3);
  const batch = 64;
  if (existsSync(join(augmentDir, 'copies'))) {
    const reader = await DatasetReader.open(join(augmentDir, 'copies'));
    const rows = Math.min(reader.count, 40_000);
    const data = datasetRows(
      reader,
      Int32Array.from({ length: rows }, (_, r) => r),
      table,
      'copies',
    );
    const started = performance.now();
    for (let b = 0; b < rows; b += batch) data.gather(Int32Array.from({ length: Math.min(batch, rows - b) }, (_, k) => b + k));
    reader.close();
    return `${Math.round(rows / ((performance.now() - started) / 1000))} img/s (copies/ dataset, crc-checked, ${rows} rows)`;
  }
  const file = openNpyRows(join(augmentDir, 'copy_000.npy'));
  const rows = file.shape[0]!;
  const size = file.rowBytes;
  const pixels = new Uint8Array(size);
  const started = performance.now();
  for (let b = 0; b < rows; b += batch) {
    const n = Math.min(batch, rows - b);
    const out = new Float32Array(n * size);
    for (let i = 0; i < n; i++) {
      file.readRowInto(b + i, pixels);
      for (let j = 0; j < size; j += 3) for (let ch = 0; ch < 3; ch++) out[i * size + j + ch] = table[ch * 256 + pixels[j + ch]!]!;
    }
  }
  file.close();
  return `${Math.round(rows / ((performance.now() - started) / 1000))} img/s (copy_000.npy, ${rows} rows)`;
}

async function benchOne(label: string, checkout: string): Promise<void> {
  const cli = join(checkout, 'dist', 'cli', 'main.js');
  console.log(`\n== ${label}: ${checkout} (load ${load()})`);
  const work = await mkdtemp(join(tmpdir(), 'augment-train-bench-'));
  try {
    await writeFile(join(work, 'pipeline.yaml'), PIPELINE);
    const setup = timed(cli, work, ['run', 'normalize']);
    if (setup.code) return;
    const before = await bytesUnder(join(work, 'artifacts', 'objects'));
    const stageTimes = new Map<string, number>();
    for (const stage of TRAIN ? ['augment', 'train_aug'] : ['augment']) {
      const r = timed(cli, work, ['run', stage]);
      stageTimes.set(stage, await stageMs(work, stage));
      line(`${stage} (process wall)`, `${secs(r.ms)}${r.code ? ` (exit ${r.code})` : ''}`);
      line(`  ${stage} (stage)`, secs(stageTimes.get(stage)!));
      line(`  peak RSS`, `${r.peakMb.toFixed(0)} MB`);
    }
    if (TRAIN) {
      const train = JSON.parse(await readFile(join(work, 'artifacts', 'stages', 'train_aug', 'train.json'), 'utf8')) as {
        train_count: number;
        images_per_second: number;
        prefetch?: { batches_read_ahead: number };
      };
      line(
        'train_aug',
        `${train.train_count} rows/epoch, ${Math.round(train.images_per_second)} img/s, prefetched ${train.prefetch?.batches_read_ahead ?? '-'} batches`,
      );
    }
    const { rows } = JSON.parse(await readFile(join(work, 'artifacts', 'stages', 'augment', 'augment.json'), 'utf8')) as { rows: number };
    line('augment rate', `${Math.round((rows * COPIES) / (stageTimes.get('augment')! / 1000))} img/s (stage time)`);
    line('loader alone, one copy', await loaderRate(join(work, 'artifacts', 'stages', 'augment')));
    const augment = await bytesUnder(join(work, 'artifacts', 'stages', 'augment'));
    line('augment output', `${augment.files} files, ${mb(augment.bytes)}`);
    const after = await bytesUnder(join(work, 'artifacts', 'objects'));
    line('store objects (after normalize)', `${before.files} objects, ${mb(before.bytes)}`);
    line(`store objects (after ${TRAIN ? 'train_aug' : 'augment'})`, `${after.files} objects, ${mb(after.bytes)}`);
  } finally {
    if (!KEEP) await rm(work, { recursive: true, force: true });
    else console.log(`  kept ${work}`);
  }
}

console.log(`augment + train benchmark: ${ARCHIVE}, ${COPIES} copies, ${EPOCHS} epochs (load ${load()})`);
if (BEFORE) await benchOne('before', BEFORE);
await benchOne('after', PROJECT_ROOT);
