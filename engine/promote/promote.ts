// Champion/challenger promotion: after a run, the model of `promote.train` becomes models/current/
// only if its `promote.metric` (from `promote.evaluate`'s metrics.json) beats the current model's by
// at least `min_delta`. Promoting copies the model out of the store into a new read-only
// models/history/<id>/ and then switches the `models/current` symlink with one rename, so a reader
// sees the old model or the new one, never a mix or a half-written file. Call with the store lock held.
import { createHash } from 'node:crypto';
import { appendFile, chmod, mkdir, open, readdir, readFile, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { PromoteSpec } from '../config/automation.js';
import { StageError, UsageError } from '../errors.js';
import { isErrno, randomSuffix } from '../store/fs-tree.js';
import { filesUnder, type Manifest } from '../store/manifest.js';
import type { Pipeline } from '../config/pipeline.js';
import type { PromotionRecord, RunRecord } from '../store/runs.js';
import type { Store } from '../store/store.js';
import { hashValue } from '../store/hash.js';
import {
  CURRENT_LINK,
  HISTORY_DIR,
  MODEL_INFO,
  currentId,
  historyPath,
  modelsDir,
  readCurrentModel,
  readModelInfo,
  type ModelFile,
  type ModelInfo,
} from '../../lib/champion.js';

const MODEL_ENTRY = 'model';
const METRICS_FILE = 'metrics.json';

export interface StageResult {
  stage: string;
  outcome: string;
  key?: string;
}

/** The run that already made a promotion decision about this train result, if any. */
async function judgedIn(store: Store, trainKey: string): Promise<string | undefined> {
  const runs = await store.runs.list();
  return runs.find((r) => r.promotion?.candidateKey === trainKey && (r.promotion.decision === 'promoted' || r.promotion.decision === 'kept'))?.id;
}

/** The metric at a dotted path of an evaluate stage's metrics.json, or null if it is not a number. */
export async function readMetric(store: Store, evaluate: Manifest, metric: string): Promise<number | null> {
  const metrics = await readMetrics(store, evaluate);
  let value: unknown = metrics;
  for (const part of metric.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export async function readMetrics(store: Store, m: Manifest): Promise<Record<string, unknown>> {
  const file = m.files[METRICS_FILE];
  if (!file) throw new StageError(`stage ${m.stage} has no ${METRICS_FILE} (promote.evaluate must name a stage that writes one)`);
  return JSON.parse(await readFile(store.objects.path(file.digest), 'utf8')) as Record<string, unknown>;
}

/** How much better `candidate` is than `champion` (positive = better), by the spec's mode. */
function improvement(spec: PromoteSpec, candidate: number, champion: number): number {
  return spec.mode === 'max' ? candidate - champion : champion - candidate;
}

const fmt = (n: number | null | undefined) => (n === null || n === undefined ? '-' : Number(n.toPrecision(6)).toString());

/** Digest of what the evaluation read besides the model: the data its metric is measured on. */
function dataDigestOf(evaluate: Manifest, trainStage: string): string | null {
  const others = Object.entries(evaluate.material.inputs).filter(([stage]) => stage !== trainStage);
  return others.length ? hashValue(others.sort(([a], [b]) => a.localeCompare(b))) : null;
}

/**
 * Decides (and performs) the promotion after a successful run. Never throws for a model that is
 * merely not better; throws only when the store or models/ cannot be read or written.
 */
export async function promoteAfterRun(pipeline: Pipeline, store: Store, runId: string, results: readonly StageResult[]): Promise<PromotionRecord> {
  const spec = pipeline.promote!;
  const base = { metric: spec.metric };
  const train = results.find((r) => r.stage === spec.train);
  const evaluate = results.find((r) => r.stage === spec.evaluate);
  if (!train?.key || !evaluate?.key) {
    return { ...base, decision: 'skipped', reason: `${!train?.key ? spec.train : spec.evaluate} was not part of this run` };
  }
  const current = await readCurrentModel(pipeline.root);
  const championValue = current?.info.evaluate?.metric === spec.metric ? current.info.evaluate.value : null;
  const withChampion = { ...base, candidateKey: train.key, champion: championValue, ...(current ? { current: current.info.id } : {}) };
  if (current?.info.trainKey === train.key) return { ...withChampion, decision: 'kept', reason: 'the new model is already the current one' };
  // A model is judged once: a cached train stage must not bring back a model that lost or was rolled back.
  const judged = current ? await judgedIn(store, train.key) : undefined;
  if (judged) return { ...withChampion, decision: 'kept', reason: `no new model (${spec.train}'s model was judged in run ${judged})` };

  const trainManifest = await store.readManifest(train.key);
  const evalManifest = await store.readManifest(evaluate.key);
  if (!trainManifest || !evalManifest) throw new StageError(`promote: the results of ${spec.train} / ${spec.evaluate} are missing from the store`);
  const candidate = await readMetric(store, evalManifest, spec.metric);
  if (candidate === null) {
    return { ...withChampion, decision: 'error', candidate, reason: `${spec.evaluate}/${METRICS_FILE} has no number at '${spec.metric}'` };
  }
  const withBoth = { ...withChampion, candidate };
  let how: ModelInfo['how'] = 'metric';
  let reason: string;
  if (!current) {
    how = 'first';
    reason = 'no current model yet';
  } else if (championValue === null) {
    reason = `the current model has no recorded ${spec.metric}`;
  } else {
    const delta = improvement(spec, candidate, championValue);
    const verdict = `${spec.metric} ${fmt(candidate)} vs ${fmt(championValue)} (${spec.mode === 'max' ? 'higher' : 'lower'} is better, change ${delta >= 0 ? '+' : ''}${fmt(delta)}, min_delta ${fmt(spec.minDelta)})`;
    if (!(delta > 0 && delta >= spec.minDelta)) return { ...withBoth, decision: 'kept', reason: verdict };
    reason = verdict;
    const currentData = current.info.dataDigest;
    const data = dataDigestOf(evalManifest, spec.train);
    if (currentData && data && currentData !== data) reason += '; note: the current model was measured on different data';
  }
  const info = await installChampion(pipeline.root, store, {
    runId,
    how,
    train: trainManifest,
    evaluate: { manifest: evalManifest, metric: spec.metric, mode: spec.mode, value: candidate },
  });
  return { ...withBoth, decision: 'promoted', reason, current: info.id };
}

export interface InstallRequest {
  runId: string;
  how: ModelInfo['how'];
  train: Manifest;
  evaluate?: { manifest: Manifest; metric: string; mode: 'max' | 'min'; value: number | null };
}

/** Copies a train result's model/ into a new history entry and makes it current. */
export async function installChampion(root: string, store: Store, req: InstallRequest): Promise<ModelInfo> {
  const files = filesUnder(req.train, MODEL_ENTRY).filter(([rel]) => rel !== MODEL_ENTRY);
  if (!files.some(([rel]) => rel === `${MODEL_ENTRY}/model.json`)) {
    throw new StageError(`promote: stage ${req.train.stage} has no ${MODEL_ENTRY}/model.json to promote`);
  }
  const history = join(modelsDir(root), HISTORY_DIR);
  await mkdir(history, { recursive: true });
  await removeStaleTemps(history);
  const previous = (await currentId(root)) ?? null;
  const id = `${new Date().toISOString().replace(/[-:.]/g, '')}-${req.train.key.slice(0, 12)}`;
  const tmp = join(history, `.tmp-${id}-${randomSuffix()}`);
  await mkdir(tmp);
  try {
    const copied: Record<string, ModelFile> = {};
    for (const [rel, f] of files) {
      const name = rel.slice(MODEL_ENTRY.length + 1);
      const dest = join(tmp, name);
      await mkdir(join(dest, '..'), { recursive: true });
      await store.objects.copyOut(f.digest, dest);
      // The copy is what serving loads: check it, and make it durable before it can become current.
      const sha256 = await syncAndHash(dest);
      if (sha256 !== f.digest) throw new StageError(`promote: ${rel} of ${req.train.stage} does not match its stored digest (run pipeline verify)`);
      await chmod(dest, 0o444);
      copied[name] = { sha256, size: f.size };
    }
    const ev = req.evaluate;
    const info: ModelInfo = {
      id,
      promotedAt: new Date().toISOString(),
      how: req.how,
      runId: req.runId,
      stage: req.train.stage,
      trainKey: req.train.key,
      ...(ev ? { evaluate: { stage: ev.manifest.stage, key: ev.manifest.key, metric: ev.metric, mode: ev.mode, value: ev.value } } : {}),
      dataDigest: ev ? dataDigestOf(ev.manifest, req.train.stage) : null,
      files: copied,
      previous,
    };
    const infoPath = join(tmp, MODEL_INFO);
    await writeDurable(infoPath, JSON.stringify(info, null, 2) + '\n');
    await chmod(infoPath, 0o444);
    await rename(tmp, historyPath(root, id));
    await syncDir(history);
    await switchCurrent(root, id);
    await logEvent(root, { event: 'promote', id, from: previous, how: req.how, runId: req.runId, at: info.promotedAt });
    return info;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Points models/current at history/<id> in one rename (atomic on POSIX file systems). */
async function switchCurrent(root: string, id: string): Promise<void> {
  const dir = modelsDir(root);
  const link = join(dir, CURRENT_LINK);
  const tmp = join(dir, `.${CURRENT_LINK}-${process.pid}-${randomSuffix()}`);
  await symlink(join(HISTORY_DIR, id), tmp, 'dir');
  try {
    await rename(tmp, link);
  } catch (err) {
    await rm(tmp, { force: true });
    if (isErrno(err, 'EISDIR', 'ENOTEMPTY', 'EEXIST')) {
      throw new UsageError(`${link} is a directory, not the link this tool manages; move it away to promote models`);
    }
    throw err;
  }
  await syncDir(dir);
}

/** `pipeline rollback`: the champion before the current one becomes current again (same bytes). */
export async function rollbackChampion(root: string): Promise<{ from: ModelInfo; to: ModelInfo }> {
  const current = await readCurrentModel(root);
  if (!current) throw new UsageError('nothing to roll back: no model has been promoted (models/current does not exist)');
  if (!current.info.previous) throw new UsageError(`nothing to roll back to: ${current.info.id} was the first promoted model`);
  let to: ModelInfo;
  try {
    to = await readModelInfo(historyPath(root, current.info.previous));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new UsageError(`the previous model ${current.info.previous} is no longer in ${join(modelsDir(root), HISTORY_DIR)}`);
    throw err;
  }
  await switchCurrent(root, to.id);
  await logEvent(root, { event: 'rollback', id: to.id, from: current.info.id, at: new Date().toISOString() });
  return { from: current.info, to };
}

/** Keys of every promoted model (train and evaluate results): `pipeline gc` keeps them. */
export async function promotedKeys(root: string): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const info of await promotedModels(root)) {
    keys.add(info.trainKey);
    if (info.evaluate) keys.add(info.evaluate.key);
  }
  return keys;
}

/** Ids of the runs whose model is in models/history/ (current or earlier): retention keeps their records. */
export async function promotedRunIds(root: string): Promise<Set<string>> {
  return new Set((await promotedModels(root)).map((info) => info.runId));
}

async function promotedModels(root: string): Promise<ModelInfo[]> {
  let ids: string[];
  try {
    ids = await readdir(join(modelsDir(root), HISTORY_DIR));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
  const infos: ModelInfo[] = [];
  for (const id of ids) {
    if (id.startsWith('.')) continue;
    try {
      infos.push(await readModelInfo(historyPath(root, id)));
    } catch {
      // Not a model directory of ours.
    }
  }
  return infos;
}

/** `pipeline promote [RUN]`: makes the model of a past run's train stage current, whatever its metric. */
export async function promoteRun(pipeline: Pipeline, store: Store, record: RunRecord, trainStage?: string): Promise<ModelInfo> {
  const spec = pipeline.promote;
  const stage = trainStage ?? spec?.train;
  if (!stage) throw new UsageError('which model? pipeline.yaml has no promote: section; name the train stage with --stage');
  const train = record.stages.find((s) => s.stage === stage && s.key);
  if (!train?.key) throw new UsageError(`run ${record.id} has no result of stage '${stage}'`);
  const manifest = await store.readManifest(train.key);
  if (!manifest) throw new UsageError(`the result of ${stage} in run ${record.id} is no longer in the store (collected by gc?)`);
  const evalKey = spec && spec.train === stage ? record.stages.find((s) => s.stage === spec.evaluate && s.key)?.key : undefined;
  const evalManifest = evalKey ? await store.readManifest(evalKey) : null;
  const value = evalManifest && spec ? await readMetric(store, evalManifest, spec.metric) : null;
  return installChampion(pipeline.root, store, {
    runId: record.id,
    how: 'manual',
    train: manifest,
    ...(evalManifest && spec ? { evaluate: { manifest: evalManifest, metric: spec.metric, mode: spec.mode, value } } : {}),
  });
}

async function logEvent(root: string, event: Record<string, unknown>): Promise<void> {
  await appendFile(join(modelsDir(root), 'events.jsonl'), JSON.stringify(event) + '\n');
}

/** Temp directories of a promotion that was killed (we hold the store lock: nobody else is writing). */
async function removeStaleTemps(history: string): Promise<void> {
  for (const name of await readdir(history)) if (name.startsWith('.tmp-')) await rm(join(history, name), { recursive: true, force: true });
}

async function syncAndHash(path: string): Promise<string> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
    const hash = createHash('sha256');
    for await (const chunk of handle.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

async function writeDurable(path: string, text: string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
