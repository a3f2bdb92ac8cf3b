// Which model `predict --model` means: `current` (models/current, the promoted model, resolved once
// so a promotion meanwhile cannot mix two models), a stage of pipeline.yaml (its latest result in
// the store, read from the store's objects: nothing is written), or a bundle directory (a path with
// a slash, or any existing directory that is not a stage name).
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../engine/errors.js';
import { readCurrentModel, MODELS_DIR, CURRENT_LINK } from '../lib/champion.js';
import type { ModelFileReader } from '../lib/model/io.js';
import { directoryReader } from '../lib/predict/model.js';
import { shown } from './stage-lines.js';
import { openSession } from './session.js';

export const CURRENT_MODEL = 'current';

export interface ModelSource {
  read: ModelFileReader;
  /** How errors name it (a path the user can look at). */
  where: string;
  /** For the log line: `models/current (20260101…)`, `stage train (key 1a2b…)`, a directory. */
  describe: string;
  /** What to do when it has no bundle.json. */
  retrain: string;
}

const isDir = async (path: string) => (await stat(path).catch(() => undefined))?.isDirectory() === true;

function missing(name: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${name}: no such file`), { code: 'ENOENT' });
}

export async function modelSource(model: string, configFile: string): Promise<ModelSource> {
  const root = dirname(resolve(configFile));
  if (model === CURRENT_MODEL) {
    const current = await readCurrentModel(root);
    const link = join(root, MODELS_DIR, CURRENT_LINK);
    if (!current) {
      throw new UsageError(`no model has been promoted yet (${shown(link)} does not exist): name a train stage (--model train) or a bundle directory`);
    }
    return {
      read: directoryReader(current.dir),
      where: shown(current.dir),
      describe: `${shown(link)} (${current.info.id}, stage ${current.info.stage} of run ${current.info.runId})`,
      retrain: `train ${current.info.stage} again (pipeline run ${current.info.stage} --force) and promote it`,
    };
  }
  if (model.includes('/') || (await isDir(model))) {
    if (!(await isDir(model))) throw new UsageError(`--model ${model}: no such directory`);
    return { read: directoryReader(model), where: model, describe: model, retrain: 'train the model again with this version' };
  }
  return storedStage(model, configFile);
}

/** The latest result of stage `stage` in the store, its `model/` files read from the objects. */
async function storedStage(stage: string, configFile: string): Promise<ModelSource> {
  const session = await openSession(configFile);
  if (!session.pipeline.stages.has(stage)) {
    const trains = [...session.pipeline.stages.values()].filter((s) => s.kind === 'train').map((s) => s.name);
    throw new UsageError(
      `--model ${stage}: not a stage of ${shown(session.pipeline.file)} nor a directory (train stages: ${trains.join(', ') || 'none'}; or: current, a bundle directory)`,
    );
  }
  const { store } = session;
  const ref = (await store.readRefs()).get(stage);
  const manifest = ref ? await store.readManifest(ref.key) : null;
  if (!ref || !manifest) throw new UsageError(`stage ${stage} has no result in the store yet: run it first (pipeline run ${stage})`);
  const where = join(shown(store.stageLinkPath(stage)), 'model');
  if (!manifest.files['model/model.json']) throw new UsageError(`stage ${stage} has no model/ output (${where}): name a train stage`);
  return {
    read: (name) => {
      const file = manifest.files[`model/${name}`];
      if (!file) return Promise.reject(missing(join(where, name)));
      return readFile(store.objects.path(file.digest));
    },
    where,
    describe: `stage ${stage} (result ${manifest.key.slice(0, 12)}, run ${manifest.runId})`,
    retrain: `train it again (pipeline run ${stage} --force)`,
  };
}
