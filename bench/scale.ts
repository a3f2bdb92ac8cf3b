// Benchmark (issue 24): data at scale. Real CIFAR-10 JPEGs upscaled to SIZE×SIZE (default 224) as
// an image folder of N files (train/<class>/, test/<class>/: 5/6 train, 1/6 test), through the
// built CLI: fetch → decode → normalize → train (a small conv net, one epoch), each stage in its
// own process under /usr/bin/time. Prints per stage wall time and peak RSS, the store against
// (uint8 pixel bytes + source bytes), a rerun after adding 1 % new files (time and store growth),
// and the data loader's own img/s beside training's.
//   npx tsc -p . && node dist/bench/scale.js [--n 7000,70000] [--size 224] [--cache DIR] [--no-train] [--keep]
// --cache DIR keeps the generated folders between runs (default: a temp dir, removed).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import * as tar from 'tar';
import { DatasetReader } from '../lib/dataset/reader.js';
import { PixelMapper } from '../lib/dataset/pixel-map.js';
import { datasetRows, pixelTable } from '../lib/model/data.js';
import { Rng } from '../lib/model/rng.js';
import type { ScaleTask } from './scale-worker.js';

const PROJECT_ROOT = resolve(new URL('../..', import.meta.url).pathname);
const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const ARCHIVE = process.env.CIFAR10_JPEG_ARCHIVE ?? join(PROJECT_ROOT, '..', 'shared', 'datasets', 'cifar10-jpeg.tar.gz');
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const SIZES = (opt('--n') ?? '7000,70000').split(',').map(Number);
const SIZE = Number(opt('--size') ?? 224);
const TRAIN = !args.includes('--no-train');
const KEEP = args.includes('--keep');

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const line = (label: string, value: string) => console.log(`  ${label.padEnd(46)} ${value}`);

/** The archive's JPEGs in memory, in a fixed order: (split, name, class), so the first N of a split span every class. */
async function cifarJpegs(): Promise<Array<{ split: string; cls: string; name: string; bytes: Uint8Array }>> {
  const out: Array<{ split: string; cls: string; name: string; bytes: Uint8Array }> = [];
  await tar.t({
    file: ARCHIVE,
    onReadEntry: (entry) => {
      const m = /^(?:\.\/)?(train|test)\/([^/]+)\/([^/]+\.jpg)$/.exec(entry.path);
      if (!m) return entry.resume();
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => out.push({ split: m[1]!, cls: m[2]!, name: m[3]!, bytes: Buffer.concat(chunks) }));
    },
  });
  const key = (j: { split: string; cls: string; name: string }) => `${j.split}/${j.name}/${j.cls}`;
  return out.sort((a, b) => (key(a) < key(b) ? -1 : 1));
}

/** Writes images [from, to) of the N-image folder: image i is archive image i mod 60,000, mirrored on later rounds. */
async function generate(dir: string, from: number, to: number, pool: Piscina, jpegs: Awaited<ReturnType<typeof cifarJpegs>>, prefix = ''): Promise<number> {
  const train = jpegs.filter((j) => j.split === 'train');
  const test = jpegs.filter((j) => j.split === 'test');
  const pick = (i: number) => {
    // Every sixth image is a test image, so both splits grow together.
    const isTest = i % 6 === 5;
    const pool = isTest ? test : train;
    const k = isTest ? Math.floor(i / 6) : i - Math.floor((i + 1) / 6);
    return { src: pool[k % pool.length]!, mirror: Math.floor(k / pool.length) % 2 === 1, round: Math.floor(k / pool.length) };
  };
  const tasks: Array<Promise<void>> = [];
  let bytes = 0;
  const CHUNK = 200;
  for (let start = from; start < to; start += CHUNK) {
    const picks = Array.from({ length: Math.min(CHUNK, to - start) }, (_, k) => pick(start + k));
    const task: ScaleTask = { jpegs: picks.map((p) => p.src.bytes), mirror: picks.map((p) => p.mirror), size: SIZE };
    tasks.push(
      (pool.run(task) as Promise<Uint8Array[]>).then(async (encoded) => {
        for (const [k, p] of picks.entries()) {
          const classDir = join(dir, p.src.split, p.src.cls);
          await mkdir(classDir, { recursive: true });
          await writeFile(join(classDir, `${prefix}${p.round}-${p.src.name}`), encoded[k]!);
          bytes += encoded[k]!.length;
        }
      }),
    );
  }
  await Promise.all(tasks);
  return bytes;
}

