// The train stage's best-epoch handling: the stopping spec from params, the best epoch's weights
// put back into the model (restore_best) and what train.json records about both.
import type * as tf from '@tensorflow/tfjs';
import { StageError } from '../../engine/errors.js';
import { resolveMode, type StoppingSpec } from '../../lib/model/best.js';
import { copyWeights } from '../../lib/model/build.js';
import { checkpointDir, type EpochLogs, type LoopState } from '../../lib/model/checkpoint.js';
import { loadModel } from '../../lib/model/io.js';
import type { TrainParams } from './params.js';

export function stoppingSpec(p: TrainParams): StoppingSpec {
  return { monitor: p.monitor, mode: resolveMode(p.monitor, p.mode), min_delta: p.min_delta, ...(p.patience !== undefined ? { patience: p.patience } : {}) };
}

/** A validation metric can only be acted on when there is a validation split. */
export function checkMonitor(stage: string, p: TrainParams, hasValidation: boolean): void {
  if (hasValidation || !p.monitor.startsWith('val_') || (p.patience === undefined && !p.restore_best)) return;
  const uses = [p.patience !== undefined ? `patience: ${p.patience}` : '', p.restore_best ? 'restore_best: true' : ''].filter(Boolean).join(' and ');
  throw new StageError(
    `train ${stage}: ${uses} judge epochs by monitor: ${p.monitor}, but the normalize stage has no validation split; set its validation_split, or monitor: ${p.monitor.slice(4)}`,
  );
}

/** The checkpoint to keep beside the latest one: the best epoch's, when the stage ends with it. */
export function keptCheckpoint(p: TrainParams, state: LoopState): number | undefined {
  return p.restore_best ? (state.best?.epoch ?? undefined) : undefined;
}

export interface KeptWeights {
  kept: 'best' | 'last';
  epoch: number;
}

/**
 * With restore_best, loads the best epoch's weights (its checkpoint, kept in `resumeDir`) into
 * `model`; the model otherwise holds the last epoch's.
 */
export async function restoreBest(p: TrainParams, model: tf.LayersModel, resumeDir: string, final: LoopState): Promise<KeptWeights> {
  const best = final.best?.epoch ?? null;
  if (!p.restore_best || best === null) return { kept: 'last', epoch: final.epoch };
  if (best !== final.epoch) {
    const dir = checkpointDir(resumeDir, best);
    const saved = await loadModel(dir);
    try {
      copyWeights(saved, model, `best checkpoint ${dir}`);
    } finally {
      saved.dispose();
    }
  }
  return { kept: 'best', epoch: best };
}

/** train.json's account of the best epoch, early stopping and the weights kept. */
export function bestRecord(p: TrainParams, spec: StoppingSpec, final: LoopState, kept: KeptWeights) {
  const best = final.best;
  const logsOf = (epoch: number): EpochLogs | null => final.history.find((h) => h.epoch === epoch) ?? null;
  return {
    epochs_trained: final.history.length,
    best: best && best.epoch !== null ? { monitor: spec.monitor, mode: spec.mode, min_delta: spec.min_delta, epoch: best.epoch, value: best.value } : null,
    early_stopping: spec.patience !== undefined ? { patience: spec.patience, stopped_after_epoch: best?.stopped_after ?? null } : null,
    restore_best: p.restore_best,
    kept_weights: kept.kept,
    kept_epoch: kept.epoch,
    kept: logsOf(kept.epoch),
  };
}
