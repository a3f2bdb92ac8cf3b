// The train stage's work (loaded only when a train stage runs: it pulls in TensorFlow.js).
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { type StageContext, type UpstreamArtifacts } from '../../engine/contract.js';
import { AbortedError, PipelineError, StageError } from '../../engine/errors.js';
import { engineErrorOf } from '../lib-errors.js';
import { initBackend } from '../../lib/tf/backend.js';
import { buildModel, copyWeights, outputUnits } from '../../lib/model/build.js';
import { restoreCheckpoint, saveCheckpoint, type LoopState } from '../../lib/model/checkpoint.js';
import { datasetRows, oneHotOf, pixelTable, type Normalization, type Rows } from '../../lib/model/data.js';
import type { DatasetReader } from '../../lib/dataset/reader.js';
import { openUpstreamDataset } from '../dataset-input.js';
import { BatchPrefetcher } from '../../lib/dataset/prefetch.js';
import { DATASET_DIR } from '../../lib/dataset/format.js';
import { fit } from '../../lib/model/fit.js';
import { loadModel, saveModel } from '../../lib/model/io.js';
import { COPIES_DIR, copyRow, legacyCopyName, SOURCE_INDEX } from '../../lib/augment/copies.js';
import { createOptimizer } from '../../lib/model/optimizers.js';
import { Rng, deriveSeed } from '../../lib/model/rng.js';
import { modelSummary, paramCounts } from '../../lib/model/summary.js';
import { localStep, type TrainStep } from '../../lib/model/train-step.js';
import { resolveWorkers } from '../../lib/model/workers-param.js';
import { INIT_FROM_CURRENT, trainKeyParams, type TrainParams } from './params.js';
import { bestRecord, checkMonitor, keptCheckpoint, restoreBest, stoppingSpec } from './best.js';
import { hasBatchTransforms, transformedRows, type BatchTransforms } from '../../lib/model/batch-augment.js';
import { championFingerprint, readCurrentModel } from '../../lib/champion.js';
import { writeBundle } from './bundle.js';

/** The training split as the loop consumes it: one Rows per epoch. */
interface TrainingData {
  inputShape: number[];
  count: number;
  rowsFor(epoch: number): Promise<Rows>;
  describe: string;
}

/** normalize's view of the data: decode's dataset, the split (dataset train rows) and the pixel table. */
interface NormalizedData {
  reader: DatasetReader;
  trainIndex: Int32Array;
  valIndex: Int32Array;
  table: Float32Array;
  normalization: Normalization;
  classes: string[];
  /** The thread reading training batches ahead (closed with the reader). */
  prefetch?: BatchPrefetcher;
  /** Files opened for training, closed at the end. */
  closers: Array<() => void>;
}

async function readIndex(norm: UpstreamArtifacts, name: string, rows: number): Promise<Int32Array> {
  const t = await norm.readTensor(name);
  if (t.dtype !== 'int32' || t.shape.length !== 1) throw new StageError(`${norm.stage}/${name}: expected int32 [N], got ${t.dtype} [${t.shape}]`);
  const index = t.data as Int32Array;
  const bad = index.findIndex((r) => r < 0 || r >= rows);
  if (bad >= 0) throw new StageError(`${norm.stage}/${name}[${bad}] = ${index[bad]} is outside the dataset's ${rows} training rows`);
  return index;
}

async function normalizedData(norm: UpstreamArtifacts): Promise<NormalizedData> {
  const reader = await openUpstreamDataset(norm);
  try {
    const trainRows = reader.manifest.splits.train;
    const trainIndex = await readIndex(norm, 'train_index.npy', trainRows);
    const valIndex = norm.has('val_index.npy') ? await readIndex(norm, 'val_index.npy', trainRows) : new Int32Array(0);
    const normalization = await norm.readJson<Normalization>('normalization.json');
    const table = pixelTable(normalization, reader.manifest.shape[2]);
    return { reader, trainIndex, valIndex, table, normalization, classes: reader.manifest.classes, closers: [] };
  } catch (err) {
    reader.close();
    throw err;
  }
}

function plainTrainingData(norm: UpstreamArtifacts, data: NormalizedData, p: TrainParams): TrainingData {
  if (p.prefetch > 0) {
    data.prefetch = new BatchPrefetcher(norm.path(DATASET_DIR), data.trainIndex, data.table, data.reader.rowBytes, p.batch_size, p.prefetch);
  }
  const rows = datasetRows(data.reader, data.trainIndex, data.table, `${norm.stage}/${DATASET_DIR}`, data.prefetch);
  return { inputShape: rows.sampleShape, count: rows.count, rowsFor: async () => rows, describe: `${norm.stage}/${DATASET_DIR} (${rows.count} training rows)` };
}

