// A train stage's hyperparameters in words, for the report's visible table: from the params it ran
// with (resolved, defaults included) and its train.json. Read defensively: a result of an older or
// foreign train stage shows what it has and "—" for the rest.
import type { PhaseOutcome, Source, TrainingInfo } from './model.js';
import type { HistoryRecord, TrainRecord } from './records.js';

type Params = Readonly<Record<string, unknown>>;

const objectOf = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const numberOf = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
/** 0.001, 1e-7, 0.000123: six significant digits at most, no float noise. */
export const num = (v: number): string => String(Number(v.toPrecision(6)));
const count = (v: number) => v.toLocaleString('en-US');
const plural = (n: number, word: string) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;

/** `rmsprop (rho 0.9, epsilon 1e-7)`: a spec's type and its fields but `skip`. */
function described(spec: Record<string, unknown>, skip: readonly string[]): string {
  const rest = Object.entries(spec)
    .filter(([k, v]) => k !== 'type' && !skip.includes(k) && v !== undefined)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? num(v) : String(v)}`);
  return `${String(spec.type ?? '?')}${rest.length ? ` (${rest.join(', ')})` : ''}`;
}

const epochsOf = (h: HistoryRecord | undefined) => Math.max(h?.epoch?.length ?? 0, h?.loss?.length ?? 0);

/** What train.json says about the best epoch and the weights kept (nothing for results from before it recorded them). */
export function phaseOutcome(record: TrainRecord | undefined, history: HistoryRecord | undefined): PhaseOutcome | undefined {
  if (!record) return undefined;
  const best = record.best;
  const stopped = record.early_stopping?.stopped_after_epoch;
  return {
    ...(record.epochs !== undefined ? { epochs: record.epochs } : {}),
    trained: record.epochs_trained ?? epochsOf(history),
    ...(best && best.epoch ? { best: { monitor: best.monitor, mode: best.mode, epoch: best.epoch, value: best.value } } : {}),
    ...(typeof stopped === 'number' ? { stopped_after: stopped } : {}),
    ...(record.kept_weights && record.kept_epoch ? { kept: { weights: record.kept_weights, epoch: record.kept_epoch } } : {}),
  };
}

/** `epoch 7 of 12 trained (the best by val_loss, 0.8123)`: whose weights a model holds, in words. */
export function describeKept(o: PhaseOutcome): string | undefined {
  if (!o.kept) return undefined;
  const best =
    o.best && o.best.epoch === o.kept.epoch ? `the best by ${o.best.monitor}${o.best.value !== null ? `, ${o.best.value.toFixed(4)}` : ''}` : undefined;
  const which = o.kept.weights === 'best' ? (best ?? 'the best') : o.kept.epoch === o.trained ? `the last${best ? `, also ${best}` : ''}` : 'the last';
  return `epoch ${o.kept.epoch} of ${o.trained} trained (${which})`;
}

function lrRange(h: HistoryRecord | undefined): string | undefined {
  const lrs = (h?.lr ?? []).filter((x): x is number => typeof x === 'number');
  if (lrs.length < 2 || lrs.every((x) => x === lrs[0])) return undefined;
  return `${num(lrs[0]!)} at epoch 1 → ${num(lrs[lrs.length - 1]!)} at epoch ${lrs.length}`;
}

function augmentation(params: Params, record: TrainRecord | undefined): string {
  const parts: string[] = [];
  if (typeof params.augmented === 'string') parts.push(`copies of ${record?.trained_on ?? params.augmented}, one per epoch`);
  const crop = objectOf(params.batch_augment) ?? objectOf(record?.batch_augment);
  if (crop) {
    parts.push(
      `batch_augment: random crop (padding ${String(crop.crop_padding ?? '?')}, ${String(crop.fill_mode ?? '?')})${crop.horizontal_flip ? ' + horizontal flip' : ''}`,
    );
  }
  return parts.length ? parts.join('; ') : 'none';
}

function bestRule(params: Params, record: TrainRecord | undefined): string {
  const monitor = typeof params.monitor === 'string' ? params.monitor : record?.best?.monitor;
  if (!monitor) return '—';
  const mode = record?.best?.mode ?? (typeof params.mode === 'string' ? params.mode : 'auto');
  const minDelta = numberOf(params.min_delta) ?? record?.best?.min_delta ?? 0;
  const patience = numberOf(params.patience) ?? record?.early_stopping?.patience;
  const restore = params.restore_best === true || record?.restore_best === true;
  return [
    `${monitor} (${mode})`,
    minDelta ? `min_delta ${num(minDelta)}` : '',
    patience !== undefined ? `patience ${patience}` : 'no early stopping',
    restore ? 'restore_best' : 'last epoch kept',
  ]
    .filter(Boolean)
    .join(', ');
}

/** `best val_loss 0.8123 at epoch 7; stopped early after epoch 12; model: epoch 7 of 12 trained (...)`, on the stage's own epochs. */
export function describeOutcome(o: PhaseOutcome | undefined): string {
  if (!o) return '—';
  const parts: string[] = [];
  if (o.best) parts.push(`best ${o.best.monitor} ${o.best.value !== null ? o.best.value.toFixed(4) : '—'} at epoch ${o.best.epoch}`);
  if (o.stopped_after !== undefined) parts.push(`stopped early after epoch ${o.stopped_after}`);
  const kept = describeKept(o);
  if (kept) parts.push(`model: ${kept}`);
  return parts.join('; ') || '—';
}

/** The rows of the hyperparameters table for one train stage. */
export function trainingInfo(
  stage: string,
  params: Params,
  record: TrainRecord | undefined,
  history: HistoryRecord | undefined,
  source?: Source,
): TrainingInfo {
  const optimizer = objectOf(params.optimizer);
  const schedule = objectOf(params.lr_schedule);
  const lr = numberOf(optimizer?.lr);
  const batch = numberOf(params.batch_size) ?? record?.batch_size;
  const epochs = numberOf(params.epochs) ?? record?.epochs;
  const outcome = phaseOutcome(record, history);
  const trained = outcome?.trained ?? epochsOf(history);
  const decay = numberOf(optimizer?.weight_decay) ?? record?.weight_decay ?? 0;
  const smoothing = numberOf(params.label_smoothing) ?? record?.label_smoothing ?? 0;
  const seconds = record?.mean_epoch_seconds;
  const initFrom = typeof params.init_from === 'string' ? params.init_from : (record?.init_from ?? undefined);
  const rows: [string, string][] = [
    ['optimizer', optimizer ? described(optimizer, ['lr', 'weight_decay']) : '—'],
    ['learning rate', lr !== undefined ? num(lr) + (lrRange(history) ? ` (${lrRange(history)})` : '') : '—'],
    ['lr schedule', schedule ? described(schedule, []) : '—'],
    ['batch size', batch !== undefined ? `${batch}${record?.steps_per_epoch ? ` (${plural(record.steps_per_epoch, 'step')} per epoch)` : ''}` : '—'],
    [
      'epochs',
      epochs === undefined
        ? String(trained || '—')
        : trained && trained !== epochs
          ? `${trained} of ${epochs}${outcome?.stopped_after !== undefined ? ' (stopped early)' : ''}`
          : String(epochs),
    ],
    ['weight decay', num(decay)],
    ['augmentation', augmentation(params, record)],
    ['label smoothing', num(smoothing)],
    ['starts from', initFrom === 'current' ? 'the promoted model (models/current)' : initFrom ? `${initFrom}'s weights` : 'random initialization'],
    ['seed', numberOf(params.seed) !== undefined ? String(params.seed) : '—'],
    [
      'training images',
      record?.train_count !== undefined
        ? `${count(record.train_count)}${record.val_count !== undefined ? ` (+ ${count(record.val_count)} held out for validation)` : ''}`
        : '—',
    ],
    [
      'time per epoch',
      seconds !== undefined ? `${seconds.toFixed(1)} s${record?.images_per_second ? ` (${Math.round(record.images_per_second)} images/s)` : ''}` : '—',
    ],
    ['best epoch rule', bestRule(params, record)],
    ['outcome', describeOutcome(outcome)],
  ];
  return {
    stage,
    hyperparameters: rows.map(([name, value]) => ({ name, value })),
    ...(record?.train_count !== undefined ? { train_count: record.train_count } : {}),
    ...(record?.val_count !== undefined ? { val_count: record.val_count } : {}),
    ...(outcome ? { outcome } : {}),
    ...(source ? { source_ref: source } : {}),
  };
}
