// Loading a model bundle for prediction from wherever its files are (a directory, models/current,
// a store's objects): bundle.json, checked, then the model, checked against it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { BundleError } from '../errors.js';
import { BUNDLE_FILE, parseBundle, type ModelBundle } from '../model/bundle.js';
import { loadModelFrom, type ModelFileReader } from '../model/io.js';
import { checkModelFitsBundle } from './predict.js';

/** Reads files of directory `dir` by name. */
export function directoryReader(dir: string): ModelFileReader {
  return (name) => readFile(join(dir, name));
}

const isMissing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException | undefined)?.code ?? '');

/**
 * The bundle.json of the model whose files `read` returns, checked; `where` names it in errors
 * (e.g. `models/current`); `retrain` says how to get one for a model trained before bundles existed.
 */
export async function readBundle(read: ModelFileReader, where: string, retrain: string): Promise<ModelBundle> {
  let text: string;
  try {
    text = Buffer.from(await read(BUNDLE_FILE)).toString('utf8');
  } catch (err) {
    if (!isMissing(err)) throw new BundleError(`cannot read ${join(where, BUNDLE_FILE)}: ${(err as Error).message}`);
    let hasModel = true;
    await read('model.json').catch(() => (hasModel = false));
    throw new BundleError(
      hasModel
        ? `${where} has no ${BUNDLE_FILE} (a model trained before bundles existed): ${retrain}`
        : `${where} is not a model directory (no model.json or ${BUNDLE_FILE})`,
    );
  }
  return parseBundle(text, join(where, BUNDLE_FILE));
}

/** The bundle's model (a backend must be ready), checked against the bundle. */
export async function loadBundledModel(read: ModelFileReader, where: string, bundle: ModelBundle): Promise<tf.LayersModel> {
  let model: tf.LayersModel;
  try {
    model = await loadModelFrom(read, where);
  } catch (err) {
    throw new BundleError(`${where}: cannot load the model: ${(err as Error).message}`, { cause: err });
  }
  try {
    checkModelFitsBundle(model, bundle, where);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}
