#!/usr/bin/env node
// The Node example: a model bundle on image files with stock @tensorflow/tfjs (pure JavaScript: no
// tfjs-node, whose file:// loader this does without) and the pure-JS decoders pngjs and jpeg-js.
//
//   node examples/node/classify.mjs BUNDLE_DIR IMAGE...      (BUNDLE_DIR: e.g. models/current)
//
// Prints one JSON line per image: {"file", "top": [{"class", "probability"}, …]}.
import { readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { bundleInput, topClasses } from '../bundle-input.mjs';

/** bundle.json and its model, read from a directory with tf.loadLayersModel and a file-reading IOHandler. */
export async function loadBundle(dir) {
  const bundle = JSON.parse(await readFile(join(dir, 'bundle.json'), 'utf8'));
  const modelJson = JSON.parse(await readFile(join(dir, bundle.model), 'utf8'));
  const model = await tf.loadLayersModel({
    load: () =>
      tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const weights = await Promise.all(manifest.flatMap((group) => group.paths).map((path) => readFile(join(dir, path))));
        const all = Buffer.concat(weights);
        return [manifest.flatMap((group) => group.weights), all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
      }),
  });
  return { bundle, model };
}

/** A JPEG or PNG file as an int32 tensor [height, width, 3] (alpha dropped). */
export async function readRgb(path) {
  const bytes = await readFile(path);
  const image = bytes[0] === 0x89 && bytes[1] === 0x50 ? pngjs.PNG.sync.read(bytes) : jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
  return tf.tidy(() => tf.tensor3d(new Int32Array(image.data), [image.height, image.width, 4]).slice([0, 0, 0], [-1, -1, 3]));
}

const [dir, ...images] = process.argv.slice(2);
if (!dir || images.length === 0) {
  process.stderr.write('usage: node examples/node/classify.mjs BUNDLE_DIR IMAGE...\n');
  process.exit(2);
}
// Resolved once: a promotion meanwhile cannot mix two models' files.
const { bundle, model } = await loadBundle(await realpath(dir));
for (const file of images) {
  const rgb = await readRgb(file);
  const input = bundleInput(tf, bundle, rgb);
  const probs = model.predict(input);
  process.stdout.write(JSON.stringify({ file, top: await topClasses(tf, bundle, probs) }) + '\n');
  tf.dispose([rgb, input, probs]);
}
