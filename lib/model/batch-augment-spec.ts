// The train stage's batch_augment and label_smoothing params (tf-free, so loading pipeline.yaml
// does not load TensorFlow.js). The transforms themselves: batch-augment.ts.
import { z } from 'zod';

export const FILL_MODES = ['constant', 'nearest', 'reflect', 'wrap'] as const;
export type FillMode = (typeof FILL_MODES)[number];

export const BatchAugmentSpec = z
  .strictObject({
    crop_padding: z
      .int()
      .min(0)
      .default(4)
      .describe('pad every side by this many pixels and crop a random window of the original size: shifts of −p..p pixels on each axis'),
    fill_mode: z.enum(FILL_MODES).default('reflect').describe('how the padding is filled (scipy.ndimage semantics, as in augment)'),
    cval: z.number().default(0).describe('the padding value for fill_mode constant, in model-input units (0 is black with normalize method scale)'),
    horizontal_flip: z.boolean().default(true).describe('mirror left-right with probability ½'),
  })
  .describe(
    "random crop from a padded image and horizontal flip, drawn per image and epoch for each training batch as it is gathered, so nothing is stored — torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip(), or Keras' RandomTranslation with whole-pixel shifts + RandomFlip('horizontal') (scipy's reflect, used here as in augment, repeats the edge pixel: torchvision calls that symmetric). The draw depends only on (seed, epoch, training row): the same for any worker count and after a resume. Applies to augmented copies too; validation is never augmented. Off when absent (and then not in the cache key)",
  );
export type BatchAugmentSpec = z.output<typeof BatchAugmentSpec>;

export const LabelSmoothing = z
  .number()
  .min(0)
  .lt(1)
  .default(0)
  .describe(
    'targets become (1 − ε)·one-hot + ε/K during training (Keras categorical_crossentropy label_smoothing); the training loss in history.json is against those targets, validation loss and evaluate against the true labels. In the cache key only when not 0',
  );
