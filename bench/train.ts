// Training throughput of the seed model per backend, plus a per-kernel breakdown of one step.
//
//   node dist/bench/train.js [--batches 40] [--batch-size 128] [--slow-batches 1] [--cpu-batch-size 16]
//                            [--configs pytorch,native,wasm,wasm-parallel,wasm-stock,cpu,pytorch] [--torch-threads 2]
//
// Each configuration runs in its own child process (kernel registration is process-global).
// Configurations: native = wasm + oneDNN kernels (lib/tf/kernels/native.ts); pytorch = the same
// network in PyTorch (bench/torch-seed.py; list it first and last to time it before and after);
// wasm = wasm + our kernels; wasm-parallel = two worker threads, each with its
// own wasm instance (lib/model/data-parallel); wasm-stock = stock wasm plus only the missing
// Conv2DBackpropFilter (the "before"); cpu = the pure-JS backend (its filter gradient takes
// ~50 s for 16 images here, so it runs 1 batch of --cpu-batch-size). Figures from one run on a
// shared machine: compare ratios; "img/cpu-s" (images per second of process CPU time) is the
// steadier figure when other jobs compete for the cores. A speed probe before and after (one
// thread of our SIMD convolution) shows how fast the machine itself was during the run.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/tf/backend.js';
import { skipInputGradient } from '../lib/model/input-gradient.js';
import { DataParallelTrainer } from '../lib/model/data-parallel.js';
import { registerWasmTrainingKernels } from '../lib/tf/kernels/register.js';
import { conv2dDirect } from '../lib/tf/kernels/simd-module.js';
import { KernelTimer, type KernelTime } from './kernel-timer.js';
import { buildSeedModel, randomBatch } from './seed-model.js';

type Config = 'native' | 'wasm' | 'wasm-parallel' | 'wasm-stock' | 'cpu' | 'pytorch';

interface Result {
  config: Config;
  simd?: boolean;
  batches: number;
  batchSize: number;
  imgPerSec: number;
  imgPerCpuSec: number;
  stepMs: number;
  breakdown?: { stepWallMs: number; stepCpuMs: number; kernels: KernelTime[] };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
}

async function setUp(config: Config): Promise<boolean | undefined> {
  if (config === 'wasm-stock') {
    await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
    await tf.ready();
    registerWasmTrainingKernels(['Conv2DBackpropFilter']); // the one stock wasm lacks entirely
    return Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  }
  const info = await initBackend(config === 'cpu' ? 'cpu' : config === 'native' ? 'native' : 'wasm');
  return info.wasm?.simd;
}

async function runSingle(config: Config, batches: number, batchSize: number): Promise<Result> {
  const simd = await setUp(config);
  const model = buildSeedModel();
  if (config !== 'wasm-stock') skipInputGradient(model); // as the train stage's steps do
  const data = randomBatch(batchSize, 1);
  const x = tf.tensor4d(data.x, [batchSize, 32, 32, 3]);
  const y = tf.tensor2d(data.y, [batchSize, 10]);
  await model.trainOnBatch(x, y); // warm-up: XNNPACK operators, JIT

  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) await model.trainOnBatch(x, y);
  const wall = performance.now() - t0;
  const cpu = cpuMs(c0);

  const timer = new KernelTimer(tf.getBackend());
  timer.install();
  const c1 = process.cpuUsage();
  const t1 = performance.now();
  await model.trainOnBatch(x, y);
  const breakdown = { stepWallMs: performance.now() - t1, stepCpuMs: cpuMs(c1), kernels: timer.report() };
  timer.uninstall();

  const images = batches * batchSize;
  return { config, simd, batches, batchSize, imgPerSec: (images / wall) * 1000, imgPerCpuSec: (images / cpu) * 1000, stepMs: wall / batches, breakdown };
}

