// The browser example: loads a model bundle with stock TensorFlow.js (the global `tf` from
// tf.min.js) and classifies the images the user picks, preprocessed as the bundle says
// (bundle-input.mjs). Query parameters: ?model=URL of the bundle directory (default model/),
// &backend=cpu|webgl|wasm (default: what tfjs picks), &top=k (default 3).
/* global tf, document, location, createImageBitmap */
import { bundleInput, topClasses } from './bundle-input.mjs';

const params = new URLSearchParams(location.search);
const base = new URL(params.get('model') ?? 'model/', location.href);
const topK = Number(params.get('top') ?? 3);
const status = document.getElementById('status');
const picker = document.getElementById('files');
const table = document.getElementById('results');

/** bundle.json and the model it names, from the bundle directory at `url`. */
export async function loadBundle(url) {
  const response = await fetch(new URL('bundle.json', url));
  if (!response.ok) throw new Error(`${new URL('bundle.json', url)}: HTTP ${response.status}`);
  const bundle = await response.json();
  const model = await tf.loadLayersModel(new URL(bundle.model, url).href);
  return { bundle, model };
}

/** Top classes of one image file (JPEG, PNG): [{ class, probability }]. */
export async function classifyFile({ bundle, model }, file, k = topK) {
  // As decoded files are read by `pipeline predict`: no colour-profile conversion, alpha not premultiplied.
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const input = tf.tidy(() => bundleInput(tf, bundle, tf.browser.fromPixels(bitmap, 3)));
  bitmap.close();
  const probs = model.predict(input);
  const top = await topClasses(tf, bundle, probs, k);
  tf.dispose([input, probs]);
  return top;
}

function showRow(file, top) {
  const row = table.insertRow();
  const image = document.createElement('img');
  image.src = URL.createObjectURL(file);
  image.alt = file.name;
  row.insertCell().append(image);
  row.insertCell().textContent = file.name;
  row.insertCell().textContent = top.map((t) => `${t.class} ${t.probability.toFixed(4)}`).join(', ');
  row.dataset.top = JSON.stringify(top);
}

async function main() {
  if (params.get('backend')) await tf.setBackend(params.get('backend'));
  await tf.ready();
  const loaded = await loadBundle(base);
  const [h, w, c] = loaded.bundle.input.size;
  status.textContent = `Model ready (${tf.getBackend()}): ${loaded.bundle.classes.length} classes, ${h}×${w}×${c} input. Pick JPEG or PNG images.`;
  status.dataset.ready = 'true';
  picker.disabled = false;
  picker.addEventListener('change', async () => {
    for (const file of picker.files) {
      try {
        showRow(file, await classifyFile(loaded, file));
      } catch (err) {
        showRow(file, []);
        console.warn(`${file.name}: ${err.message}`);
      }
    }
    status.dataset.done = String(table.rows.length);
  });
}

main().catch((err) => {
  status.textContent = `Could not load the model: ${err.message}`;
  status.dataset.error = err.message;
});
