// Cost of a fully cached `pipeline run` as a whole process (node start, module loading, config,
// plan, store checks), old build against new: issue #24's "a fully cached run ≤ 0.5 s".
//
//   node dist/bench/cached-run.js --workspace DIR [--old OLD/dist/cli/main.js] [--runs N] [-- RUN ARGS...]
//
// Each round runs every build once, alternating, so load from other work falls on both alike; it
// prints the median wall time and the median CPU time (user + sys, from the kernel's count of the
// children's time, which load inflates less than wall time). The workspace must already be fully
// cached for the given arguments (a run that ran a stage is reported and left out). Linux only
// (/proc/self/stat).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux this runs on). */
const TICKS_PER_SECOND = 100;

interface Sample {
  wallMs: number;
  cpuMs: number;
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The children's user + system time so far (reaped children only), in ms. */
function childrenCpuMs(): number {
  // Fields after the command name (which may hold spaces, hence the last ')'): cutime and cstime are the 14th and 15th.
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / TICKS_PER_SECOND;
}

function runOnce(cli: string, args: readonly string[], cwd: string): Sample | undefined {
  const cpu0 = childrenCpuMs();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, 'run', ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1' } });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpuMs = childrenCpuMs() - cpu0;
  if (r.status !== 0 || /^ran\s/m.test(r.stdout)) {
    console.log(`  (${cli}: not a fully cached run, left out: exit ${r.status}) ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' | ')}`);
    return undefined;
  }
  return { wallMs, cpuMs };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function main(): void {
  const workspace = option('workspace');
  if (!workspace) throw new Error('--workspace DIR is required (a workspace whose pipeline is fully cached)');
  const runs = Number(option('runs') ?? 15);
  const dash = process.argv.indexOf('--');
  const args = dash >= 0 ? process.argv.slice(dash + 1) : [];
  const builds = new Map<string, string>([['new', resolve(option('new') ?? new URL('../cli/main.js', import.meta.url).pathname)]]);
  const old = option('old');
  if (old) builds.set('old', resolve(old));
  const samples = new Map<string, Sample[]>([...builds.keys()].map((name) => [name, []]));

  const load0 = loadavg()[0]!;
  console.log(`cached run: pipeline run ${args.join(' ')} in ${resolve(workspace)}, ${runs} rounds, load ${load0.toFixed(2)}`);
  for (const cli of builds.values()) runOnce(cli, args, workspace); // warm the page cache; not counted
  for (let i = 0; i < runs; i++) {
    for (const [name, cli] of builds) {
      const s = runOnce(cli, args, workspace);
      if (s) samples.get(name)!.push(s);
    }
  }
  console.log(`load average ${load0.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}`);
  for (const [name, list] of samples) {
    if (list.length === 0) continue;
    const wall = median(list.map((s) => s.wallMs));
    const cpu = median(list.map((s) => s.cpuMs));
    console.log(
      `${name.padEnd(4)} median wall ${(wall / 1000).toFixed(3)} s, CPU (user+sys) ${(cpu / 1000).toFixed(3)} s over ${list.length} runs  (${builds.get(name)})`,
    );
  }
}

main();