async function runParallel(batches: number, batchSize: number): Promise<Result> {
  const model = buildSeedModel();
  const trainer = await DataParallelTrainer.create({
    model,
    optimizer: { name: 'rmsprop', learningRate: 1e-3, rho: 0.9, epsilon: 1e-7 },
    workers: 2,
  });
  try {
    const data = randomBatch(batchSize, 1);
    await trainer.trainBatch(data.x, data.y, batchSize); // warm-up
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < batches; i++) await trainer.trainBatch(data.x, data.y, batchSize);
    const wall = performance.now() - t0;
    // process.cpuUsage covers every thread of the process, the workers included.
    const cpu = cpuMs(c0);
    const images = batches * batchSize;
    return {
      config: 'wasm-parallel',
      simd: true,
      batches,
      batchSize,
      imgPerSec: (images / wall) * 1000,
      imgPerCpuSec: (images / cpu) * 1000,
      stepMs: wall / batches,
    };
  } finally {
    await trainer.dispose();
  }
}

function printResult(r: Result): void {
  const simd = r.simd === undefined ? '' : ` simd=${r.simd}`;
  console.log(
    `${r.config.padEnd(14)} ${r.imgPerSec.toFixed(1).padStart(7)} img/s  ${r.imgPerCpuSec.toFixed(1).padStart(7)} img/cpu-s  ` +
      `${r.stepMs.toFixed(0).padStart(6)} ms/step  (${r.batches} batches of ${r.batchSize}${simd})`,
  );
}

function printBreakdown(r: Result): void {
  if (r.breakdown === undefined) return;
  const { stepWallMs, stepCpuMs, kernels } = r.breakdown;
  const kWall = kernels.reduce((s, k) => s + k.wallMs, 0);
  const kCpu = kernels.reduce((s, k) => s + k.cpuMs, 0);
  console.log(`\n${r.config}: one step ${stepWallMs.toFixed(0)} ms wall, ${stepCpuMs.toFixed(0)} ms cpu; per kernel (cpu ms, wall ms, calls):`);
  for (const k of kernels.slice(0, 14)) {
    const share = ((100 * k.cpuMs) / stepCpuMs).toFixed(1).padStart(5);
    console.log(`  ${k.name.padEnd(22)} ${k.cpuMs.toFixed(1).padStart(8)} ${k.wallMs.toFixed(1).padStart(8)} ${String(k.calls).padStart(4)}  ${share}%`);
  }
  const rest = kernels.slice(14);
  const restCpu = rest.reduce((s, k) => s + k.cpuMs, 0);
  const restWall = rest.reduce((s, k) => s + k.wallMs, 0);
  console.log(`  ${`(${rest.length} other kernels)`.padEnd(22)} ${restCpu.toFixed(1).padStart(8)} ${restWall.toFixed(1).padStart(8)}`);
  console.log(`  ${'(outside kernels)'.padEnd(22)} ${(stepCpuMs - kCpu).toFixed(1).padStart(8)} ${(stepWallMs - kWall).toFixed(1).padStart(8)}`);
}

async function child(config: Config): Promise<void> {
  const batchSize = Number(config === 'cpu' ? arg('cpu-batch-size', '16') : arg('batch-size', '128'));
  const slow = config === 'cpu' || config === 'wasm-stock';
  const batches = Number(slow ? arg('slow-batches', '1') : arg('batches', '40'));
  const result = config === 'wasm-parallel' ? await runParallel(batches, batchSize) : await runSingle(config, batches, batchSize);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/**
 * GFLOP/s of our SIMD convolution on a fixed shape, one thread: this machine's speed right now.
 * Shared VMs drift (we saw 21-35 GFLOP/s within an hour), so figures from different runs compare
 * only together with their probes.
 */
function speedProbe(): number {
  const [b, h, c] = [64, 16, 64];
  const g = {
    batch: b,
    inH: h,
    inW: h,
    inChannels: c,
    outH: h,
    outW: h,
    outChannels: c,
    filterH: 3,
    filterW: 3,
    strideH: 1,
    strideW: 1,
    padTop: 1,
    padLeft: 1,
  };
  const fill = (n: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const [x, w, y] = [fill(b * h * h * c), fill(9 * c * c), new Float32Array(b * h * h * c)];
  conv2dDirect(x, w, g, y); // warm-up
  const reps = 10;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) conv2dDirect(x, w, g, y);
  const seconds = (performance.now() - t0) / 1000;
  return (reps * 2 * b * h * h * 9 * c * c) / seconds / 1e9;
}

/**
 * The same network trained by PyTorch (bench/torch-seed.py; Debian's python3-torch, with
 * libopenblas0-pthread so its dense layers do not run on the reference BLAS), 2 threads.
 * PYTHON names the interpreter (default /usr/bin/python3, where Debian's torch is). Its threads
 * wait passively (OMP_WAIT_POLICY), as the native path's do.
 */
function pytorchCommand(): [string, string[]] {
  const py = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'torch-seed.py');
  const args = [py, '--batches', arg('batches', '40'), '--batch-size', arg('batch-size', '128'), '--threads', arg('torch-threads', '2')];
  return [process.env.PYTHON ?? '/usr/bin/python3', args];
}

