// The JSON records upstream stages write, as the report reads them. What a report can do without is
// optional, so a report over an older or foreign result shows what is there instead of failing.
import type { ClassMetrics, Mistake } from '../model/metrics.js';

export interface FetchRecord {
  source?: string;
  type?: string;
  name?: string;
  bytes?: number;
  md5?: string | null;
  sha256?: string | null;
  digest?: string | null;
  archive?: string | null;
  files?: number;
}

export interface SplitCounts {
  total: number;
  per_class: Record<string, number>;
}

export interface DecodeRecord {
  format?: string;
  shape?: number[];
  classes?: string[];
  counts?: Record<string, SplitCounts>;
  skipped_corrupt?: number;
  skipped_files?: { file: string; reason: string }[];
  ignored_files?: number;
  /** Against decode's previous result in the same store (null on a first run). */
  changes?: DataChanges | null;
}

export interface DataChanges {
  since?: string;
  added: number;
  changed: number;
  removed: number;
  decoded?: number;
  reused?: number;
}

/** `70 images added, 2 changed, 1 removed since the previous decode (72 decoded, 7,000 kept)`. */
export function describeChanges(c: DataChanges): string {
  const n = (v: number | undefined) => (v ?? 0).toLocaleString('en-US');
  const work = c.decoded !== undefined ? ` (${n(c.decoded)} decoded, ${n(c.reused)} kept as they were)` : '';
  return `${n(c.added)} image${c.added === 1 ? '' : 's'} added, ${n(c.changed)} changed, ${n(c.removed)} removed since the previous decode${work}`;
}

export interface NormalizationRecord {
  method?: string;
  scale?: number;
  mean?: number[];
  std?: number[];
  formula?: string;
  statistics_from?: string;
  split?: {
    validation_split?: number;
    seed?: number;
    stratified?: boolean;
    train?: number;
    validation?: number;
    test?: number;
  };
}

/** history.json: one column per metric, one entry per epoch (null where not measured). */
export interface HistoryRecord {
  epoch: number[];
  loss: (number | null)[];
  acc: (number | null)[];
  val_loss?: (number | null)[];
  val_acc?: (number | null)[];
  lr?: (number | null)[];
  seconds?: (number | null)[];
}

export interface TrainRecord {
  backend?: string;
  workers?: number;
  versions?: Record<string, string>;
  params?: { total: number; trainable: number; non_trainable: number };
  train_count?: number;
  val_count?: number;
  epochs?: number;
  batch_size?: number;
  trained_on?: string;
  init_from?: string | null;
  mean_epoch_seconds?: number;
  images_per_second?: number;
  steps_per_epoch?: number;
  weight_decay?: number;
  label_smoothing?: number;
  batch_augment?: Record<string, unknown> | null;
  /** Since best checkpoints (train.json of older results has none of these). */
  epochs_trained?: number;
  best?: { monitor: string; mode: string; min_delta?: number; epoch: number; value: number | null } | null;
  early_stopping?: { patience: number; stopped_after_epoch: number | null } | null;
  restore_best?: boolean;
  kept_weights?: 'best' | 'last';
  kept_epoch?: number;
}

/** metrics.json's per-class rows and mistakes are written by lib/model/metrics.ts: the same types. */
export type { ClassMetrics as ClassMetricsRecord, Mistake as MistakeRecord } from '../model/metrics.js';
export interface MetricsRecord {
  model_stage: string;
  backend?: string;
  count: number;
  test_loss: number;
  test_accuracy: number;
  classes: string[];
  per_class: ClassMetrics[];
  macro_avg?: { precision: number; recall: number; f1: number };
  confusion_matrix: number[][];
  most_confident_mistakes: Mistake[];
}

export interface AugmentRecord {
  rows?: number;
  /** How many copies (a list of copy_NNN.npy names in results from before copies were sharded). */
  copies?: number | string[];
  seed?: number;
  params?: Record<string, unknown>;
  preview?: { images?: number; variants?: number; files?: string[] };
}
