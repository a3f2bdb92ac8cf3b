// The best epoch so far and early stopping, as Keras' EarlyStopping(monitor, mode, min_delta,
// patience, restore_best_weights) decides them: an epoch improves on the best when its monitored
// value beats the best by more than min_delta; after `patience` epochs in a row without an
// improvement, training stops. Pure and tf-free: the state after each epoch is part of the
// checkpoint, so a resumed run makes exactly the decisions an uninterrupted one would.

export const MONITORS = ['val_loss', 'val_acc', 'loss', 'acc'] as const;
export type Monitor = (typeof MONITORS)[number];
export type MonitorMode = 'auto' | 'min' | 'max';

export interface StoppingSpec {
  monitor: Monitor;
  /** Resolved: `min` for losses, `max` for accuracies. */
  mode: 'min' | 'max';
  min_delta: number;
  /** Epochs without improvement before training stops; undefined: never stop early. */
  patience?: number;
}

export interface BestState {
  /** 1-based epoch of the best monitored value (null while none was measured). */
  epoch: number | null;
  value: number | null;
  /** Epochs since the last improvement (epochs without a measurement do not count). */
  wait: number;
  /** The epoch after which patience ran out and training stopped (null: it did not). */
  stopped_after: number | null;
}

/** Keras' `auto`: accuracies are maximised, losses minimised. */
export function resolveMode(monitor: Monitor, mode: MonitorMode): 'min' | 'max' {
  if (mode !== 'auto') return mode;
  return monitor.endsWith('acc') ? 'max' : 'min';
}

/** What an epoch measured (checkpoint.ts' EpochLogs), as far as judging it goes. */
export type EpochValues = { epoch: number } & Partial<Record<Monitor, number>>;

export const NO_BEST: BestState = { epoch: null, value: null, wait: 0, stopped_after: null };

function improves(spec: StoppingSpec, value: number, best: number | null): boolean {
  if (!Number.isFinite(value)) return false;
  if (best === null) return true;
  return spec.mode === 'min' ? value < best - spec.min_delta : value > best + spec.min_delta;
}

/** The state after the epoch `logs` describes. */
export function nextBest(spec: StoppingSpec, state: BestState, logs: EpochValues): BestState {
  const value = logs[spec.monitor];
  if (value === undefined || state.stopped_after !== null) return state;
  if (improves(spec, value, state.value)) return { epoch: logs.epoch, value, wait: 0, stopped_after: null };
  const wait = state.wait + 1;
  const stop = spec.patience !== undefined && wait >= spec.patience;
  return { ...state, wait, stopped_after: stop ? logs.epoch : null };
}

/** The state after `history` (for checkpoints written before the state was recorded). */
export function replayBest(spec: StoppingSpec, history: readonly EpochValues[]): BestState {
  return history.reduce((state, logs) => nextBest(spec, state, logs), NO_BEST);
}
