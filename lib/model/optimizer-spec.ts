// The optimizer params schema (tf-free, so loading pipeline.yaml does not load TensorFlow.js).
import { z } from 'zod';

export const OptimizerSpec = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('rmsprop'),
    lr: z.number().positive().default(0.001),
    rho: z.number().gt(0).lt(1).default(0.9),
    epsilon: z.number().positive().default(1e-7),
  }),
  z.strictObject({
    type: z.literal('adam'),
    lr: z.number().positive().default(0.001),
    beta_1: z.number().gt(0).lt(1).default(0.9),
    beta_2: z.number().gt(0).lt(1).default(0.999),
    epsilon: z.number().positive().default(1e-7),
  }),
  z.strictObject({
    type: z.literal('sgd'),
    lr: z.number().positive().default(0.01),
    momentum: z.number().min(0).lt(1).default(0),
    nesterov: z.boolean().default(false),
  }),
]);
export type OptimizerSpec = z.output<typeof OptimizerSpec>;
export const DEFAULT_OPTIMIZER: OptimizerSpec = { type: 'rmsprop', lr: 0.001, rho: 0.9, epsilon: 1e-7 };