function main(): void {
  const configs = arg('configs', 'pytorch,native,wasm,wasm-parallel,wasm-stock,cpu,pytorch').split(',') as Config[];
  const probeBefore = speedProbe();
  console.log(`machine speed probe: ${probeBefore.toFixed(1)} GFLOP/s (our direct SIMD conv, one thread)`);
  const script = fileURLToPath(import.meta.url);
  const passThrough = ['batches', 'batch-size', 'slow-batches', 'cpu-batch-size'].flatMap((n) =>
    process.argv.includes(`--${n}`) ? [`--${n}`, arg(n, '')] : [],
  );
  const results: Result[] = [];
  for (const config of configs) {
    console.log(`running ${config} ...`);
    try {
      const [command, args] = config === 'pytorch' ? pytorchCommand() : [process.execPath, [script, '--child', config, ...passThrough]];
      // PyTorch's OpenMP threads get the wait policy ours have (lib/tf/native-addon.ts): spinning
      // threads halved its throughput on the shared VM, so the default would flatter us.
      const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'passive' };
      const out = execFileSync(command, args, {
        env,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 26,
      });
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (line === undefined) throw new Error('no result line');
      const result = { ...(JSON.parse(line.slice(7)) as Result), config };
      results.push(result);
      printResult(result);
    } catch (err) {
      console.error(`${config}: failed: ${String(err)}`);
    }
  }
  console.log('\nimages/s for the seed model (batch size and count per line):');
  for (const r of results) printResult(r);
  const base = results.find((r) => r.config === 'wasm');
  if (base !== undefined) {
    console.log('\nratios to wasm (wall img/s, cpu img/s), measured in this run:');
    for (const r of results)
      console.log(`  ${r.config.padEnd(14)} ${(r.imgPerSec / base.imgPerSec).toPrecision(3)}x  ${(r.imgPerCpuSec / base.imgPerCpuSec).toPrecision(3)}x`);
  }
  const torch = results.filter((r) => r.config === 'pytorch');
  if (torch.length > 0) {
    // PyTorch before and after: its mean, so a drift of the machine's speed during the run shows.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const wall = mean(torch.map((r) => r.imgPerSec));
    const cpu = mean(torch.map((r) => r.imgPerCpuSec));
    console.log(`\nratios to PyTorch (${torch.map((r) => r.imgPerSec.toFixed(1)).join(' / ')} img/s; wall, cpu):`);
    for (const r of results.filter((x) => x.config !== 'pytorch'))
      console.log(`  ${r.config.padEnd(14)} ${(r.imgPerSec / wall).toPrecision(3)}x  ${(r.imgPerCpuSec / cpu).toPrecision(3)}x`);
  }
  for (const r of results) printBreakdown(r);
  console.log(`\nmachine speed probe: ${probeBefore.toFixed(1)} GFLOP/s before, ${speedProbe().toFixed(1)} GFLOP/s after`);
}

const childIndex = process.argv.indexOf('--child');
if (childIndex >= 0) await child(process.argv[childIndex + 1] as Config);
else main();
