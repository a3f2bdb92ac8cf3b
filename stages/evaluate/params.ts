// The evaluate stage's params: shared by the kind (evaluate.ts) and the code that runs it (run.ts).
import { z } from 'zod';
import { BackendParam } from '../../lib/tf/backend-param.js';

export const EvaluateParams = z.strictObject({
  backend: BackendParam,
  model: z.string().min(1).optional().describe('the train stage to evaluate (default: the single train input)'),
  batch_size: z.int().positive().default(128).describe('test images per prediction batch'),
  top_mistakes: z.int().min(0).default(20).describe('how many most confident mistakes to list'),
  // Optional, not defaulted: evaluate stages that do not use it keep their keys.
  tta: z
    .enum(['flip'])
    .optional()
    .describe(
      'test-time augmentation: `flip` averages the class probabilities of each test image and its mirror image (metrics.json also keeps the plain figures)',
    ),
});
export type EvaluateParams = z.output<typeof EvaluateParams>;
