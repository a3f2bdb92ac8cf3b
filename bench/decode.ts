// Benchmark: fetch-like extraction → decode → normalize on the full CIFAR-10 JPEG archive
// (60,000 images), in one process, with images/s and peak RSS; plus a single-thread comparison of
// the JPEG decoders (our wasm libjpeg-turbo vs jpeg-js) on the same files, speed and pixels.
//   npx tsc -p . && node dist/bench/decode.js [--runs N] [--keep] [--data DIR]
// --data DIR: decode an already extracted archive (DIR has train/ and test/), skipping extraction.
// Targets (issue 3): decode ≥ 18,000 images/s on this 2-core machine; peak RSS < 1.5 GB for
// fetch → normalize. The machine is shared: load average is printed beside every figure.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import jpeg from 'jpeg-js';
import { createJpegDecoder } from '../lib/images/jpeg.js';
import { decodeStage } from '../stages/decode/decode.js';
import { normalizeStage } from '../stages/normalize/normalize.js';
import { runStage } from '../test/helpers/stage-context.js';

const PROJECT_ROOT = resolve(new URL('../..', import.meta.url).pathname);
const archive = process.env.CIFAR10_JPEG_ARCHIVE ?? join(PROJECT_ROOT, '..', 'shared', 'datasets', 'cifar10-jpeg.tar.gz');
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 0) || 2;
const keep = args.includes('--keep');
const given = args.includes('--data') ? resolve(args[args.indexOf('--data') + 1]!) : undefined;
const TARGET_RATE = 18_000;
const TARGET_RSS_MB = 1536;

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const seconds = (start: number) => (performance.now() - start) / 1000;

function line(label: string, value: string): void {
  console.log(`${label.padEnd(44)} ${value}`);
}

function filesOf(dir: string, split: string): string[] {
  const files: string[] = [];
  for (const cls of readdirSync(join(dir, split)).sort()) for (const f of readdirSync(join(dir, split, cls)).sort()) files.push(join(dir, split, cls, f));
  return files;
}

/** Single-thread decode of in-memory JPEGs: rate and pixel differences between the decoders. */
async function compareDecoders(dataDir: string): Promise<void> {
  const buffers = filesOf(dataDir, 'train')
    .filter((_, i) => i % 10 === 0)
    .map((f) => readFileSync(f));
  const wasm = await createJpegDecoder();
  const ours: Uint8Array[] = [];
  const theirs: Uint8Array[] = [];
  const time = (label: string, fn: () => void) => {
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const start = performance.now();
      fn();
      best = Math.min(best, seconds(start));
    }
    line(label, `${Math.round(buffers.length / best)} images/s (best of 3, ${buffers.length} images, load ${load()})`);
  };
  time('1 thread, libjpeg-turbo wasm (ours)', () => {
    ours.length = 0;
    for (const b of buffers) ours.push(wasm.decode(b).data.slice());
  });
  time('1 thread, jpeg-js', () => {
    theirs.length = 0;
    for (const b of buffers) theirs.push(jpeg.decode(b, { useTArray: true, formatAsRGBA: false }).data);
  });
  wasm.dispose();
  let max = 0;
  let sum = 0;
  let n = 0;
  let within2 = 0;
  for (let i = 0; i < ours.length; i++) {
    for (let k = 0; k < ours[i]!.length; k++) {
      const d = Math.abs(ours[i]![k]! - theirs[i]![k]!);
      max = Math.max(max, d);
      sum += d;
      if (d <= 2) within2++;
      n++;
    }
  }
  line(
    'pixels, wasm vs jpeg-js',
    `max |diff| ${max}, mean ${(sum / n).toFixed(3)}, ${((100 * within2) / n).toFixed(2)}% within ±2 (jpeg-js replicates chroma, libjpeg interpolates)`,
  );
}

async function main(): Promise<void> {
  if (!given && !existsSync(archive)) {
    console.error(`CIFAR-10 JPEG archive not found at ${archive} (set CIFAR10_JPEG_ARCHIVE)`);
    process.exit(2);
  }
  const work = await mkdtemp(join(tmpdir(), 'bench-decode-'));
  const fetchDir = join(work, 'fetch');
  const outputs: string[] = [];
  try {
    console.log(`decode bench: ${archive}`);
    line('load average at start', load());

    let start = performance.now();
    if (given) {
      await mkdir(fetchDir);
      await symlink(given, join(fetchDir, 'data'));
      line('fetch-like extraction', `skipped: using ${given}`);
    } else {
      await mkdir(join(fetchDir, 'data'), { recursive: true });
      await tar.extract({ file: archive, cwd: join(fetchDir, 'data') });
      line('fetch-like extraction (tar package)', `${seconds(start).toFixed(1)} s, peak RSS so far ${peakRssMb()} MB`);
    }

    await compareDecoders(join(fetchDir, 'data'));

    let decodeDir = '';
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) {
      start = performance.now();
      const cpuBefore = process.cpuUsage();
      const run = await runStage(decodeStage, {}, { fetch: { kind: 'fetch', dir: fetchDir } });
      const elapsed = seconds(start);
      const cpu = process.cpuUsage(cpuBefore);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      outputs.push(run.outDir, run.resumeDir);
      const counts = (JSON.parse(readFileSync(join(run.outDir, 'decode.json'), 'utf8')) as { counts: Record<string, { total: number }> }).counts;
      const images = counts.train!.total + counts.test!.total;
      rates.push(images / elapsed);
      line(
        `decode stage, run ${r + 1} (2 workers)`,
        `${images} images in ${elapsed.toFixed(2)} s = ${Math.round(images / elapsed)} images/s (load ${load()}), peak RSS so far ${peakRssMb()} MB`,
      );
      // CPU time (all threads) is far less sensitive than wall time to other work on a shared machine.
      line(
        '  CPU time of that run, all threads',
        `${cpuSeconds.toFixed(2)} s = ${Math.round((cpuSeconds / images) * 1e6)} µs/image; 2 idle cores ≈ ${Math.round((2 * images) / cpuSeconds)} images/s at best`,
      );
      decodeDir = run.outDir;
    }

    start = performance.now();
    const norm = await runStage(normalizeStage, {}, { decode: { kind: 'decode', dir: decodeDir } });
    outputs.push(norm.outDir, norm.resumeDir);
    const trainX = join(norm.outDir, 'train_x.npy');
    line('normalize stage (scale, split 0.2)', `${seconds(start).toFixed(2)} s, train_x ${mb(statSync(trainX).size)} MB, peak RSS so far ${peakRssMb()} MB`);

    const best = Math.max(...rates);
    const rss = peakRssMb();
    console.log('');
    line(
      'decode images/s (best run)',
      `${Math.round(best)} (target ≥ ${TARGET_RATE}: ${best >= TARGET_RATE ? 'met' : 'NOT met'}; ratio ${(best / TARGET_RATE).toFixed(2)})`,
    );
    line('peak RSS, fetch → decode → normalize', `${rss} MB (target < ${TARGET_RSS_MB} MB: ${rss < TARGET_RSS_MB ? 'met' : 'NOT met'})`);
    line('load average at end', load());
  } finally {
    if (keep) console.log(`kept ${work} and stage outputs: ${outputs.join(' ')}`);
    else await Promise.all([work, ...outputs].map((d) => rm(d, { recursive: true, force: true })));
  }
}

await main();