/** augment's copies dataset, checked against normalize's split: `copies` sets of its training rows. */
async function openCopies(aug: UpstreamArtifacts, norm: UpstreamArtifacts, data: NormalizedData): Promise<{ reader: DatasetReader; copies: number }> {
  if (!aug.has(COPIES_DIR) && aug.has(legacyCopyName(0))) {
    throw new StageError(`augmented: ${aug.stage} holds copies as ${legacyCopyName(0)}… (a result from before copies were sharded): run ${aug.stage} again`);
  }
  const reader = await openUpstreamDataset(aug, COPIES_DIR);
  try {
    const where = `${aug.stage}/${COPIES_DIR}`;
    const rows = data.trainIndex.length;
    const [shape, want] = [reader.manifest.shape.join('x'), data.reader.manifest.shape.join('x')];
    if (shape !== want) throw new StageError(`${where} holds [${shape}] images but ${norm.stage}'s dataset [${want}]`);
    const total = reader.manifest.splits.train;
    if (total === 0 || total % rows !== 0) {
      throw new StageError(`${where} has ${total} images, not copies of the ${rows} rows of ${norm.stage}/train_index.npy`);
    }
    // Training uses the copies' own labels: they must be those of the rows the copies were made from.
    const source = aug.has(SOURCE_INDEX) ? (await aug.readTensor(SOURCE_INDEX)).data : undefined;
    if (!source || source.length !== rows || source.some((r, i) => r !== data.trainIndex[i])) {
      throw new StageError(`${aug.stage}/${SOURCE_INDEX} does not list the training rows of ${norm.stage}/train_index.npy: run ${aug.stage} again`);
    }
    const labels = data.reader.rows.label;
    const wrong = reader.rows.label.findIndex((l, r) => l !== labels[data.trainIndex[r % rows]!]);
    if (wrong >= 0)
      throw new StageError(`${where}: row ${wrong} is labelled ${reader.rows.label[wrong]}, its source row ${labels[data.trainIndex[wrong % rows]!]}`);
    return { reader, copies: total / rows };
  } catch (err) {
    reader.close();
    throw err;
  }
}

async function augmentedTrainingData(
  ctx: StageContext<TrainParams>,
  aug: UpstreamArtifacts,
  norm: UpstreamArtifacts,
  data: NormalizedData,
): Promise<TrainingData> {
  const { reader, copies } = await openCopies(aug, norm, data);
  data.closers.push(() => reader.close());
  const p = ctx.params;
  if (copies < p.epochs) ctx.log.warn(`${aug.stage} has ${copies} copies for ${p.epochs} epochs: copies are reused in turn`);
  const rows = data.trainIndex.length;
  // Epoch e reads copy e mod copies: rows copyRow(copy, 0…Ntr−1) of the copies dataset, read ahead
  // by one prefetch thread over all of them; labels come from the copies dataset (checked above).
  const all = Int32Array.from({ length: reader.count }, (_, r) => r);
  if (p.prefetch > 0) data.prefetch = new BatchPrefetcher(aug.path(COPIES_DIR), all, data.table, reader.rowBytes, p.batch_size, p.prefetch);
  const what = `${aug.stage}/${COPIES_DIR}`;
  let loaded: { copy: number; rows: Rows } | undefined;
  return {
    inputShape: [...reader.manifest.shape],
    count: rows,
    describe: `${aug.stage} (${copies} copies)`,
    async rowsFor(epoch) {
      const copy = epoch % copies;
      if (loaded?.copy !== copy) {
        const first = copyRow(copy, 0, rows);
        loaded = { copy, rows: datasetRows(reader, all.subarray(first, first + rows), data.table, what, data.prefetch?.from(first)) };
      }
      return loaded.rows;
    },
  };
}

function historyJson(history: LoopState['history']) {
  const col = <K extends keyof LoopState['history'][number]>(k: K) => history.map((h) => h[k] ?? null);
  return {
    epoch: col('epoch'),
    loss: col('loss'),
    acc: col('acc'),
    val_loss: col('val_loss'),
    val_acc: col('val_acc'),
    lr: col('lr'),
    seconds: col('seconds'),
  };
}

/**
 * The promoted model's directory for `init_from: current`: the one the cache key was computed
 * from (planning recorded its digest), or undefined to train from scratch when none was promoted.
 */
async function championDir(ctx: StageContext<TrainParams>): Promise<string | undefined> {
  const planned = ctx.fingerprint.champion;
  if (planned === null || planned === undefined) {
    ctx.log.info('init_from: current, but no model has been promoted yet: training from scratch');
    return undefined;
  }
  const [now, current] = await Promise.all([championFingerprint(ctx.root), readCurrentModel(ctx.root)]);
  if (!current || now?.files !== planned) {
    throw new StageError(`train ${ctx.stage}: models/current changed since the run was planned; run again`);
  }
  return current.dir;
}

