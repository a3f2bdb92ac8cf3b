// Learning-rate schedules, evaluated before every step from (epoch, step) so a resumed run gets
// the same rates as an uninterrupted one.
import { z } from 'zod';

export const LrScheduleSpec = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('constant') }),
  z.strictObject({
    type: z.literal('cosine'),
    /** Final rate as a fraction of the initial one (Keras CosineDecay's `alpha`). */
    alpha: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe("final rate as a fraction of the initial one (Keras CosineDecay's alpha); the rate follows a cosine per step"),
    /** Linear warm-up from 0 over this many epochs, then cosine decay over the rest. */
    warmup_epochs: z.number().min(0).default(0).describe('linear warm-up from 0 over this many epochs, then cosine decay over the rest'),
  }),
  z.strictObject({
    type: z.literal('step'),
    /** Multiply the rate by `gamma` every `step_epochs` epochs. */
    step_epochs: z.int().positive().default(10).describe('multiply the rate by gamma every this many epochs'),
    gamma: z.number().positive().default(0.1).describe('the factor applied every step_epochs epochs'),
  }),
]);
export type LrScheduleSpec = z.output<typeof LrScheduleSpec>;

export interface ScheduleClock {
  /** 0-based epoch. */
  epoch: number;
  /** 0-based step within the epoch. */
  step: number;
  stepsPerEpoch: number;
  epochs: number;
}

export function learningRate(spec: LrScheduleSpec, baseLr: number, clock: ScheduleClock): number {
  switch (spec.type) {
    case 'constant':
      return baseLr;
    case 'step':
      return baseLr * spec.gamma ** Math.floor(clock.epoch / spec.step_epochs);
    case 'cosine': {
      const t = clock.epoch * clock.stepsPerEpoch + clock.step;
      const total = clock.epochs * clock.stepsPerEpoch;
      const warm = Math.round(spec.warmup_epochs * clock.stepsPerEpoch);
      if (t < warm) return (baseLr * (t + 1)) / warm;
      const progress = Math.min(1, (t - warm) / Math.max(1, total - warm));
      const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
      return baseLr * ((1 - spec.alpha) * cosine + spec.alpha);
    }
  }
}
