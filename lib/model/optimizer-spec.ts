// The optimizer params schema (tf-free, so loading pipeline.yaml does not load TensorFlow.js).
import { z } from 'zod';

// Optional rather than defaulted: a spec without it is the spec as it was before the option
// existed, so cache keys of pipelines that do not use it stay the same.
const weightDecay = z
  .number()
  .min(0)
  .lt(1)
  .optional()
  .describe(
    'decoupled weight decay (AdamW, Loshchilov & Hutter): every step, kernels shrink by lr·weight_decay before the update (lr: the scheduled rate); biases and 1-D weights are not decayed; adam with weight_decay is AdamW. Default 0; in the cache key only when not 0',
  );

const LR = 'learning rate (the initial one when lr_schedule changes it)';
const EPSILON = 'added to the denominator for numerical stability';

export const OptimizerSpec = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('rmsprop'),
    lr: z.number().positive().default(0.001).describe(LR),
    rho: z.number().gt(0).lt(1).default(0.9).describe('decay of the moving average of squared gradients (Keras 2 RMSprop)'),
    epsilon: z.number().positive().default(1e-7).describe(EPSILON),
    weight_decay: weightDecay,
  }),
  z.strictObject({
    type: z.literal('adam'),
    lr: z.number().positive().default(0.001).describe(LR),
    beta_1: z.number().gt(0).lt(1).default(0.9).describe('decay of the first-moment (mean) estimate'),
    beta_2: z.number().gt(0).lt(1).default(0.999).describe('decay of the second-moment (squared gradient) estimate'),
    epsilon: z.number().positive().default(1e-7).describe(EPSILON),
    weight_decay: weightDecay,
  }),
  z.strictObject({
    type: z.literal('sgd'),
    lr: z.number().positive().default(0.01).describe(LR),
    momentum: z.number().min(0).lt(1).default(0).describe('momentum (Keras 2 SGD rule)'),
    nesterov: z.boolean().default(false).describe('Nesterov momentum'),
    weight_decay: weightDecay,
  }),
]);
export type OptimizerSpec = z.output<typeof OptimizerSpec>;
export const DEFAULT_OPTIMIZER: OptimizerSpec = { type: 'rmsprop', lr: 0.001, rho: 0.9, epsilon: 1e-7 };

/** The spec as it enters cache keys: `weight_decay: 0` is the same optimizer as no weight_decay. */
export function optimizerKey(spec: OptimizerSpec): OptimizerSpec {
  if (spec.weight_decay !== 0) return spec;
  const { weight_decay: _none, ...rest } = spec;
  return rest;
}
