// The train stage's model/bundle.json (lib/model/bundle.ts): the classes, input and normalization
// the model was trained with, taken from the normalize stage it read, so the model directory alone
// (or models/current after promotion) is enough to use the model on new images.
import type { StageContext, UpstreamArtifacts } from '../../engine/contract.js';
import type { DatasetManifest } from '../../lib/dataset/format.js';
import { BUNDLE_FILE, BUNDLE_FORMAT, BUNDLE_VERSION, MODEL_FILE, bundleNormalization, resizeFromSettings, type ModelBundle } from '../../lib/model/bundle.js';
import type { Normalization } from '../../lib/model/data.js';
import type { EpochLogs } from '../../lib/model/checkpoint.js';

export interface BundleFacts {
  norm: UpstreamArtifacts;
  manifest: DatasetManifest;
  normalization: Normalization;
  augmented: UpstreamArtifacts | undefined;
  trainCount: number;
  valCount: number;
  epochs: number;
  /** The figures of the epoch whose weights are saved. */
  metrics: EpochLogs | undefined;
}

export async function writeBundle(ctx: StageContext<unknown>, facts: BundleFacts): Promise<ModelBundle> {
  const { manifest, norm } = facts;
  const [height, width, channels] = manifest.shape;
  let resize = resizeFromSettings(manifest.settings);
  if (!resize) {
    ctx.log.warn(`${norm.stage}'s dataset does not say how its images were resized: ${BUNDLE_FILE} says bilinear (decode's default)`);
    resize = 'bilinear';
  }
  const m = facts.metrics;
  const bundle: ModelBundle = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    model: MODEL_FILE,
    classes: manifest.classes,
    input: { size: [height, width, channels], layout: 'NHWC', channel_order: channels === 1 ? 'L' : 'RGB', resize },
    normalization: bundleNormalization(facts.normalization, channels),
    output: 'float32 [N, classes]: the probability of each class, in the order of classes',
    training: {
      stage: ctx.stage,
      data_digest: norm.provenance.outputsDigest,
      data: `stage ${norm.stage} (${norm.kind}), outputs ${norm.provenance.outputsDigest.slice(0, 16)}`,
      augmented: facts.augmented ? { stage: facts.augmented.stage, outputs_digest: facts.augmented.provenance.outputsDigest } : null,
      train_count: facts.trainCount,
      val_count: facts.valCount,
      epochs: facts.epochs,
    },
    // No seconds here: the model directory depends only on what the model is.
    metrics: { epoch: m?.epoch ?? 0, loss: m?.loss ?? null, acc: m?.acc ?? null, val_loss: m?.val_loss ?? null, val_acc: m?.val_acc ?? null },
  };
  await ctx.out.json(`model/${BUNDLE_FILE}`, bundle);
  return bundle;
}
