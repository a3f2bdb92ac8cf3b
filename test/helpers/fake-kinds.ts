// Tiny stage kinds for config/graph/schema tests, so those tests do not depend on the real kinds' params.
import { z } from 'zod';
import { defineStage, type StageKind } from '../../engine/contract.js';

/** `uses: source`: a strict object with a required int and a default. */
export const sourceKind = defineStage({
  name: 'source',
  version: 1,
  description: 'Produces numbers',
  params: z.strictObject({
    size: z.int().positive().describe('how many'),
    seed: z.int().default(0),
  }),
  outputs: [{ name: 'numbers.json', type: 'json', description: 'the numbers' }],
  run: async () => {},
});

const layer = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('dense'), units: z.int().positive() }),
  z.strictObject({ type: z.literal('dropout'), rate: z.number().min(0).lt(1) }),
]);

/** `uses: learn`: a plain (stripping) z.object with nested params and a param naming a stage. */
export const learnKind = defineStage({
  name: 'learn',
  version: 1,
  description: 'Learns from a source',
  params: z.object({
    epochs: z.int().positive(),
    lr: z.number().positive().default(0.01),
    shuffle: z.boolean().default(true),
    init_from: z.string().optional().describe('a learn stage to start from'),
    optimizer: z.object({ name: z.enum(['sgd', 'adam']).default('sgd'), momentum: z.number().min(0).default(0) }).default({ name: 'sgd', momentum: 0 }),
    layers: z.array(layer).default([]),
    tag: z.string().default(''),
  }),
  outputs: [{ name: 'model.json', type: 'json', description: 'the model' }],
  stageRefs: (p) => (p.init_from ? [p.init_from] : []),
  run: async () => {},
});

export const fakeKinds: ReadonlyMap<string, StageKind> = new Map<string, StageKind>(([sourceKind, learnKind] as StageKind[]).map((k) => [k.name, k]));
