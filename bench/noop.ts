// Cost of a no-op `pipeline run` on a fully cached pipeline, for ~10 MB and ~1 GB of artifacts.
// The two pipelines have the same stages and file counts; only the bytes differ. A no-op run must
// only load the config, read small JSON state and stat files (the stat cache means no rehash), so
// its wall time should be flat in artifact size.
//
//   node dist/bench/noop.js [--runs N] [--big-mb 1024] [--small-mb 10] [--cli path/to/main.js]
//
// Besides wall time it reports the run's own figure ("5 cached in 12ms": lock, state reads, stats,
// decisions — everything after the modules are loaded), which isolates the engine from import cost.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const cliArg = process.argv.indexOf('--cli');
const CLI = cliArg >= 0 ? resolve(process.argv[cliArg + 1]!) : resolve(new URL('../cli/main.js', import.meta.url).pathname);
const STAGES = 4;
const PARTS = 16;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Four generator stages (one big file + a directory of parts each) and a summary stage needing all. */
function pipelineYaml(totalBytes: number): string {
  const perStage = Math.floor(totalBytes / STAGES);
  const big = Math.floor(perStage * 0.9);
  const part = Math.floor((perStage - big) / PARTS);
  const lines = ['stages:'];
  for (let s = 0; s < STAGES; s++) {
    // Distinct content per stage (the stage number as a fill byte), so objects do not deduplicate.
    const fill = `tr '\\\\0' '\\\\${(101 + s).toString(8)}'`;
    lines.push(
      `  gen${s}:`,
      `    cmd: |`,
      `      head -c ${big} /dev/zero | ${fill} > big${s}.bin`,
      `      mkdir -p parts${s} && for i in $(seq 1 ${PARTS}); do head -c ${part + s} /dev/zero > parts${s}/p$i.bin; done`,
      `    outs: [big${s}.bin, parts${s}]`,
    );
  }
  lines.push(
    '  summary:',
    `    cmd: ls -l ${Array.from({ length: STAGES }, (_, s) => `big${s}.bin`).join(' ')} | wc -l > summary.txt`,
    `    deps: [${Array.from({ length: STAGES }, (_, s) => `big${s}.bin, parts${s}`).join(', ')}]`,
    '    outs: [summary.txt]',
  );
  return lines.join('\n') + '\n';
}

function timeCommand(args: string[], cwd: string): number {
  return timed(args, cwd).ms;
}

/** Wall time of a command, and the engine time a `run` reports on its summary line. */
function timed(args: string[], cwd: string): { ms: number; engineMs?: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1' } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const m = / in (\d+)ms$/m.exec(r.stdout);
  return { ms, engineMs: m ? Number(m[1]) : undefined };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Measured {
  label: string;
  firstRunMs: number;
  firstNoopMs: number;
  noopMs: number[];
  engineMs: number[];
}

async function measure(label: string, totalBytes: number, runs: number): Promise<Measured> {
  const dir = await mkdtemp(join(tmpdir(), `bench-noop-${label}-`));
  try {
    await writeFile(join(dir, 'pipeline.yaml'), pipelineYaml(totalBytes));
    const firstRunMs = timeCommand([CLI, 'run', '--jobs', '2'], dir);
    // Every stage must now be cached; check once before timing.
    const check = spawnSync(process.execPath, [CLI, 'run'], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    if (!/^5 cached in /m.test(check.stdout)) throw new Error(`expected a fully cached run, got:\n${check.stdout}${check.stderr}`);
    const firstNoopMs = timeCommand([CLI, 'run'], dir);
    const noopMs: number[] = [];
    const engineMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = timed([CLI, 'run'], dir);
      noopMs.push(t.ms);
      if (t.engineMs !== undefined) engineMs.push(t.engineMs);
    }
    return { label, firstRunMs, firstNoopMs, noopMs, engineMs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const runs = arg('runs', 10);
  const bigMb = arg('big-mb', 1024);
  const smallMb = arg('small-mb', 10);
  const nodeStart: number[] = [];
  const kindsImport: number[] = [];
  for (let i = 0; i < runs; i++) {
    nodeStart.push(timeCommand(['-e', '0'], tmpdir()));
    kindsImport.push(timeCommand(['-e', `await import(${JSON.stringify(resolve(CLI, '../../stages/index.js'))})`, '--input-type=module'], tmpdir()));
  }
  const small = await measure(`${smallMb}MB`, smallMb * 1024 * 1024, runs);
  const big = await measure(`${bigMb}MB`, bigMb * 1024 * 1024, runs);
  const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
  console.log(`no-op \`pipeline run\`, fully cached, 5 stages (4 × 1 file + 16-file dir, 1 summary), median of ${runs} runs, wall time incl. Node start:`);
  for (const m of [small, big]) {
    console.log(
      `  ${m.label.padStart(7)}: median ${fmt(median(m.noopMs))}  (min ${fmt(Math.min(...m.noopMs))}, max ${fmt(Math.max(...m.noopMs))}; first no-op ${fmt(m.firstNoopMs)}; initial run ${fmt(m.firstRunMs)}); engine work after imports: median ${median(m.engineMs)} ms`,
    );
  }
  const ratio = median(big.noopMs) / median(small.noopMs);
  console.log(
    `  ratio ${big.label}/${small.label}: ${ratio.toFixed(2)}× wall, ${(median(big.engineMs) / median(small.engineMs)).toFixed(2)}× engine work  (target: < 0.3 s and flat in size)`,
  );
  console.log(`  for reference: \`node -e 0\` ${fmt(median(nodeStart))}; importing stages/index.js (the kinds) alone ${fmt(median(kindsImport))}`);
}

await main();
