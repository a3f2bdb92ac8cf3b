// The model as declared in pipeline.yaml: a list of Keras-like layers, validated like any param.
// Field names follow Keras (`kernel_size`, `pool_size`, ...) so a Keras model reads across directly.
import { z } from 'zod';

export const ACTIVATIONS = ['relu', 'softmax', 'sigmoid', 'tanh', 'linear', 'elu', 'selu', 'softplus', 'relu6'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];

const activation = z.enum(ACTIVATIONS);
const size2 = z.union([z.int().positive(), z.tuple([z.int().positive(), z.int().positive()])]);
const padding = z.enum(['valid', 'same']);

export const Conv2DSpec = z.strictObject({
  type: z.literal('conv2d'),
  filters: z.int().positive(),
  kernel_size: size2.describe('e.g. 3 or [3, 3]'),
  strides: size2.default(1),
  padding: padding.default('valid'),
  activation: activation.default('linear'),
  use_bias: z.boolean().default(true),
});

export const MaxPooling2DSpec = z.strictObject({
  type: z.literal('maxPooling2d'),
  pool_size: size2.default(2),
  /** Defaults to `pool_size`, as in Keras. */
  strides: size2.optional(),
  padding: padding.default('valid'),
});

export const AveragePooling2DSpec = z.strictObject({
  type: z.literal('averagePooling2d'),
  pool_size: size2.default(2),
  strides: size2.optional(),
  padding: padding.default('valid'),
});

export const GlobalAveragePooling2DSpec = z.strictObject({ type: z.literal('globalAveragePooling2d') });

export const DropoutSpec = z.strictObject({
  type: z.literal('dropout'),
  rate: z.number().min(0).lt(1),
});

export const FlattenSpec = z.strictObject({ type: z.literal('flatten') });

export const DenseSpec = z.strictObject({
  type: z.literal('dense'),
  units: z.int().positive(),
  activation: activation.default('linear'),
  use_bias: z.boolean().default(true),
});

export const ActivationSpec = z.strictObject({
  type: z.literal('activation'),
  activation,
});

export const BatchNormalizationSpec = z.strictObject({
  type: z.literal('batchNormalization'),
  momentum: z.number().gt(0).lt(1).default(0.99),
  epsilon: z.number().positive().default(1e-3),
});

export const LayerSpec = z.discriminatedUnion('type', [
  Conv2DSpec,
  MaxPooling2DSpec,
  AveragePooling2DSpec,
  GlobalAveragePooling2DSpec,
  DropoutSpec,
  FlattenSpec,
  DenseSpec,
  ActivationSpec,
  BatchNormalizationSpec,
]);
export type LayerSpec = z.output<typeof LayerSpec>;
export type LayerSpecInput = z.input<typeof LayerSpec>;

/**
 * The notebook's network ("Deep Learning with Keras", CIFAR-10 chapter), layer for layer, with
 * separate Activation layers as it declared them so summary.txt matches its model.summary().
 * Its fourth convolution is written `Conv2D(64, 3, 3)`, Keras-1 positional style. Standalone
 * Keras 2.x (which the notebook ran: "Using TensorFlow backend.") converts that legacy call to
 * kernel_size (3, 3), strides 1, padding 'valid' — not kernel 3 with strides 3 — giving
 * 32→32→32→pool 16→16→14→pool 7, a 7·7·64 = 3136 flatten and 1,676,842 parameters.
 */
export const NOTEBOOK_MODEL: LayerSpecInput[] = [
  { type: 'conv2d', filters: 32, kernel_size: [3, 3], padding: 'same' },
  { type: 'activation', activation: 'relu' },
  { type: 'conv2d', filters: 32, kernel_size: [3, 3], padding: 'same' },
  { type: 'activation', activation: 'relu' },
  { type: 'maxPooling2d', pool_size: [2, 2] },
  { type: 'dropout', rate: 0.25 },
  { type: 'conv2d', filters: 64, kernel_size: [3, 3], padding: 'same' },
  { type: 'activation', activation: 'relu' },
  { type: 'conv2d', filters: 64, kernel_size: [3, 3] },
  { type: 'activation', activation: 'relu' },
  { type: 'maxPooling2d', pool_size: [2, 2] },
  { type: 'dropout', rate: 0.25 },
  { type: 'flatten' },
  { type: 'dense', units: 512 },
  { type: 'activation', activation: 'relu' },
  { type: 'dropout', rate: 0.5 },
  { type: 'dense', units: 10 },
  { type: 'activation', activation: 'softmax' },
];

export const ModelSpec = z
  .array(LayerSpec)
  .min(1)
  .default(() => NOTEBOOK_MODEL.map((l) => LayerSpec.parse(l)))
  .describe('Keras-like layers, input shape taken from the data; the last layer must output one value per class');
export type ModelSpec = z.output<typeof ModelSpec>;
