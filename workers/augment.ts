// Piscina worker for the augment stage: one task = one chunk of training rows of one copy,
// read from and written to SharedArrayBuffers (see lib/augment/chunk.ts). Threads stay alive
// across tasks; nothing is cached between tasks, so any thread may take any chunk.
import { runAugmentTask, type AugmentTask } from '../lib/augment/chunk.js';

export default function augmentChunk(task: AugmentTask): number {
  return runAugmentTask(task);
}
