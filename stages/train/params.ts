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
  optimizer: OptimizerSpec.default(DEFAULT_OPTIMIZER).describe('rmsprop (Keras 2 rule), adam or sgd (momentum, nesterov); any with decoupled weight_decay'),
  lr_schedule: LrScheduleSpec.default({ type: 'constant' }).describe('constant, cosine (per step) or step (per epoch)'),
  batch_size: z.int().positive().default(128),
  epochs: z.int().positive().default(20),
  seed: z.int().min(0).default(42).describe('seeds weight init, dropout masks and the per-epoch shuffle'),
  init_from: z
    .string()
    .min(1)
    .optional()
    .describe('a train stage whose final weights this one starts from, or `current`: the promoted model in models/current/ (from scratch while there is none)'),
  augmented: z.string().min(1).optional().describe('an augment stage: epoch e trains on its copy e (cycled), one pass over the training set per epoch'),
  batch_augment: BatchAugmentSpec.optional(),
  label_smoothing: LabelSmoothing,
  monitor: z
    .enum(MONITORS)
    .default('val_loss')
    .describe('the per-epoch value the best epoch and early stopping judge by (history.json names: val_loss, val_acc, loss, acc)'),
  mode: z
    .enum(['auto', 'min', 'max'])
    .default('auto')
    .describe('whether lower (min) or higher (max) monitor values are better; auto: max for accuracies, min for losses'),
  min_delta: z.number().min(0).default(0).describe('an epoch improves on the best only when its monitor value is better by more than this'),
  patience: z
    .int()
    .positive()
    .optional()
    .describe("epochs in a row without improvement after which training stops early (Keras' EarlyStopping); absent: all epochs are trained"),
  restore_best: z
    .boolean()
    .default(false)
    .describe("the stage's model is the best epoch's weights instead of the last epoch's (Keras' restore_best_weights / ModelCheckpoint(save_best_only))"),
  prefetch: z
    .int()
    .min(0)
    .max(64)
    .default(3)
    .describe('training batches read from the dataset ahead of time on another thread (0: read on the training thread); speed only, never results'),
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
