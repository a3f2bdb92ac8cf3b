// The promoted model ("champion") outside the content store, where serving code loads it:
//
//   models/current -> history/<id>      a symlink, switched atomically by rename
//   models/history/<id>/                one read-only directory per promotion, never rewritten:
//       model.json, weights.bin         (tf.loadLayersModel layout)
//       model-info.json                 metric, run id, keys, data digest, file digests, previous champion
//   models/events.jsonl                 one line per promotion or rollback
//
// Readers resolve `models/current` once (realpath) and read every file from that directory, so a
// switch in between can never mix two models. Used by the engine (promotion) and by the train
// kind (`init_from: current`), so it depends on nothing in engine/.
import { readFile, realpath } from 'node:fs/promises';
import { join, relative } from 'node:path';

export const MODELS_DIR = 'models';
export const CURRENT_LINK = 'current';
export const HISTORY_DIR = 'history';
export const MODEL_INFO = 'model-info.json';

export interface ModelFile {
  sha256: string;
  size: number;
}

export interface ModelInfo {
  /** Name of this model's directory under models/history/. */
  id: string;
  promotedAt: string;
  /** Why it became current: it beat the champion, there was none, or a person ran `pipeline promote`. */
  how: 'metric' | 'first' | 'manual';
  /** The run whose model this is. */
  runId: string;
  /** The train stage and the cache key of the result the model came from. */
  stage: string;
  trainKey: string;
  /** The evaluation that judged it (absent when promoted by hand without one). */
  evaluate?: { stage: string; key: string; metric: string; mode: 'max' | 'min'; value: number | null };
  /** Digest of the data the evaluation read besides the model (its other inputs' outputs digests). */
  dataDigest: string | null;
  /** Files of the model directory (relative name → sha256 and size). */
  files: Record<string, ModelFile>;
  /** The champion this one replaced (history id), for `pipeline rollback`. */
  previous: string | null;
}

export function modelsDir(root: string): string {
  return join(root, MODELS_DIR);
}

export function historyPath(root: string, id: string): string {
  return join(modelsDir(root), HISTORY_DIR, id);
}

const isErrno = (err: unknown, ...codes: string[]) => codes.includes((err as NodeJS.ErrnoException | undefined)?.code ?? '');

/** The current champion: its directory (resolved once) and info, or undefined if none was promoted. */
export async function readCurrentModel(root: string): Promise<{ dir: string; info: ModelInfo } | undefined> {
  let dir: string;
  try {
    dir = await realpath(join(modelsDir(root), CURRENT_LINK));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  return { dir, info: await readModelInfo(dir) };
}

export async function readModelInfo(dir: string): Promise<ModelInfo> {
  return JSON.parse(await readFile(join(dir, MODEL_INFO), 'utf8')) as ModelInfo;
}

/** The history id `models/current` points at (without reading the model). */
export async function currentId(root: string): Promise<string | undefined> {
  try {
    const target = await realpath(join(modelsDir(root), CURRENT_LINK));
    return relative(join(modelsDir(root), HISTORY_DIR), target);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/**
 * What `init_from: current` puts in the train stage's cache key: which champion (history id and
 * the digest of its files), or null when no model has been promoted yet.
 */
export async function championFingerprint(root: string): Promise<{ id: string; files: string } | null> {
  const current = await readCurrentModel(root);
  if (!current) return null;
  const files = Object.keys(current.info.files)
    .sort()
    .map((name) => `${name}:${current.info.files[name]!.sha256}`)
    .join(',');
  return { id: current.info.id, files };
}
