// The training loop: seeded shuffle per epoch, one pass over the training rows per epoch, Keras
// verbose=1-like progress (bar with ETA, running loss/acc; val loss/acc at the end of each epoch),
// per-epoch history, the best epoch so far and early stopping (best.ts), and a checkpoint after
// every epoch. How one step trains (main thread or
// data-parallel worker threads) is the injected `step` strategy (train-step.ts).
import type * as tf from '@tensorflow/tfjs';
import type { Logger, ProgressReporter } from '../progress.js';
import { InterruptedError } from '../errors.js';
import { NO_BEST, nextBest, replayBest, type StoppingSpec } from './best.js';
import { clearDropoutSeeds } from './build.js';
import type { EpochLogs, LoopState } from './checkpoint.js';
import type { Rows } from './data.js';
import { lossAndAccuracy, predictRows, yieldToEventLoop } from './predict.js';
import { Rng } from './rng.js';
import { learningRate, type LrScheduleSpec } from './schedule.js';
import type { TrainStep } from './train-step.js';

export interface EpochEndEvent {
  /** Stage instance name. */
  stage: string;
  logs: EpochLogs;
  /** Loop state after this epoch (already checkpointed). */
  state: LoopState;
}

type EpochEndListener = (event: EpochEndEvent) => void;
const epochEndListeners = new Set<EpochEndListener>();

/**
 * Subscribes to "epoch finished and checkpointed" events of every training loop in this process
 * (tests use it to interrupt a run at a known point). Returns the unsubscribe function.
 */
export function onEpochEnd(listener: EpochEndListener): () => void {
  epochEndListeners.add(listener);
  return () => epochEndListeners.delete(listener);
}

export interface FitOptions {
  stage: string;
  /** The main-thread model: validated after each epoch (once `step.sync()` has updated it). */
  model: tf.LayersModel;
  /** Performs one optimizer step (localStep or parallelStep). */
  step: TrainStep;
  /** Training rows for epoch `epoch` (0-based): e.g. a different augmented copy per epoch. */
  trainRows(epoch: number): Promise<Rows>;
  val?: { rows: Rows; targets: Float32Array };
  epochs: number;
  batchSize: number;
  baseLr: number;
  schedule: LrScheduleSpec;
  /** Where to start: a fresh state or one restored from a checkpoint. */
  state: LoopState;
  /** Tracks the best epoch of `monitor`; with `patience`, stops when it no longer improves. */
  stopping?: StoppingSpec;
  /** Persists the state after an epoch (model + optimizer + loop state). */
  checkpoint(state: LoopState): Promise<void>;
  signal: AbortSignal;
  progress: ProgressReporter;
  log: Logger;
}

const f4 = (v: number) => v.toFixed(4);

export function formatLogs(logs: EpochLogs): string {
  let text = `${Math.round(logs.seconds)}s - loss: ${f4(logs.loss)} - acc: ${f4(logs.acc)}`;
  if (logs.val_loss !== undefined) text += ` - val_loss: ${f4(logs.val_loss)} - val_acc: ${f4(logs.val_acc!)}`;
  return text;
}

function checkAborted(signal: AbortSignal, where: string): void {
  if (signal.aborted) throw new InterruptedError(`training interrupted ${where}; a rerun resumes from the last checkpoint`);
}

/** Awaits `work`; if it fails because the run was aborted (e.g. workers terminated), says so. */
async function unlessAborted<T>(signal: AbortSignal, where: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    checkAborted(signal, where);
    throw err;
  }
}

/** Runs epochs `state.epoch` … `epochs − 1`; returns the final loop state. */
export async function fit(o: FitOptions): Promise<LoopState> {
  const spec = o.stopping;
  let state = spec && !o.state.best ? { ...o.state, best: replayBest(spec, o.state.history) } : o.state;
  const stopped = (s: LoopState) => s.best !== undefined && s.best.stopped_after !== null;
  const rng = Rng.fromState(state.rng);
  const nextSeed = () => rng.nextUint32();
  try {
    for (let epoch = state.epoch; epoch < o.epochs && !stopped(state); epoch++) {
      checkAborted(o.signal, `before epoch ${epoch + 1}`);
      const rows = await o.trainRows(epoch);
      const n = rows.count;
      const steps = Math.ceil(n / o.batchSize);
      const order = rng.permutation(n);
      rows.plan?.(order, o.batchSize); // rows that read ahead start on this epoch's batches now
      const label = `Epoch ${epoch + 1}/${o.epochs}`;
      o.progress.start(label, n, 'img');
      const started = performance.now();
      let seen = 0;
      let lossSum = 0;
      let accSum = 0;
      let firstLr = o.baseLr;
      for (let step = 0; step < steps; step++) {
        checkAborted(o.signal, `in epoch ${epoch + 1}`);
        const batch = order.subarray(step * o.batchSize, Math.min(n, (step + 1) * o.batchSize));
        const lr = learningRate(o.schedule, o.baseLr, { epoch, step, stepsPerEpoch: steps, epochs: o.epochs });
        if (step === 0) firstLr = lr;
        const { loss, acc } = await unlessAborted(o.signal, `in epoch ${epoch + 1}`, o.step.run(rows, batch, lr, nextSeed));
        if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at epoch ${epoch + 1}, step ${step + 1}`);
        seen += batch.length;
        lossSum += loss * batch.length;
        accSum += acc * batch.length;
        // The reporter shows rate and ETA itself.
        o.progress.tick(batch.length, `loss: ${f4(lossSum / seen)} - acc: ${f4(accSum / seen)}`);
        await yieldToEventLoop();
      }
      const logs: EpochLogs = { epoch: epoch + 1, loss: lossSum / seen, acc: accSum / seen, lr: firstLr, seconds: 0 };
      await unlessAborted(o.signal, `after epoch ${epoch + 1}`, o.step.sync());
      if (o.val && o.val.rows.count > 0) {
        const { rows } = o.val;
        const probs = await unlessAborted(
          o.signal,
          `validating epoch ${epoch + 1}`,
          o.step.predict?.(rows, o.batchSize, o.signal) ?? predictRows(o.model, rows, o.batchSize, { signal: o.signal }),
        );
        const { loss, accuracy } = lossAndAccuracy(probs, o.val.targets, o.val.rows.classes);
        logs.val_loss = loss;
        logs.val_acc = accuracy;
      }
      logs.seconds = (performance.now() - started) / 1000;
      const best = spec ? nextBest(spec, state.best ?? NO_BEST, logs) : undefined;
      state = { epoch: epoch + 1, history: [...state.history, logs], rng: rng.state(), ...(best ? { best } : {}) };
      clearDropoutSeeds(o.model);
      await o.checkpoint(state);
      o.progress.done();
      o.log.info(`${label} - ${formatLogs(logs)}`);
      for (const listener of epochEndListeners) listener({ stage: o.stage, logs, state });
      if (spec && best && stopped(state)) {
        o.log.info(
          `early stopping: ${spec.monitor} did not improve${spec.min_delta ? ` by more than ${spec.min_delta}` : ''} for ${best.wait} epoch${best.wait === 1 ? '' : 's'} (best ${best.value === null ? '—' : f4(best.value)} at epoch ${best.epoch ?? '—'})`,
        );
      }
    }
  } finally {
    clearDropoutSeeds(o.model);
  }
  return state;
}
