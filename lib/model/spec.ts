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

/** `units: auto`: one output per class of the data, resolved when the model is built. */
export const AUTO_UNITS = 'auto';

export const DenseSpec = z.strictObject({
  type: z.literal('dense'),
  units: z.union([z.int().positive(), z.literal(AUTO_UNITS)]).describe('number of outputs; `auto` (the last dense layer only): one per class of the data'),
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
  { type: 'dense', units: AUTO_UNITS },
  { type: 'activation', activation: 'softmax' },
];

/**
 * The default model as it entered cache keys before `units: auto` existed: the notebook's list
 * with its CIFAR-10 head (10 units). The default's key params stay this list, so the default
 * pipeline keeps its keys and results; the class count is in the key through the data anyway.
 */
export const NOTEBOOK_MODEL_KEY: LayerSpecInput[] = NOTEBOOK_MODEL.map((l) => (l.type === 'dense' && l.units === AUTO_UNITS ? { ...l, units: 10 } : l));

/** Index of the last dense layer, or -1. */
function lastDense(layers: readonly LayerSpec[]): number {
  for (let i = layers.length - 1; i >= 0; i--) if (layers[i]!.type === 'dense') return i;
  return -1;
}

export const ModelSpec = z
  .array(LayerSpec)
  .min(1)
  .superRefine((layers, ctx) => {
    const last = lastDense(layers);
    layers.forEach((l, i) => {
      if (l.type === 'dense' && l.units === AUTO_UNITS && i !== last) {
        ctx.addIssue({ code: 'custom', path: [i, 'units'], message: 'units: auto is for the last dense layer only (one output per class)' });
      }
    });
  })
  .default(() => NOTEBOOK_MODEL.map((l) => LayerSpec.parse(l)))
  .describe(
    "Keras-like layers (Keras field names), input shape taken from the data; the last layer must output one value per class: `units: auto` on the last dense layer does that (the default, the notebook's CNN with 1,676,842 params on CIFAR-10, has it, so any image size and class count works)",
  );
export type ModelSpec = z.output<typeof ModelSpec>;

/** The layers with `units: auto` resolved to `classes`. */
export function resolveUnits(layers: readonly LayerSpec[], classes: number): LayerSpec[] {
  return layers.map((l) => (l.type === 'dense' && l.units === AUTO_UNITS ? { ...l, units: classes } : l));
}

/** The model as it enters the train stage's cache key: the default keeps its key from before `auto`. */
export function modelKey(layers: readonly LayerSpec[]): readonly LayerSpec[] {
  const isDefault = JSON.stringify(layers) === JSON.stringify(ModelSpec.parse(undefined));
  return isDefault ? NOTEBOOK_MODEL_KEY.map((l) => LayerSpec.parse(l)) : layers;
}
