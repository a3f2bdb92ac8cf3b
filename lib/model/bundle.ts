// The model bundle: what a model directory holds besides model.json + weights.bin so that the model
// can be used on new images — class names, input size, how a picture becomes the input tensor, the
// data it was trained on and how it did. The train stage writes it as bundle.json beside model.json
// (a plain file: stock tfjs loaders keep reading model.json as they always did, and any language
// can read it); `pipeline predict` and the serving examples (examples/) read it.
import type { ResizeMethod } from '../images/resample.js';
import { RESIZE_METHODS } from '../images/resample.js';
import { BundleError } from '../errors.js';
import type { Normalization } from './data.js';

export const BUNDLE_FILE = 'bundle.json';
export const MODEL_FILE = 'model.json';
export const BUNDLE_FORMAT = 'image-classifier-bundle';
export const BUNDLE_VERSION = 1;

/** How pixels become model input; `formula` is applied per channel c after decoding and resizing. */
export interface BundleNormalization {
  method: 'scale' | 'standardize';
  formula: string;
  scale: number;
  mean: number[];
  std: number[];
}

export interface ModelBundle {
  format: typeof BUNDLE_FORMAT;
  version: typeof BUNDLE_VERSION;
  /** The tfjs LayersModel (tf.loadLayersModel layout) in the same directory. */
  model: typeof MODEL_FILE;
  /** Class names; output j of the model is the probability of classes[j]. */
  classes: string[];
  input: {
    /** [height, width, channels] of one image; the model takes a batch [N, H, W, C] (NHWC), float32. */
    size: [number, number, number];
    layout: 'NHWC';
    /** RGB (gray images expanded), or L: luma 0.299 R + 0.587 G + 0.114 B as PIL convert('L'). Alpha is dropped, not composited. */
    channel_order: 'RGB' | 'L';
    /** How an image of another size is brought to H × W (half-pixel centres, edges clamped, no antialiasing; rounded to 0..255). */
    resize: ResizeMethod;
  };
  normalization: BundleNormalization;
  output: string;
  training: {
    stage: string;
    /** The outputs digest of the normalize stage the model was trained on (its dataset, split and formula). */
    data_digest: string;
    data: string;
    /** The augment stage whose copies it trained on, with its outputs digest, or null. */
    augmented: { stage: string; outputs_digest: string } | null;
    train_count: number;
    val_count: number;
    epochs: number;
  };
  /** Training figures of the saved weights (null where there was no validation split). */
  metrics: { epoch: number; loss: number | null; acc: number | null; val_loss: number | null; val_acc: number | null };
}

export const NORMALIZATION_FORMULA = 'input = (pixel * scale - mean[c]) / std[c]';

const RESIZE_NOTE = 'half-pixel centres, edges clamped, no antialiasing';

/** normalize's normalization.json as the bundle states it (mean 0 and std 1 where the method has none). */
export function bundleNormalization(norm: Normalization, channels: number): BundleNormalization {
  const standardize = norm.method === 'standardize';
  return {
    method: norm.method,
    formula: NORMALIZATION_FORMULA,
    scale: norm.scale,
    mean: Array.from({ length: channels }, (_, c) => (standardize ? (norm.mean?.[c] ?? 0) : 0)),
    std: Array.from({ length: channels }, (_, c) => (standardize ? (norm.std?.[c] ?? 1) : 1)),
  };
}

/**
 * The resize method decode used, from the dataset's settings (decode records them as JSON), or
 * undefined when they do not say (a dataset made by other means).
 */
export function resizeFromSettings(settings: string): ResizeMethod | undefined {
  try {
    const resize = (JSON.parse(settings) as { resize?: unknown }).resize;
    return RESIZE_METHODS.find((m) => m === resize);
  } catch {
    return undefined;
  }
}

export function describeResize(method: ResizeMethod): string {
  return `${method} (${RESIZE_NOTE})`;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isSize = (v: unknown): v is [number, number, number] =>
  Array.isArray(v) && v.length === 3 && v.every((n) => Number.isInteger(n) && n >= 1 && n <= 1 << 16) && (v[2] === 1 || v[2] === 3);

/** Checks a parsed bundle.json; `where` names it in errors. Returns it typed. */
export function checkBundle(value: unknown, where: string): ModelBundle {
  const bad = (what: string) => new BundleError(`${where}: ${what}`);
  const b = value as Partial<ModelBundle> | null;
  if (typeof b !== 'object' || b === null) throw bad('not a JSON object');
  if (b.format !== BUNDLE_FORMAT) throw bad(`format is ${JSON.stringify(b.format)}, expected ${BUNDLE_FORMAT}`);
  if (b.version !== BUNDLE_VERSION) throw bad(`version ${JSON.stringify(b.version)} is not supported (this build reads ${BUNDLE_VERSION})`);
  if (!Array.isArray(b.classes) || b.classes.length === 0 || !b.classes.every((c) => typeof c === 'string'))
    throw bad('classes must be a non-empty list of names');
  const input = b.input;
  if (!input || !isSize(input.size)) throw bad('input.size must be [height, width, channels] with 1 or 3 channels');
  if (input.channel_order !== (input.size[2] === 1 ? 'L' : 'RGB'))
    throw bad(`input.channel_order ${JSON.stringify(input.channel_order)} does not fit ${input.size[2]} channel(s)`);
  if (!RESIZE_METHODS.includes(input.resize)) throw bad(`input.resize must be one of ${RESIZE_METHODS.join(', ')}`);
  const n = b.normalization;
  const channels = input.size[2];
  const perChannel = (v: unknown): v is number[] => Array.isArray(v) && v.length === channels && v.every(isNumber);
  if (
    !n ||
    (n.method !== 'scale' && n.method !== 'standardize') ||
    !isNumber(n.scale) ||
    !perChannel(n.mean) ||
    !perChannel(n.std) ||
    n.std.some((s) => s === 0)
  ) {
    throw bad(`normalization must give method, scale and ${channels} mean and non-zero std values`);
  }
  return b as ModelBundle;
}

/** Parses bundle.json text. */
export function parseBundle(text: string, where: string): ModelBundle {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BundleError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  return checkBundle(value, where);
}
