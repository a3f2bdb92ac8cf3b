// What a report shows, as data (written as report.json; the HTML and Markdown render it).
import type {
  AugmentRecord,
  ClassMetricsRecord,
  DecodeRecord,
  FetchRecord,
  MetricsRecord,
  MistakeRecord,
  NormalizationRecord,
  TrainRecord,
} from './records.js';

export const REPORT_FORMAT = 1;

/** Where a shown artifact came from: stage, key, and the digest of the file shown. */
export interface Source {
  stage: string;
  key: string;
  file: string;
  digest?: string;
}

export interface StageRow {
  stage: string;
  kind: string;
  /** Outcome in the run that made this report (`input` when the report has it as input but the run record does not list it). */
  outcome: string;
  /** Time spent in this run (ms), and the time the result took when it was computed. */
  run_ms?: number;
  compute_ms?: number;
  key?: string;
  outputs_digest?: string;
  created_at?: string;
  run_id?: string;
  version?: number;
  params?: Readonly<Record<string, unknown>>;
  fingerprint?: Readonly<Record<string, unknown>>;
}

export interface RunInfo {
  id: string;
  started_at: string;
  command: readonly string[];
  /** Wall time of the run up to the report. */
  wall_ms: number;
  backends: { stage: string; backend?: string; workers?: number; versions?: Record<string, string> }[];
}

export interface DataInfo {
  fetch?: FetchRecord & { source_ref: Source };
  decode?: DecodeRecord & { source_ref: Source };
  normalization?: NormalizationRecord & { source_ref: Source };
  classes: string[];
}

export interface ModelInfo {
  stage: string;
  summary: string;
  params_total?: number;
  source_ref: Source;
}

/** One point of a learning curve on the pipeline-wide epoch axis. */
export interface CurvePoint {
  stage: string;
  /** Epoch on the joined axis (a stage started from another continues its parent's count). */
  epoch: number;
  /** Epoch within its own stage. */
  stage_epoch: number;
  metric: 'loss' | 'accuracy';
  split: 'training' | 'validation';
  value: number;
  /** From another pipeline's train stage (report `compare_with`). */
  compared?: boolean;
}

/** A train stage's best epoch and the weights it ended with (its train.json), on its own epoch count. */
export interface PhaseOutcome {
  /** Epochs the stage was set to train, and how many it trained (fewer when it stopped early). */
  epochs?: number;
  trained: number;
  best?: { monitor: string; mode: string; epoch: number; value: number | null };
  /** Its epoch after which patience ran out. */
  stopped_after?: number;
  /** Whose weights the stage's model holds, and which epoch's. */
  kept?: { weights: 'best' | 'last'; epoch: number };
}

export interface Phase {
  stage: string;
  parent?: string;
  /** First and last epoch on the joined axis. */
  first: number;
  last: number;
  compared?: boolean;
  outcome?: PhaseOutcome;
}

/** One row of the per-epoch table: what history.json recorded for that epoch. */
export interface EpochRow {
  stage: string;
  /** On the joined axis, and within the stage. */
  epoch: number;
  stage_epoch: number;
  loss?: number;
  acc?: number;
  val_loss?: number;
  val_acc?: number;
  lr?: number;
  seconds?: number;
  compared?: boolean;
}

export interface Curves {
  points: CurvePoint[];
  phases: Phase[];
  epochs: EpochRow[];
  sources: Source[];
}

/** A train stage's hyperparameters as the report shows them (from its params and train.json). */
export interface TrainingInfo {
  stage: string;
  /** In reading order: optimizer, learning rate, batch size, epochs, ... */
  hyperparameters: { name: string; value: string }[];
  train_count?: number;
  val_count?: number;
  outcome?: PhaseOutcome;
  source_ref?: Source;
}

export interface Evaluation {
  stage: string;
  model_stage: string;
  count: number;
  loss: number;
  accuracy: number;
  classes: string[];
  per_class: ClassMetricsRecord[];
  macro_avg?: { precision: number; recall: number; f1: number };
  confusion_matrix: number[][];
  mistakes: (MistakeRecord & { image?: string })[];
  source_ref: Source;
  /** Not this pipeline's: the latest result of another pipeline's stage in this store (`compare_with`), computed by run `run_id`. */
  compared?: { run_id: string };
}

export interface ClassDelta {
  class: string;
  before: { precision: number; recall: number; f1: number };
  after: { precision: number; recall: number; f1: number };
  delta: { precision: number; recall: number; f1: number };
}

export interface Comparison {
  /** Evaluate stages compared: `before` evaluates the parent model of `after`'s (or the earlier one). */
  before: string;
  after: string;
  accuracy: { before: number; after: number; delta: number };
  loss: { before: number; after: number; delta: number };
  classes: ClassDelta[];
  /** Classes whose F1 dropped, worst first. */
  hurt: string[];
}

export interface AugmentInfo {
  stage: string;
  params?: Record<string, unknown>;
  copies: number;
  rows?: number;
  /** Variants per preview image (variant v is row p of copy v, for v below `copies`). */
  variants?: number;
  /** The train stages that trained on these copies, and how many of the copies each used. */
  used_by: { stage: string; copies_used: number; epochs: number }[];
  contact_sheet?: Source;
  previews: Source[];
}

export interface HistoryRow {
  run_id: string;
  started_at: string;
  outcome: string;
  current: boolean;
  /** Evaluate stage → its metrics in that run (undefined when that result is gone from the store). */
  metrics: Record<string, { key: string; accuracy?: number; loss?: number } | undefined>;
  /** What changed since the previous row, one line per stage and reason. */
  changes: string[];
  /** The schedule entry that started the run, if scheduled. */
  scheduled?: string;
  /** A sweep experiment's values (`run --matrix`), e.g. `train.batch_size=128`. */
  experiment?: string;
  /** The promotion decision recorded after the run (`promote:`). */
  promotion?: { decision: string; reason: string };
  /** Later runs with exactly the same results (e.g. nightly runs that found nothing new), folded into this row. */
  repeated: string[];
}

export interface History {
  /** Run ids covered, oldest first, folded ones included (the history is read from run records, not hashed). */
  covers: string[];
  /** Runs looked at but left out (no evaluate result, or beyond `history`). */
  omitted: number;
  rows: HistoryRow[];
}

export interface ModelCard {
  name: string;
  /** Which epoch's weights the model holds (best or last), when its train.json says. */
  weights?: string;
  architecture: string;
  params_total?: number;
  data: string;
  metrics: { stage: string; accuracy: number; loss: number }[];
  intended_use: string[];
  limitations: string[];
  ethics: string[];
}

export interface ReportData {
  format: number;
  title: string;
  generated_at: string;
  run: RunInfo;
  stages: StageRow[];
  data: DataInfo;
  models: ModelInfo[];
  trainings: TrainingInfo[];
  curves: Curves;
  evaluations: Evaluation[];
  comparisons: Comparison[];
  augmentations: AugmentInfo[];
  history: History;
  model_card: ModelCard;
}

export type { TrainRecord };