function pipelineYaml(data: string, train: boolean): string {
  return `stages:
  fetch:
    uses: fetch
    with:
      url: ${data}
  decode:
    uses: decode
    needs: [fetch]
    with:
      height: ${SIZE}
      width: ${SIZE}
  normalize:
    uses: normalize
    needs: [decode]
${
  train
    ? `  train:
    uses: train
    needs: [normalize]
    with:
      backend: wasm
      epochs: 1
      batch_size: 64
      model:
        - { type: conv2d, filters: 16, kernel_size: 5, strides: 4, padding: same, activation: relu }
        - { type: maxPooling2d, pool_size: 2 }
        - { type: conv2d, filters: 32, kernel_size: 3, strides: 2, padding: same, activation: relu }
        - { type: globalAveragePooling2d }
        - { type: dense, units: 10, activation: softmax }
`
    : ''
}`;
}

interface Timed {
  seconds: number;
  peakMb: number;
  code: number;
}

/** One CLI command in its own process: wall seconds and peak RSS from /usr/bin/time. */
function timed(cwd: string, cliArgs: string[]): Timed {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', process.execPath, CLI, ...cliArgs], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const last = r.stderr.trim().split('\n').pop() ?? '';
  const [secs, kb] = last.split(' ').map(Number);
  if (r.status !== 0) console.log(r.stdout.slice(-2000), r.stderr.slice(-2000));
  return { seconds: secs ?? NaN, peakMb: (kb ?? NaN) / 1024, code: r.status ?? -1 };
}

async function objectBytes(root: string): Promise<number> {
  let total = 0;
  const dir = join(root, 'artifacts', 'objects');
  for (const fan of await readdir(dir)) for (const f of await readdir(join(dir, fan))) total += (await stat(join(dir, fan, f))).size;
  return total;
}

/**
 * The loader alone, img/s: training batches gathered from the shards through the pixel table, as
 * `rows.gather` does it (a fresh array per batch: at 224×224 its page faults are most of the
 * time) and as the prefetch thread does it (into the same batch buffer every time).
 */
async function loaderRate(root: string): Promise<{ gather: number; prefetch: number }> {
  return { gather: await gatherRate(root), prefetch: await prefetchRate(root) };
}

async function prefetchRate(root: string): Promise<number> {
  const reader = await DatasetReader.open(join(root, 'artifacts', 'stages', 'normalize', 'dataset'));
  try {
    const mapper = new PixelMapper(pixelTable({ method: 'scale', scale: 1 / 255 }, reader.manifest.shape[2]), reader.rowBytes);
    const order = new Rng(1).permutation(reader.manifest.splits.train);
    const batch = new Float32Array(64 * reader.rowBytes);
    const started = performance.now();
    let n = 0;
    for (; n < order.length && performance.now() - started < 20_000; n++) {
      reader.readRowInto(order[n]!, mapper.pixels);
      mapper.mapInto(batch, (n % 64) * reader.rowBytes);
    }
    return n / ((performance.now() - started) / 1000);
  } finally {
    reader.close();
  }
}

async function gatherRate(root: string): Promise<number> {
  const dir = join(root, 'artifacts', 'stages', 'normalize', 'dataset');
  const reader = await DatasetReader.open(dir);
  try {
    const index = Int32Array.from({ length: reader.manifest.splits.train }, (_, i) => i);
    const rows = datasetRows(reader, index, pixelTable({ method: 'scale', scale: 1 / 255 }, reader.manifest.shape[2]), 'bench');
    const order = new Rng(1).permutation(index.length);
    const started = performance.now();
    let n = 0;
    for (let s = 0; s < order.length && performance.now() - started < 20_000; s += 64) {
      n += rows.gather(order.subarray(s, s + 64)).x.length > 0 ? Math.min(64, order.length - s) : 0;
    }
    return n / ((performance.now() - started) / 1000);
  } finally {
    reader.close();
  }
}

