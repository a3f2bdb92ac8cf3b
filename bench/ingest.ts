// Benchmark (issue 24, "Fast ingest"): the CIFAR-10 JPEG archive (60,000 files, 19.6 MB) through
// the built CLI, for this build and (with --before) another one, in one run:
//   - fetch + decode from an empty store: wall time of `pipeline run decode`, each stage's own time
//     (from the run record) and decode's images/s;
//   - a fully cached `pipeline run` of the same stages (median of 5 runs, each its own process);
//   - `pipeline verify`, and the objects in the store (count, bytes).
// Stages: the default pipeline's fetch → decode → normalize, fetch pointed at the local archive
// (no md5: keyed on its digest through the stat cache). --full: the whole default pipeline, with
// one epoch per training phase and one augmented copy, so the cached run covers every stage.
//   npx tsc -p . && node dist/bench/ingest.js [--before DIR] [--archive PATH] [--full] [--keep]
// --before DIR: another checkout, built (`npm run build`); its dist/cli/main.js is run the same way.
import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const PROJECT_ROOT = resolve(new URL('../..', import.meta.url).pathname);
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const ARCHIVE = resolve(opt('--archive') ?? process.env.CIFAR10_JPEG_ARCHIVE ?? join(PROJECT_ROOT, '..', 'shared', 'datasets', 'cifar10-jpeg.tar.gz'));
const BEFORE = opt('--before') ? resolve(opt('--before')!) : undefined;
const FULL = args.includes('--full');
const KEEP = args.includes('--keep');
const CACHED_RUNS = 5;

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const line = (label: string, value: string) => console.log(`  ${label.padEnd(44)} ${value}`);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Overrides that point the default pipeline at the archive (and, with --full, keep training short). */
const OVERRIDES = [
  ['--set', `fetch.url=${ARCHIVE}`],
  ['--unset', 'fetch.md5'],
  ...(FULL
    ? [
        ['--set', 'train.epochs=1'],
        ['--set', 'train_aug.epochs=1'],
        ['--set', 'augment.copies=1'],
        ['--set', 'augment.preview_count=2'],
      ]
    : []),
].flat();

interface Timed {
  ms: number;
  peakMb: number;
  code: number;
  stdout: string;
}

/** One CLI command in its own process: wall time and peak RSS (/usr/bin/time). */
function timed(cli: string, cwd: string, cliArgs: string[]): Timed {
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, cli, ...cliArgs], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const ms = performance.now() - started;
  const kb = Number(r.stderr.trim().split('\n').pop());
  if (r.status !== 0) console.log(r.stdout.slice(-3000), r.stderr.slice(-3000));
  return { ms, peakMb: kb / 1024, code: r.status ?? -1, stdout: r.stdout };
}

/** Each stage's own time in the newest run record. */
async function stageTimes(root: string): Promise<Map<string, number>> {
  const dir = join(root, 'artifacts', 'runs');
  const newest = (await readdir(dir))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .pop()!;
  const record = JSON.parse(await readFile(join(dir, newest), 'utf8')) as { stages: Array<{ stage: string; outcome: string; durationMs: number }> };
  return new Map(record.stages.map((s) => [s.stage, s.durationMs]));
}

async function objects(root: string): Promise<{ count: number; bytes: number }> {
  const dir = join(root, 'artifacts', 'objects');
  let count = 0;
  let bytes = 0;
  for (const fan of await readdir(dir)) {
    for (const f of await readdir(join(dir, fan))) {
      count++;
      bytes += (await stat(join(dir, fan, f))).size;
    }
  }
  return { count, bytes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function benchOne(label: string, checkout: string): Promise<void> {
  const cli = join(checkout, 'dist', 'cli', 'main.js');
  console.log(`\n== ${label}: ${checkout} (load ${load()})`);
  const work = await mkdtemp(join(tmpdir(), 'ingest-bench-'));
  try {
    await copyFile(join(PROJECT_ROOT, 'pipeline.yaml'), join(work, 'pipeline.yaml'));
    const target = FULL ? [] : ['normalize'];
    const first = timed(cli, work, ['run', 'decode', ...OVERRIDES]);
    const times = await stageTimes(work);
    const fetch = times.get('fetch') ?? NaN;
    const decode = times.get('decode') ?? NaN;
    line('fetch + decode, empty store (wall)', `${secs(first.ms)}, peak RSS ${first.peakMb.toFixed(0)} MB${first.code ? ` (exit ${first.code})` : ''}`);
    line('  fetch (stage)', secs(fetch));
    line('  decode (stage)', `${secs(decode)} = ${Math.round(60_000 / (decode / 1000)).toLocaleString('en-US')} img/s`);
    const stored = await objects(work);
    line('store after fetch + decode', `${stored.count.toLocaleString('en-US')} objects, ${(stored.bytes / 2 ** 20).toFixed(1)} MB`);

    const rest = timed(cli, work, ['run', ...target, ...OVERRIDES]);
    line(`then ${FULL ? 'the whole pipeline' : 'normalize'} (wall)`, secs(rest.ms));
    const cached: number[] = [];
    for (let i = 0; i < CACHED_RUNS; i++) {
      const r = timed(cli, work, ['run', ...target, ...OVERRIDES]);
      if (!/^ran\s/m.test(r.stdout) && r.code === 0) cached.push(r.ms);
      else line('  (a "cached" run ran a stage or failed)', r.stdout.split('\n').slice(-3).join(' | '));
    }
    line(
      `fully cached run (${FULL ? 'whole pipeline' : 'fetch → normalize'})`,
      `median ${secs(median(cached))} of ${cached.length} (${cached.map((m) => secs(m)).join(', ')})`,
    );
    // The floor any command pays (node, the CLI's own modules): a cached run's cost beyond it is the store's part.
    const floor = Array.from({ length: CACHED_RUNS }, () => timed(cli, work, ['--help']).ms);
    line('  for comparison: pipeline --help', `median ${secs(median(floor))}`);
    const verify = timed(cli, work, ['verify']);
    line('verify', `${secs(verify.ms)}${verify.code ? ` (exit ${verify.code})` : ''}`);
  } finally {
    if (!KEEP) await rm(work, { recursive: true, force: true });
    else console.log(`  kept ${work}`);
  }
}

console.log(`ingest benchmark: ${ARCHIVE}${FULL ? ' (whole default pipeline, 1 epoch per phase)' : ''}`);
if (BEFORE) await benchOne('before', BEFORE);
await benchOne('after', PROJECT_ROOT);
