// Benchmark (issue 24, augmented copies as shards): the CIFAR-10 JPEG archive through the built CLI,
// fetch → decode → normalize (set up, not measured), then augment (`--copies` copies) and a train
// stage on them (`--epochs`, a small conv net, wasm, 1 worker), for this build and (with --before)
// another one. Per measured stage: wall time of its own process, the stage's time from the run
// record and peak RSS (/usr/bin/time); then augment's output bytes and the store's.
//   npx tsc -p . && node dist/bench/augment-train.js [--before DIR] [--copies 4] [--epochs 2] [--keep]
// --before DIR: another checkout, built; its dist/cli/main.js is run the same way.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const PROJECT_ROOT = resolve(new URL('../..', import.meta.url).pathname);
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const ARCHIVE = resolve(opt('--archive') ?? process.env.CIFAR10_JPEG_ARCHIVE ?? join(PROJECT_ROOT, '..', 'shared', 'datasets', 'cifar10-jpeg.tar.gz'));
const BEFORE = opt('--before') ? resolve(opt('--before')!) : undefined;
const COPIES = Number(opt('--copies') ?? 4);
const EPOCHS = Number(opt('--epochs') ?? 2);
const KEEP = args.includes('--keep');

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

async function benchOne(label: string, checkout: string): Promise<void> {
  const cli = join(checkout, 'dist', 'cli', 'main.js');
  console.log(`\n== ${label}: ${checkout} (load ${load()})`);
  const work = await mkdtemp(join(tmpdir(), 'augment-train-bench-'));
  try {
    await writeFile(join(work, 'pipeline.yaml'), PIPELINE);
    const setup = timed(cli, work, ['run', 'normalize']);
    if (setup.code) return;
    const before = await bytesUnder(join(work, 'artifacts', 'objects'));
    for (const stage of ['augment', 'train_aug']) {
      const r = timed(cli, work, ['run', stage]);
      line(`${stage} (process wall)`, `${secs(r.ms)}${r.code ? ` (exit ${r.code})` : ''}`);
      line(`  ${stage} (stage)`, secs(await stageMs(work, stage)));
      line(`  peak RSS`, `${r.peakMb.toFixed(0)} MB`);
    }
    const train = JSON.parse(await readFile(join(work, 'artifacts', 'stages', 'train_aug', 'train.json'), 'utf8')) as {
      train_count: number;
      images_per_second: number;
      prefetch?: { batches_read_ahead: number };
    };
    line(
      'train_aug',
      `${train.train_count} rows/epoch, ${Math.round(train.images_per_second)} img/s, prefetched ${train.prefetch?.batches_read_ahead ?? '-'} batches`,
    );
    const augment = await bytesUnder(join(work, 'artifacts', 'stages', 'augment'));
    line('augment output', `${augment.files} files, ${mb(augment.bytes)}`);
    const after = await bytesUnder(join(work, 'artifacts', 'objects'));
    line('store objects (after normalize)', `${before.files} objects, ${mb(before.bytes)}`);
    line('store objects (after train_aug)', `${after.files} objects, ${mb(after.bytes)}`);
  } finally {
    if (!KEEP) await rm(work, { recursive: true, force: true });
    else console.log(`  kept ${work}`);
  }
}

console.log(`augment + train benchmark: ${ARCHIVE}, ${COPIES} copies, ${EPOCHS} epochs (load ${load()})`);
if (BEFORE) await benchOne('before', BEFORE);
await benchOne('after', PROJECT_ROOT);
