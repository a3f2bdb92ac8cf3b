// The train stage's params (the schema pipeline.yaml is checked against and the cache key is made
// of): shared by the kind (train.ts) and the code that runs it (run.ts).
import { z } from 'zod';
import { BackendParam } from '../../lib/tf/backend-param.js';
import { DEFAULT_OPTIMIZER, OptimizerSpec, optimizerKey } from '../../lib/model/optimizer-spec.js';
import { BatchAugmentSpec, LabelSmoothing } from '../../lib/model/batch-augment-spec.js';
import { LrScheduleSpec } from '../../lib/model/schedule.js';
import { MONITORS } from '../../lib/model/best.js';
import { ModelSpec, modelKey } from '../../lib/model/spec.js';
import { WorkersParam } from '../../lib/model/workers-param.js';

/** `init_from: current` starts from the promoted model (models/current/) instead of a stage's. */
export const INIT_FROM_CURRENT = 'current';

export const TrainParams = z.strictObject({
  backend: BackendParam,
  workers: WorkersParam,
  model: ModelSpec,
  optimizer: OptimizerSpec.default(DEFAULT_OPTIMIZER).describe(
    'rmsprop, adam or sgd, with Keras 2 update rules; any of them takes decoupled weight_decay (adam with weight_decay is AdamW)',
  ),
  lr_schedule: LrScheduleSpec.default({ type: 'constant' }).describe(
    'the learning rate over training: constant, cosine (per step, with optional warm-up) or step (per epoch)',
  ),
  batch_size: z.int().positive().default(128).describe('training images per step'),
  epochs: z.int().positive().default(20).describe('passes over the training set (a checkpoint after each; an interrupted stage resumes from the last)'),
  seed: z.int().min(0).default(42).describe('seeds weight init, dropout masks and the per-epoch shuffle'),
  init_from: z
    .string()
    .min(1)
    .optional()
    .describe(
      'a train stage whose final weights this one starts from (a warm start; the architecture must match), or `current`: the promoted model in models/current/ (from scratch while there is none). Its file digests are part of the cache key',
    ),
  augmented: z.string().min(1).optional().describe('an augment stage: epoch e trains on its copy e (cycled), one pass over the training set per epoch'),
  batch_augment: BatchAugmentSpec.optional(),
  label_smoothing: LabelSmoothing,
  monitor: z
    .enum(MONITORS)
    .default('val_loss')
    .describe(
      'the per-epoch value the best epoch and early stopping judge by (history.json names: val_loss, val_acc, loss, acc); train.json records the best epoch and its value. monitor, mode, min_delta, patience and restore_best enter the cache key only when not their defaults',
    ),
  mode: z
    .enum(['auto', 'min', 'max'])
    .default('auto')
    .describe('whether lower (min) or higher (max) monitor values are better; auto: max for accuracies, min for losses'),
  min_delta: z.number().min(0).default(0).describe('an epoch improves on the best only when its monitor value is better by more than this'),
  patience: z
    .int()
    .positive()
    .optional()
    .describe(
      "epochs in a row without improvement after which training stops early (Keras' EarlyStopping); absent: all epochs are trained. train.json records early_stopping.stopped_after_epoch",
    ),
  restore_best: z
    .boolean()
    .default(false)
    .describe(
      "the stage's model is the best epoch's weights instead of the last epoch's (Keras' restore_best_weights / ModelCheckpoint(save_best_only)); train.json says which were kept (kept_weights, kept_epoch). A val_* monitor that acts (patience, restore_best) needs a validation split",
    ),
  prefetch: z
    .int()
    .min(0)
    .max(64)
    .default(3)
    .describe(
      "training batches read from the dataset's shards ahead of time on another thread, in the epoch's shuffled order (0: read on the training thread). Memory: prefetch × a batch of float32 inputs. Speed only: batches are bit-identical either way and it is not in the cache key; train.json records how many batches came from the thread",
    ),
});
export type TrainParams = z.output<typeof TrainParams>;

/**
 * The params as they enter the cache key. Options added after the first release are left out
 * while they are off, so a pipeline that does not use them keeps its keys (and its results); the
 * default model (its head `units: auto`) keys as the list it was before `auto` (see modelKey).
 */
export function trainKeyParams(params: TrainParams): Record<string, unknown> {
  const {
    workers: _workers,
    prefetch: _prefetch,
    label_smoothing,
    batch_augment,
    optimizer,
    model,
    monitor,
    mode,
    min_delta,
    patience,
    restore_best,
    ...rest
  } = params;
  return {
    ...rest,
    model: modelKey(model),
    optimizer: optimizerKey(optimizer),
    ...(batch_augment !== undefined ? { batch_augment } : {}),
    ...(label_smoothing !== 0 ? { label_smoothing } : {}),
    // The best epoch is recorded in train.json even while nothing acts on it: what it is judged by is part of the result.
    ...(monitor !== 'val_loss' ? { monitor } : {}),
    ...(mode !== 'auto' ? { mode } : {}),
    ...(min_delta !== 0 ? { min_delta } : {}),
    ...(patience !== undefined ? { patience } : {}),
    ...(restore_best ? { restore_best } : {}),
  };
}