export async function runTrain(ctx: StageContext<TrainParams>): Promise<void> {
  const p = ctx.params;
  const backend = await initBackend(p.backend);
  for (const line of backend.fallbacks ?? []) ctx.log.warn(line);
  ctx.log.info(
    `backend ${backend.name} (${Object.entries(backend.versions)
      .map(([k, v]) => `${k}@${v}`)
      .join(', ')})`,
  );
  if (ctx.fingerprint.backend !== undefined && ctx.fingerprint.backend !== backend.name) {
    ctx.log.warn(`planned backend ${String(ctx.fingerprint.backend)} did not load; training on ${backend.name}`);
  }

  const workers = resolveWorkers(p.workers, backend.name);
  if (workers > 1 && backend.name !== 'wasm') {
    throw new StageError(`train ${ctx.stage}: workers: ${workers} needs the wasm backend (data-parallel worker threads run wasm), not ${backend.name}`);
  }
  // The engine's fingerprint names the workers when > 1 (see train.ts).
  const planned = ctx.fingerprint.backend === undefined ? undefined : (ctx.fingerprint.workers ?? 1);
  if (planned !== undefined && planned !== workers) ctx.log.warn(`planned ${String(planned)} worker(s); training with ${workers}`);

  const norm = ctx.inputs.oneOfKind('normalize');
  const normalized = await normalizedData(norm);
  try {
    await trainOn(ctx, backend, workers, norm, normalized);
  } finally {
    normalized.reader.close();
    for (const close of normalized.closers) close();
    await normalized.prefetch?.close();
  }
}

