// Per-epoch training checkpoints in the stage's resume directory: model weights, optimizer state
// and the loop state (completed epochs, history, RNG state), so a rerun of an interrupted stage
// continues from the last completed epoch and ends with the same weights as an uninterrupted run.
//
// Layout: <dir>/epoch-NNNN/{model.json, weights.bin, optimizer.json, optimizer.bin, state.json}
// and <dir>/latest.json naming the newest complete one (written last, atomically). The best
// epoch's directory is kept beside it while a stage is to end with the best weights.
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { copyWeights } from './build.js';
import { loadModel, saveModel } from './io.js';
import type { BestState } from './best.js';
import type { KerasOptimizer } from './optimizers.js';
import type { RngState } from './rng.js';

export interface EpochLogs {
  /** 1-based epoch number. */
  epoch: number;
  loss: number;
  acc: number;
  val_loss?: number;
  val_acc?: number;
  /** Learning rate at the epoch's first step. */
  lr: number;
  seconds: number;
}

/** Everything besides tensors that the training loop needs to continue. */
export interface LoopState {
  /** Completed epochs. */
  epoch: number;
  history: EpochLogs[];
  rng: RngState;
  /** The best epoch so far and the early-stopping count (absent in checkpoints from before it existed). */
  best?: BestState;
}

interface Latest {
  dir: string;
  /** Identifies the run configuration; a checkpoint from another configuration is ignored. */
  key: string;
}

interface OptimizerFile {
  specs: tf.io.WeightsManifestEntry[];
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(value));
  await rename(`${path}.tmp`, path);
}

const epochDirName = (epoch: number) => `epoch-${String(epoch).padStart(4, '0')}`;

/** The checkpoint directory of epoch `epoch` (1-based): its model.json + weights.bin load with loadModel. */
export function checkpointDir(root: string, epoch: number): string {
  return join(root, epochDirName(epoch));
}

/**
 * Writes the checkpoint after epoch `state.epoch` and removes older ones, but for the one of
 * epoch `keep` (the best epoch's weights, when the stage is to end with them).
 */
export async function saveCheckpoint(
  root: string,
  key: string,
  model: tf.LayersModel,
  optimizer: KerasOptimizer,
  state: LoopState,
  keep?: number,
): Promise<string> {
  const name = epochDirName(state.epoch);
  const kept = keep === undefined ? undefined : epochDirName(keep);
  const dir = join(root, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await saveModel(model, dir);
  const optimizerWeights = await optimizer.getWeights();
  const { data, specs } = await tf.io.encodeWeights(optimizerWeights);
  optimizerWeights[0]!.tensor.dispose(); // the iteration count is a fresh scalar; the rest are live slots
  await writeFile(join(dir, 'optimizer.bin'), Buffer.from(data));
  await writeFile(join(dir, 'optimizer.json'), JSON.stringify({ specs } satisfies OptimizerFile));
  await writeFile(join(dir, 'state.json'), JSON.stringify(state));
  await writeJsonAtomic(join(root, 'latest.json'), { dir: name, key } satisfies Latest);
  // Older checkpoints are no longer needed once latest.json points at the new one.
  for (const entry of await readdir(root)) {
    if (entry.startsWith('epoch-') && entry !== name && entry !== kept) await rm(join(root, entry), { recursive: true, force: true });
  }
  return dir;
}

/**
 * Restores the newest checkpoint made with `key` into `model` and `optimizer`; returns its loop
 * state, or null when there is none (or it belongs to another configuration).
 */
export async function restoreCheckpoint(
  root: string,
  key: string,
  model: tf.LayersModel,
  optimizer: KerasOptimizer,
): Promise<{ state: LoopState; dir: string } | null> {
  const latestPath = join(root, 'latest.json');
  if (!existsSync(latestPath)) return null;
  const latest = JSON.parse(await readFile(latestPath, 'utf8')) as Latest;
  if (latest.key !== key) return null;
  const dir = join(root, latest.dir);
  const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as LoopState;
  const saved = await loadModel(dir);
  try {
    copyWeights(saved, model, `checkpoint ${dir}`);
  } finally {
    saved.dispose();
  }
  const { specs } = JSON.parse(await readFile(join(dir, 'optimizer.json'), 'utf8')) as OptimizerFile;
  const bin = await readFile(join(dir, 'optimizer.bin'));
  const map = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer, specs);
  const weights = specs.map((s) => ({ name: s.name, tensor: map[s.name]! }));
  await optimizer.setWeights(weights);
  tf.dispose(Object.values(map));
  return { state, dir };
}
