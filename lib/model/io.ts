// Saves and loads layers models as the standard tfjs layout (model.json + weights.bin) on the
// local file system. tfjs-node's `file://` handler does not exist on the wasm and cpu backends, so
// this handler is used on every backend: `model.save(fileSystemHandler(dir))` and
// `tf.loadLayersModel(fileSystemHandler(dir))`.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

function toBuffer(data: tf.io.WeightData): Buffer {
  const parts = Array.isArray(data) ? data : [data];
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

/** Writes atomically (temp file + rename) so a kill mid-save never leaves a torn file behind. */
async function writeAtomic(path: string, data: string | Buffer): Promise<void> {
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
}

export function fileSystemHandler(dir: string): tf.io.IOHandler {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) throw new Error('saving binary model topologies is not supported');
      await mkdir(dir, { recursive: true });
      const weights = artifacts.weightData ? toBuffer(artifacts.weightData) : Buffer.alloc(0);
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      await writeAtomic(join(dir, WEIGHTS_BIN), weights);
      await writeAtomic(join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    load: readingHandler((name) => readFile(join(dir, name)), dir).load,
  };
}

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Reads a file of a model directory by its name there (model.json, weights.bin...). */
export type ModelFileReader = (name: string) => Promise<Uint8Array>;

/**
 * A load-only handler over any way of reading the model's files by name: a directory, a store's
 * objects. Weight file names come from model.json: only plain names (no path) are read.
 */
export function readingHandler(read: ModelFileReader, where: string): Required<Pick<tf.io.IOHandler, 'load'>> {
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      let modelJson: tf.io.ModelJSON;
      try {
        modelJson = JSON.parse(asBuffer(await read(MODEL_JSON)).toString('utf8')) as tf.io.ModelJSON;
      } catch (err) {
        throw new Error(`cannot read ${join(where, MODEL_JSON)}: ${(err as Error).message}`);
      }
      if (modelJson.modelTopology == null) throw new Error(`${join(where, MODEL_JSON)}: no modelTopology`);
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: Buffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            if (!/^[\w.-]+$/.test(p) || p === '.' || p === '..')
              throw new Error(`${join(where, MODEL_JSON)}: weight file ${JSON.stringify(p)} is not a plain file name`);
            buffers.push(asBuffer(await read(p)));
          }
        }
        const all = Buffer.concat(buffers);
        return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer];
      });
    },
  };
}

export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(fileSystemHandler(dir));
}

export async function loadModel(dir: string): Promise<tf.LayersModel> {
  return tf.loadLayersModel(fileSystemHandler(dir));
}

/** Loads a layers model whose files `read` returns by name (`where` names them in errors). */
export async function loadModelFrom(read: ModelFileReader, where: string): Promise<tf.LayersModel> {
  return tf.loadLayersModel(readingHandler(read, where));
}