async function trainOn(
  ctx: StageContext<TrainParams>,
  backend: Awaited<ReturnType<typeof initBackend>>,
  workers: number,
  norm: UpstreamArtifacts,
  normalized: NormalizedData,
): Promise<void> {
  const p = ctx.params;
  const classes = normalized.classes;
  const k = classes.length;
  const data = p.augmented ? await augmentedTrainingData(ctx, ctx.inputs.stage(p.augmented), norm, normalized) : plainTrainingData(norm, normalized, p);

  let val: { rows: Rows; targets: Float32Array } | undefined;
  if (normalized.valIndex.length > 0) {
    const rows = datasetRows(normalized.reader, normalized.valIndex, normalized.table, `${norm.stage}/${DATASET_DIR}`);
    if (rows.sampleShape.join('x') !== data.inputShape.join('x')) {
      throw new StageError(`validation images are [${rows.sampleShape}] but training images are [${data.inputShape}]`);
    }
    val = { rows, targets: oneHotOf(normalized.reader, normalized.valIndex) };
  }
  if (!val) ctx.log.warn(`${norm.stage} has no validation split: training without validation`);
  checkMonitor(ctx.stage, p, val !== undefined);
  const stopping = stoppingSpec(p);

  // The input follows the data; a head declared `units: auto` outputs one value per class.
  const model = buildModel(p.model, data.inputShape, p.seed, k);
  const optimizer = createOptimizer(p.optimizer);
  let step: TrainStep | undefined;
  try {
    if (outputUnits(model) !== k) {
      throw new StageError(`model: the last layer outputs ${outputUnits(model)} values but the data has ${k} classes`);
    }
    if (p.init_from) {
      const dir = p.init_from === INIT_FROM_CURRENT ? await championDir(ctx) : ctx.inputs.stage(p.init_from).path('model');
      if (dir) {
        const from = await loadModel(dir);
        try {
          copyWeights(from, model, `init_from ${p.init_from}`);
        } finally {
          from.dispose();
        }
        ctx.log.info(`initial weights from ${p.init_from === INIT_FROM_CURRENT ? `the current model (${dir})` : p.init_from}`);
      }
    }
    model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const counts = paramCounts(model);
    ctx.log.info(`model: ${model.layers.length} layers, ${counts.total.toLocaleString('en-US')} params; training on ${data.describe}`);
    for (const line of modelSummary(model).trimEnd().split('\n')) ctx.log.debug(line);

    // resumeDir is already per cache key; the key also guards against a reused directory. Like the
    // cache key, it names the resolved worker count when > 1 (single-thread keys are unchanged).
    const keyMaterial = { params: trainKeyParams(p), inputShape: data.inputShape, count: data.count, k, backend: backend.name };
    const key = createHash('sha256')
      .update(JSON.stringify(workers > 1 ? { ...keyMaterial, workers } : keyMaterial))
      .digest('hex');
    const restored = await restoreCheckpoint(ctx.resumeDir, key, model, optimizer);
    const start: LoopState = restored?.state ?? { epoch: 0, history: [], rng: new Rng(deriveSeed(p.seed, 'train')).state() };
    if (restored) ctx.log.info(`resuming after epoch ${start.epoch}/${p.epochs} from checkpoint ${restored.dir}`);

    // The replicas start from the model and optimizer as they stand now (initial, init_from or checkpoint).
    if (workers > 1) {
      const { parallelStep } = await import('../../lib/model/parallel-step.js');
      step = await parallelStep({ model, optimizer, spec: p.optimizer, workers, signal: ctx.signal });
      ctx.log.info(`data-parallel training on ${workers} worker threads`);
    } else {
      step = localStep(model, optimizer);
    }

    const transforms: BatchTransforms = { augment: p.batch_augment, labelSmoothing: p.label_smoothing, seed: deriveSeed(p.seed, 'batch_augment') };
    if (p.batch_augment) {
      const a = p.batch_augment;
      ctx.log.info(
        `batch_augment: random crop (padding ${a.crop_padding}, ${a.fill_mode})${a.horizontal_flip ? ' + horizontal flip' : ''} per image and epoch`,
      );
    }
    if (p.label_smoothing > 0) ctx.log.info(`label smoothing ${p.label_smoothing}`);

    const began = performance.now();
    const final = await fit({
      stage: ctx.stage,
      model,
      step,
      trainRows: async (epoch) => {
        const rows = await data.rowsFor(epoch);
        return hasBatchTransforms(transforms) ? transformedRows(rows, transforms, epoch) : rows;
      },
      val,
      epochs: p.epochs,
      batchSize: p.batch_size,
      baseLr: p.optimizer.lr,
      schedule: p.lr_schedule,
      state: start,
      stopping,
      // fit has called step.sync(): the model and optimizer hold the trained state.
      checkpoint: async (state) => {
        await saveCheckpoint(ctx.resumeDir, key, model, optimizer, state, keptCheckpoint(p, state));
      },
      signal: ctx.signal,
      progress: ctx.progress,
      log: ctx.log,
    });

    await step.dispose();
    const kept = await restoreBest(p, model, ctx.resumeDir, final);
    if (kept.kept === 'best') ctx.log.info(`keeping the weights of epoch ${kept.epoch}, the best by ${p.monitor} (restore_best)`);
    await saveModel(model, ctx.out.path('model'));
    const last = final.history[final.history.length - 1];
    // The bundle describes the weights kept: the best epoch's with restore_best.
    const keptLogs = final.history.find((h) => h.epoch === kept.epoch) ?? last;
    await writeBundle(ctx, {
      norm,
      manifest: normalized.reader.manifest,
      normalization: normalized.normalization,
      augmented: p.augmented ? ctx.inputs.stage(p.augmented) : undefined,
      trainCount: data.count,
      valCount: val?.rows.count ?? 0,
      epochs: p.epochs,
      metrics: keptLogs,
    });
    await ctx.out.json('history.json', historyJson(final.history));
    await writeFile(ctx.out.path('summary.txt'), modelSummary(model));
    const epochSeconds = final.history.map((h) => h.seconds);
    await ctx.out.json('train.json', {
      backend: backend.name,
      requested_backend: p.backend,
      workers,
      versions: backend.versions,
      params: { total: counts.total, trainable: counts.trainable, non_trainable: counts.nonTrainable },
      train_count: data.count,
      val_count: val?.rows.count ?? 0,
      classes,
      epochs: p.epochs,
      batch_size: p.batch_size,
      steps_per_epoch: Math.ceil(data.count / p.batch_size),
      trained_on: data.describe,
      batch_augment: p.batch_augment ?? null,
      label_smoothing: p.label_smoothing,
      weight_decay: p.optimizer.weight_decay ?? 0,
      init_from: p.init_from ?? null,
      resumed_after_epoch: restored ? start.epoch : null,
      epoch_seconds: epochSeconds,
      mean_epoch_seconds: epochSeconds.reduce((a, b) => a + b, 0) / Math.max(1, epochSeconds.length),
      // Training images per second of epoch wall time (validation included).
      images_per_second: data.count / (epochSeconds.reduce((a, b) => a + b, 0) / Math.max(1, epochSeconds.length)),
      wall_seconds_this_run: (performance.now() - began) / 1000,
      // Training batches the prefetch thread delivered (the rest were read on the training thread).
      prefetch: { depth: normalized.prefetch ? p.prefetch : 0, batches_read_ahead: normalized.prefetch?.hits ?? 0 },
      final: last ?? null,
      ...bestRecord(p, stopping, final, kept),
    });
  } catch (err) {
    const translated = engineErrorOf(err);
    if (translated instanceof PipelineError) throw translated;
    // e.g. the signal terminated the data-parallel workers while they were starting
    if (ctx.signal.aborted) throw new AbortedError(`train ${ctx.stage} interrupted; a rerun resumes from the last checkpoint`);
    throw new StageError(`train ${ctx.stage}: ${(err as Error).message}`, { cause: err });
  } finally {
    await step?.dispose();
    model.dispose();
    optimizer.dispose();
  }
}