async function benchOne(n: number, cacheRoot: string, jpegs: Awaited<ReturnType<typeof cifarJpegs>>, pool: Piscina): Promise<void> {
  console.log(`\n== N = ${n.toLocaleString('en-US')} images at ${SIZE}×${SIZE} (load ${load()})`);
  const source = join(cacheRoot, `scale-${n}-${SIZE}`);
  if (!existsSync(join(source, '.complete'))) {
    const started = performance.now();
    await rm(source, { recursive: true, force: true });
    await generate(source, 0, n, pool, jpegs);
    await writeFile(join(source, '.complete'), '');
    line('generated the folder', `${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  const work = await mkdtemp(join(tmpdir(), 'scale-bench-'));
  try {
    const data = join(work, 'photos');
    await cp(source, data, { recursive: true });
    await rm(join(data, '.complete'));
    await writeFile(join(work, 'pipeline.yaml'), pipelineYaml(data, TRAIN));
    let sourceBytes = 0;
    for (const e of await readdir(data, { recursive: true, withFileTypes: true })) if (e.isFile()) sourceBytes += (await stat(join(e.parentPath, e.name))).size;
    const pixelBytes = n * SIZE * SIZE * 3;
    line('source JPEGs', `${mb(sourceBytes)}; uint8 pixels ${mb(pixelBytes)}`);

    const first: Record<string, Timed> = {};
    for (const stage of ['fetch', 'decode', 'normalize', ...(TRAIN ? ['train'] : [])]) {
      first[stage] = timed(work, ['run', stage]);
      line(
        `${stage}: wall, peak RSS`,
        `${first[stage]!.seconds.toFixed(1)} s, ${first[stage]!.peakMb.toFixed(0)} MB${first[stage]!.code ? ` (exit ${first[stage]!.code})` : ''}`,
      );
    }
    const store = await objectBytes(work);
    line('store after one run (objects)', `${mb(store)} = ${(store / (pixelBytes + sourceBytes)).toFixed(3)}× (pixels + sources)  [target ≤ 1.3×]`);
    const cached = timed(work, ['run']);
    line('fully cached run', `${cached.seconds.toFixed(2)} s`);

    if (TRAIN) {
      const trainJson = JSON.parse(await readFile(join(work, 'artifacts', 'stages', 'train', 'train.json'), 'utf8')) as { images_per_second: number };
      const loader = await loaderRate(work);
      line('training img/s (one epoch)', trainJson.images_per_second.toFixed(0));
      const ratio = (rate: number) => `${rate.toFixed(0)} = ${(rate / trainJson.images_per_second).toFixed(1)}× training`;
      line('loader alone img/s (one thread, as prefetched)', `${ratio(loader.prefetch)}  [target ≥ 5×]`);
      line('loader alone img/s (rows.gather, fresh arrays)', ratio(loader.gather));
    }

    // +1 %: new files in the folder, then the data stages again.
    const added = Math.max(1, Math.round(n / 100));
    await generate(data, n, n + added, pool, jpegs, 'new-');
    const dataStages = ['fetch', 'decode', 'normalize'];
    const firstData = dataStages.reduce((s, st) => s + first[st]!.seconds, 0);
    const again = timed(work, ['run', 'normalize']);
    const grown = await objectBytes(work);
    line(
      `+${added} files (1 %): data stages rerun`,
      `${again.seconds.toFixed(1)} s = ${((100 * again.seconds) / firstData).toFixed(1)} % of the first run's ${firstData.toFixed(1)} s  [target ≤ 15 %]`,
    );
    line(
      '+1 %: store growth',
      `${mb(grown - store)} = ${((100 * (grown - store)) / store).toFixed(2)} %  [target ≤ 3 %], peak RSS ${again.peakMb.toFixed(0)} MB`,
    );
  } finally {
    if (!KEEP) await rm(work, { recursive: true, force: true });
    else console.log(`  kept ${work}`);
  }
}

async function main(): Promise<void> {
  const cacheRoot = opt('--cache') ? resolve(opt('--cache')!) : await mkdtemp(join(tmpdir(), 'scale-data-'));
  await mkdir(cacheRoot, { recursive: true });
  console.log(`scale benchmark: sizes ${SIZES.join(', ')} at ${SIZE}×${SIZE}, ${availableParallelism()} cores, load ${load()}`);
  const jpegs = await cifarJpegs();
  const pool = new Piscina({ filename: fileURLToPath(new URL('./scale-worker.js', import.meta.url)) });
  try {
    for (const n of SIZES) await benchOne(n, cacheRoot, jpegs, pool);
  } finally {
    await pool.destroy();
    if (!opt('--cache')) await rm(cacheRoot, { recursive: true, force: true });
  }
}

await main();
