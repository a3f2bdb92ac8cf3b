// Peak memory of the bounded-input guards (issue 23), each case a real `pipeline run` in its own
// process (peak RSS is per process: threads included), on inputs built here with little memory:
//   decode  the 69-byte PNG whose header says 30000×30000; a real 30000×30000 PNG (refused by the
//           default max_pixels, then decoded with the limit raised: the row-streaming decoder);
//           real 9000×9000 PNG and JPEG (81 Mpx, under the limit: what an allowed image costs)
//   fetch   a zip holding one 1 GiB zero entry (1028:1), the same zip with a central directory
//           that says 1 MB, and the same content as .tar.gz
// Before the fix (the issue's figures): lying PNG 8.9 GB / 52 s, decoded black, exit 0; real PNG
// 8.9 GB; zip bomb stored (1.1 GB on disk); tar.gz bomb refused at 1.17 GB RSS.
//
//   npx tsc -p . && node dist/bench/bombs.js [--only decode|fetch] [--keep]
import { spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { writeZeroTarGz, writeZeroZip } from '../test/helpers/archive-builders.js';
import { encodePng, lyingPng, writeLargePng } from '../test/helpers/png-builders.js';

const CLI = resolve(new URL('../cli/main.js', import.meta.url).pathname);
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const keep = process.argv.includes('--keep');
const GiB = 1 << 30;
// Loaded into each measured process: prints its peak RSS on the way out.
const REPORT_RSS = `data:text/javascript,process.on('exit',()=>process.stderr.write('\\nbench-max-rss-kb='+process.resourceUsage().maxRSS+'\\n'))`;

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 1)} MB`;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

interface Measured {
  code: number | null;
  seconds: number;
  peakMb: number;
  /** The run's error line (or its summary line when it succeeded). */
  said: string;
}

/** `pipeline run STAGE` in `dir` with `set` overrides, in a child process that reports its peak RSS. */
function measure(dir: string, stage: string, set: string[] = []): Measured {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', REPORT_RSS, CLI, 'run', stage, ...set.flatMap((s) => ['--set', s])], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', CI: '1' },
  });
  const seconds = (performance.now() - t0) / 1000;
  const rss = /bench-max-rss-kb=(\d+)/.exec(r.stderr)?.[1];
  const lines = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('bench-max-rss-kb='));
  const said = lines.find((l) => /error|refused|too large|unsafe|corrupt/i.test(l)) ?? lines[lines.length - 1] ?? '';
  return { code: r.status, seconds, peakMb: rss ? Number(rss) / 1024 : NaN, said };
}

function report(label: string, m: Measured): void {
  console.log(`${label.padEnd(58)} exit ${m.code}, ${m.seconds.toFixed(1)} s, peak RSS ${Math.round(m.peakMb)} MB`);
  console.log(`${''.padEnd(58)} ${m.said.length > 200 ? `${m.said.slice(0, 200)}…` : m.said}`);
}

/** A workspace whose fetch stage copies `data` (a directory or file) and whose decode reads it. */
async function workspace(base: string, name: string, data: string): Promise<string> {
  const dir = join(base, name);
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'pipeline.yaml'),
    `stages:\n  fetch:\n    uses: fetch\n    with:\n      url: ${data}\n  decode:\n    uses: decode\n    needs: [fetch]\n`,
  );
  return dir;
}

/** Image folders with one small PNG per class and split, plus `extra` at train/a/<name>. */
async function imageFolders(base: string, name: string, extra: (path: string) => Promise<void>): Promise<string> {
  const data = join(base, 'datasets', name);
  const small = encodePng({ width: 8, height: 8, colorType: 2, bitDepth: 8, sample: (x, y, c) => (x * 30 + y * 20 + c * 50) & 255 });
  for (const split of ['train', 'test']) {
    for (const cls of ['a', 'b']) {
      await mkdir(join(data, split, cls), { recursive: true });
      await writeFile(join(data, split, cls, 'small.png'), small);
    }
  }
  await extra(join(data, 'train', 'a'));
  return data;
}

/** An 8-bit RGB JPEG of any size through cjpeg, the PPM streamed row by row (false without cjpeg). */
async function largeJpeg(path: string, width: number, height: number): Promise<boolean> {
  if (spawnSync('cjpeg', ['-version']).error) return false;
  const ppm = `${path}.ppm`;
  const out = createWriteStream(ppm);
  out.write(`P6\n${width} ${height}\n255\n`);
  const row = Buffer.alloc(width * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      row[x * 3] = (x * 255) / width;
      row[x * 3 + 1] = (y * 255) / height;
      row[x * 3 + 2] = ((x ^ y) & 63) + 96;
    }
    if (!out.write(Buffer.from(row))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const r = spawnSync('sh', ['-c', `cjpeg -quality 90 '${ppm}' > '${path}'`]);
  await rm(ppm, { force: true });
  return r.status === 0;
}

async function decodeCases(base: string): Promise<void> {
  console.log('\ndecode (fetch copies the image folders; decode runs on its worker pool; default max_pixels 89,478,485)');
  const baseline = await imageFolders(base, 'baseline', async () => {});
  report('baseline: 8 small PNGs', measure(await workspace(base, 'baseline', baseline), 'decode'));

  const lie = await imageFolders(base, 'lie', (dir) => writeFile(join(dir, 'lie.png'), lyingPng(30000, 30000)));
  report('the 69-byte PNG whose header says 30000×30000', measure(await workspace(base, 'lie', lie), 'decode'));

  let bytes = 0;
  const real = await imageFolders(base, 'real', async (dir) => {
    bytes = await writeLargePng(join(dir, 'real.png'), 30000, 30000);
  });
  const realWs = await workspace(base, 'real', real);
  report(`a real 30000×30000 PNG (${mb(bytes)})`, measure(realWs, 'decode'));
  report('  the same, max_pixels raised to 1e9 (decoded, streamed)', measure(realWs, 'decode', ['decode.max_pixels=1000000000']));

  const allowed = await imageFolders(base, 'allowed', async (dir) => {
    bytes = await writeLargePng(join(dir, 'allowed.png'), 9000, 9000);
  });
  report(`a real 9000×9000 PNG (${mb(bytes)}, 81 Mpx: allowed)`, measure(await workspace(base, 'allowed', allowed), 'decode'));

  let haveJpeg = false;
  const jpeg = await imageFolders(base, 'jpeg', async (dir) => {
    haveJpeg = await largeJpeg(join(dir, 'allowed.jpg'), 9000, 9000);
    if (haveJpeg) bytes = (await stat(join(dir, 'allowed.jpg'))).size;
  });
  if (haveJpeg) report(`a real 9000×9000 JPEG (${mb(bytes)}, 81 Mpx: allowed)`, measure(await workspace(base, 'jpeg', jpeg), 'decode'));
  else console.log('a real 9000×9000 JPEG: skipped (cjpeg not found: apt-get install libjpeg-turbo-progs)');
}

async function fetchCases(base: string): Promise<void> {
  console.log('\nfetch (one 1 GiB entry of zeros; the rule: at most 1000× the compressed bytes)');
  const files = join(base, 'archives');
  await mkdir(files, { recursive: true });
  const small = join(files, 'small.tar.gz');
  await writeZeroTarGz(small, 1 << 16);
  report('baseline: a 64 KiB tar.gz', measure(await workspace(base, 'fetch-baseline', small), 'fetch'));

  const zip = await writeZeroZip(join(files, 'bomb.zip'), GiB);
  report(`zip bomb (${mb((await stat(zip)).size)})`, measure(await workspace(base, 'zip', zip), 'fetch'));

  const lying = await writeZeroZip(join(files, 'lying.zip'), GiB, 1_000_000);
  report('  the same, central directory says 1,000,000 bytes', measure(await workspace(base, 'zip-lying', lying), 'fetch'));

  const tgz = await writeZeroTarGz(join(files, 'bomb.tar.gz'), GiB);
  report(`tar.gz bomb (${mb((await stat(tgz)).size)})`, measure(await workspace(base, 'tgz', tgz), 'fetch'));
}

const base = await mkdtemp(join(tmpdir(), 'bench-bombs-'));
try {
  console.log(`bounded-inputs benchmark: peak RSS of \`pipeline run\` per case (load average ${load()})`);
  if (only !== 'fetch') await decodeCases(base);
  if (only !== 'decode') await fetchCases(base);
  console.log(`\nload average at end ${load()}`);
} finally {
  if (keep) console.log(`kept ${base}`);
  else await rm(base, { recursive: true, force: true });
}
