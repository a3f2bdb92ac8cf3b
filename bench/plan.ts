// Planning cost of large pipelines: wall time of `pipeline run --dry-run` (load and validate the
// file, gather facts, plan) for 500 / 1,000 / 2,000 cmd stages, and of `status` on the same
// pipeline. Planning should be near-linear in the number of stages (2,000 stages well under 2 s).
//
//   node dist/bench/plan.js [--sizes 500,1000,2000] [--runs 3] [--cached] [--cli path/to/main.js]
//
// By default the store is empty (every stage would run). With --cached the pipeline is first run
// for real (about 30 ms per stage on 2 cores), so the plan is made against 2,000 manifests.
//
// Each stage reads the previous stage's out and a shared workspace file, so the graph is a chain
// with implied needs (the worst case for planners that revisit upstreams) plus fan-out of the
// shared dep.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const cliArg = process.argv.indexOf('--cli');
const CLI = cliArg >= 0 ? resolve(process.argv[cliArg + 1]!) : resolve(new URL('../cli/main.js', import.meta.url).pathname);

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

function pipelineYaml(stages: number): string {
  const lines = ['params:', '  greeting: hello', 'stages:'];
  for (let i = 0; i < stages; i++) {
    const deps = i === 0 ? ['shared.txt'] : ['shared.txt', `out/s${i - 1}.txt`];
    lines.push(
      `  s${i}:`,
      `    cmd: cat ${deps.join(' ')} > out/s${i}.txt && echo \${params.greeting} ${i} >> out/s${i}.txt`,
      `    deps: [${deps.join(', ')}]`,
      `    outs: [out/s${i}.txt]`,
    );
  }
  return lines.join('\n') + '\n';
}

function timed(args: string[], cwd: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1' } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const sizes = arg('sizes', '500,1000,2000').split(',').map(Number);
const runs = Number(arg('runs', '3'));
const cached = process.argv.includes('--cached');
console.log(`planning benchmark: ${CLI}, median of ${runs} runs, ${cached ? 'fully cached store' : 'empty store'}`);
console.log('stages  run --dry-run  status   ms per stage (dry run)');
let previous: { n: number; ms: number } | undefined;
for (const n of sizes) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-plan-'));
  try {
    await writeFile(join(dir, 'pipeline.yaml'), pipelineYaml(n));
    await writeFile(join(dir, 'shared.txt'), 'shared input\n');
    if (cached) timed(['run', '--jobs', '2'], dir);
    const dry = median(Array.from({ length: runs }, () => timed(['run', '--dry-run'], dir)));
    const status = median(Array.from({ length: runs }, () => timed(['status'], dir)));
    const growth = previous ? `  (x${(dry / previous.ms).toFixed(2)} for x${(n / previous.n).toFixed(1)} stages)` : '';
    console.log(
      `${String(n).padStart(6)}  ${(dry / 1000).toFixed(2).padStart(10)} s  ${(status / 1000).toFixed(2).padStart(5)} s  ${(dry / n).toFixed(2)}${growth}`,
    );
    previous = { n, ms: dry };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
