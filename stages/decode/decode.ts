// `decode`: a fetched dataset directory → a sharded uint8 dataset (docs/datasets.md: shards of
// [rows, H, W, C], labels, the source file of each row), class names, and decode.json (format,
// counts per split and class, skipped files, what changed since the previous result).
// Formats: the official CIFAR-10 binary batches, or image folders train/<class>/*, test/<class>/*
// (JPEG or PNG, any size, converted to the configured shape). Rows are ordered by split, class
// (sorted), then file name (sorted). Incremental: files whose content did not change since this
// stage's previous result keep their decoded rows (the same shard objects); only new and changed
// files are decoded, on the worker pool. The sources are read where fetch put them: a pack (pack/,
// entries read by offset, digests from its index) or a directory (data/).
import { z } from 'zod';
import { defineStage } from '../../engine/contract.js';
import { RESIZE_METHODS } from '../../lib/images/convert.js';
import { DATASET_DIR } from '../../lib/dataset/format.js';
import { DEFAULT_SHARD_BYTES } from '../../lib/dataset/writer.js';
import { decoderVersions } from '../../lib/images/decoder-versions.js';
import { DATASET_FORMATS } from '../../lib/images/layout.js';
import { DEFAULT_MAX_PIXELS } from '../../lib/images/pixel-limit.js';

export const DecodeParams = z.strictObject({
  format: z
    .enum(['auto', ...DATASET_FORMATS])
    .default('auto')
    .describe('dataset layout: cifar-binary (data_batch_<n>.bin...), image-folder (train/<class>/*, test/<class>/*), or auto-detect'),
  height: z.int().min(1).max(4096).default(32).describe('output image height (images of another size are resized)'),
  width: z.int().min(1).max(4096).default(32).describe('output image width'),
  channels: z
    .union([z.literal(1), z.literal(3)])
    .default(3)
    .describe('3: RGB (gray images expanded); 1: gray (colour reduced to luma, as PIL convert("L")); alpha is dropped'),
  resize: z
    .enum(RESIZE_METHODS)
    .default('bilinear')
    .describe('resampling for images of another size: bilinear (half-pixel centres), nearest, or area (box average; best for shrinking)'),
  skip_corrupt: z
    .boolean()
    .default(false)
    .describe(
      'skip unreadable, corrupt or over-max_pixels images (counted and named in decode.json) instead of failing naming the file (its path inside the source, e.g. train/cat/0003.jpg in file:///data/pets)',
    ),
  max_pixels: z
    .int()
    .min(1)
    .default(DEFAULT_MAX_PIXELS)
    .describe(
      "largest width × height a JPEG or PNG may have (read from its header, before decoding; Pillow's MAX_IMAGE_PIXELS); larger images fail the stage naming the file, its size and the limit, or are skipped with skip_corrupt (counted in over_max_pixels). The default is ≈ 9459×9459 (Pillow warns there and refuses at twice it); raise it for datasets of larger images. In the cache key only when not the default",
    ),
  shard_mb: z
    .int()
    .min(1)
    .max(4096)
    .default(DEFAULT_SHARD_BYTES >> 20)
    .describe(
      'largest shard of decoded pixels, in MiB (a file of the dataset; an unchanged shard is reused by the next run); layout only, not in the cache key',
    ),
  max_per_class: z
    .union([
      z.int().positive(),
      z.strictObject({
        train: z.int().positive().optional().describe('images kept per class of the training split'),
        test: z.int().positive().optional().describe('images kept per class of the test split'),
      }),
    ])
    .optional()
    .describe(
      'keep only the first N images of each class (in row order: file name, or record order in the CIFAR batches): a number for both splits, or {train: N, test: M}; a split without a cap keeps all. For demos and smoke runs; absent: every image (and not in the cache key)',
    ),
});
export type DecodeParams = z.output<typeof DecodeParams>;

export const decodeStage = defineStage({
  name: 'decode',
  // 2: JPEGs that wasm libjpeg-turbo refused for unread padding now decode (a cached run with
  // skip_corrupt may have skipped them). 3: PNGs decoded here (not pngjs): truncated image data is
  // corrupt instead of black, and colour-keyed (tRNS) pixels keep their colour. 4: a sharded
  // dataset instead of one array per split.
  version: 4,
  description:
    'Decode a fetched CIFAR-10 binary release or JPEG/PNG image folders into a sharded uint8 dataset (incremental: unchanged files are not decoded again)',
  inputs: 'one stage with a pack/ or data/ output (fetch): CIFAR-10 binary batches, or image folders train/<class>/*, test/<class>/* (JPEG, PNG)',
  params: DecodeParams,
  outputs: [
    {
      name: DATASET_DIR,
      type: 'dir',
      description:
        'the images as a sharded uint8 dataset: dataset.json, rows.json (label, shard, slot, crc32, source file of each row), shards/<id>.npy [rows, H, W, C]',
    },
    { name: 'classes.json', type: 'json', description: 'class names (index = label)' },
    { name: 'decode.json', type: 'json', description: 'format, shape, counts per split and class, skipped corrupt files, changes since the previous result' },
  ],
  // Shard size changes where rows are stored, never which rows or pixels: not in the key.
  // max_pixels and max_per_class enter the key only when set, so keys made before they existed hold.
  cacheParams: ({ shard_mb: _shardMb, max_pixels, max_per_class, ...rest }) => ({
    ...rest,
    ...(max_pixels !== DEFAULT_MAX_PIXELS ? { max_pixels } : {}),
    ...(max_per_class !== undefined ? { max_per_class } : {}),
  }),
  // The decoders' versions can change pixels: they belong in the cache key.
  fingerprint: async () => decoderVersions(),
  // The implementation is loaded only when the stage runs: a cached run never imports it.
  run: async (ctx) => (await import('./run.js')).runDecode(ctx),
});
