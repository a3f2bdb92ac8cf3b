// A trained model in use, end to end through the built CLI: a 2-class image-folder dataset (16×16,
// a few images) trained with the default network, which must follow the data (2 outputs); the
// model bundle in the train stage's model/ and in models/current; `pipeline predict` on folders,
// files and archives, equal to evaluate's predictions; bad images reported, skipped, exit 4; the
// serving examples (a page with stock tfjs in Chromium, and Node) predicting what `predict` does.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { runCli, workspace, type CliResult } from './helpers/cli.js';
import { syntheticImage } from './helpers/dataset.js';
import { encodeJpeg } from './helpers/jpeg-encode.js';
import { writeTar, writeZip } from './helpers/archive-builders.js';
import { browserAvailable, chromiumPath } from './helpers/browser.js';
import { checkBundle, type ModelBundle } from '../lib/model/bundle.js';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const CLASSES = ['cat', 'dog'];
const SIZE = 16;

const PIPELINE = `stages:
  fetch:
    uses: fetch
    with: {url: data}
  decode:
    uses: decode
    needs: [fetch]
    with: {height: ${SIZE}, width: ${SIZE}}
  normalize:
    uses: normalize
    needs: [decode]
    with: {method: standardize, validation_split: 0.25}
  train:
    uses: train
    needs: [normalize]
    with: {epochs: 2, batch_size: 16, workers: 1}
  evaluate:
    uses: evaluate
    needs: [train, normalize]
promote:
  train: train
  evaluate: evaluate
`;

interface Row {
  file: string;
  top?: { class: string; probability: number }[];
  error?: string;
}

let dir: string;
/** predict's TMPDIR: what it unpacks archives into must be gone when it exits. */
let tmp: string;
const run = (...args: string[]): Promise<CliResult> => runCli(args, { cwd: dir, env: { TMPDIR: tmp } });
const jsonl = (text: string): Row[] =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Row);
const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(join(dir, path), 'utf8')) as T;

/** Equal classes, probabilities equal to 5 decimals (batches of other sizes may round the last bits differently). */
function expectSameTop(file: string, got: Row['top'], expected: Row['top']): void {
  expect({ file, classes: got?.map((t) => t.class) }).toEqual({ file, classes: expected?.map((t) => t.class) });
  got!.forEach((t, i) => expect(t.probability).toBeCloseTo(expected![i]!.probability, 5));
}

/** A class-coloured disc on noise (test/helpers/dataset.ts), `width` × `height` RGB. */
function png(cls: number, index: number, width = SIZE, height = SIZE): Buffer {
  const side = Math.max(width, height);
  const rgba = syntheticImage(cls, index, side);
  const image = new PNG({ width, height });
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) for (let c = 0; c < 4; c++) image.data[(y * width + x) * 4 + c] = rgba[(y * side + x) * 4 + c]!;
  return PNG.sync.write(image, { colorType: 2 });
}

/** data/{train,test}/{cat,dog}/: 20 training images a class; 6 test images a class, one a JPEG and one of another size. */
async function writeDataset(root: string): Promise<void> {
  for (const [c, name] of CLASSES.entries()) {
    await mkdir(join(root, 'train', name), { recursive: true });
    await mkdir(join(root, 'test', name), { recursive: true });
    for (let i = 0; i < 20; i++) await writeFile(join(root, 'train', name, `${String(i).padStart(2, '0')}.png`), png(c, i));
    for (let i = 0; i < 4; i++) await writeFile(join(root, 'test', name, `t${i}.png`), png(c, 1000 + i));
    await writeFile(join(root, 'test', name, 't4.jpg'), encodeJpeg(syntheticImage(c, 1004, SIZE), SIZE, SIZE, 90));
    await writeFile(join(root, 'test', name, 't5.png'), png(c, 1005, 24, 20));
  }
}

/** The 16×16 PNG test images, as predict names them. */
const plainPngs = () => CLASSES.flatMap((name) => [0, 1, 2, 3].map((i) => `data/test/${name}/t${i}.png`));

let folderRows: Row[];

beforeAll(async () => {
  dir = await workspace(PIPELINE, 'predict-');
  tmp = await mkdtemp(join(tmpdir(), 'predict-tmp-'));
  await writeDataset(join(dir, 'data'));
  const first = await run('run');
  expect(first.stderr).not.toMatch(/error/);
  expect(first.code).toBe(0);
  expect(first.stdout).toMatch(/^promote: promoted the new model/m);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(tmp, { recursive: true, force: true });
});

describe('the default network on 2 classes', () => {
  test('trains (2 outputs), and its model/ and models/current hold the bundle', async () => {
    const train = await readJson<{ classes: string[] }>('artifacts/stages/train/train.json');
    expect(train.classes).toEqual(CLASSES);
    expect(await readFile(join(dir, 'artifacts/stages/train/summary.txt'), 'utf8')).toMatch(/^dense_2 \(Dense\)\s+\(None, 2\)/m);
    const bundle = checkBundle(await readJson('artifacts/stages/train/model/bundle.json'), 'bundle.json');
    const normalization = await readJson<{ mean: number[]; std: number[] }>('artifacts/stages/normalize/normalization.json');
    const normalize = JSON.parse((await run('show', 'normalize', '--json')).stdout) as { outputsDigest: string };
    const history = await readJson<{ val_acc: number[]; loss: number[] }>('artifacts/stages/train/history.json');
    expect(bundle).toMatchObject({
      classes: CLASSES,
      input: { size: [SIZE, SIZE, 3], layout: 'NHWC', channel_order: 'RGB', resize: 'bilinear' },
      normalization: { method: 'standardize', scale: 1 / 255, mean: normalization.mean, std: normalization.std },
      training: { stage: 'train', data_digest: normalize.outputsDigest, train_count: 30, val_count: 10, epochs: 2 },
      metrics: { epoch: 2, loss: history.loss[1], val_acc: history.val_acc[1] },
    });
    // Promotion copies the whole model/: the bundle travels with the model.
    expect(await readFile(join(dir, 'models/current/bundle.json'), 'utf8')).toBe(await readFile(join(dir, 'artifacts/stages/train/model/bundle.json'), 'utf8'));
  });
});

describe('pipeline predict', () => {
  test("on the test folder: CSV top-k; the same predictions as evaluate's (confusion matrix, confident mistakes)", async () => {
    const csv = await run('predict', 'data/test', '--top-k', '5');
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]).toBe('file,class_1,probability_1,class_2,probability_2,error'); // top-k is at most the classes
    expect(lines).toHaveLength(13);
    expect(lines[1]).toMatch(/^data\/test\/cat\/t0\.png,(cat|dog),[\d.e-]+,(cat|dog),[\d.e-]+,$/);
    expect(csv.stderr).toMatch(/model models\/current .*2 classes, 16×16×3 RGB input; backend (native|wasm|cpu|tensorflow)/);

    const predicted = await run('predict', '--model', 'train', '--format', 'jsonl', '--batch-size', '5', 'data/test');
    expect(predicted.code).toBe(0);
    folderRows = jsonl(predicted.stdout);
    // The same model from the store and from models/current, in batches of 5 or 64: the same predictions.
    expect(folderRows.map((r) => r.file)).toEqual(lines.slice(1).map((l) => l.split(',')[0]));
    folderRows.forEach((r, i) => {
      const [, c1, p1, c2, p2] = lines[i + 1]!.split(',');
      expectSameTop(r.file, r.top, [
        { class: c1!, probability: Number(p1) },
        { class: c2!, probability: Number(p2) },
      ]);
    });

    const metrics = await readJson<{
      confusion_matrix: number[][];
      test_accuracy: number;
      most_confident_mistakes: { index: number; predicted_class: string; confidence: number }[];
    }>('artifacts/stages/evaluate/metrics.json');
    const matrix = CLASSES.map(() => CLASSES.map(() => 0));
    for (const r of folderRows) matrix[CLASSES.indexOf(r.file.split('/')[2]!)]![CLASSES.indexOf(r.top![0]!.class)]!++;
    expect(matrix).toEqual(metrics.confusion_matrix);
    // Test row i of evaluate is the i-th test source of the dataset, in predict's order too.
    const sources = (await readJson<{ source: string[]; label: number[] }>('artifacts/stages/decode/dataset/rows.json')).source.slice(40);
    expect(folderRows.map((r) => r.file)).toEqual(sources.map((s) => `data/${s}`));
    for (const m of metrics.most_confident_mistakes) {
      const top = folderRows[m.index]!.top![0]!;
      expect(top.class).toBe(m.predicted_class);
      expect(top.probability).toBeCloseTo(m.confidence, 5);
    }
  });

  test('a folder with corrupt files: each reported on stderr and as an error row, the others predicted as before; exit 4', async () => {
    await mkdir(join(dir, 'mixed'));
    for (const f of ['t0.png', 't1.png', 't4.jpg']) await copyFile(join(dir, 'data/test/dog', f), join(dir, 'mixed', f));
    await writeFile(join(dir, 'mixed', 'broken.png'), (await readFile(join(dir, 'data/test/dog/t2.png'))).subarray(0, 80));
    await writeFile(join(dir, 'mixed', 'text.jpg'), 'not an image');
    await writeFile(join(dir, 'mixed', 'notes.txt'), 'ignored: not an image by name');
    const r = await run('predict', 'mixed', '--format', 'jsonl', '--out', 'mixed.jsonl');
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^\[predict\] warning: skipped mixed\/broken\.png: PNG truncated/m);
    expect(r.stderr).toMatch(/^\[predict\] warning: skipped mixed\/text\.jpg: not a JPEG or PNG file$/m);
    expect(r.stderr).toMatch(/^error: 2 of 5 images could not be read and were skipped .*; the predictions are in mixed\.jsonl$/m);
    expect(r.stderr).toMatch(/^\[predict\] 1 other file in the folders and archives ignored \(not \.jpg, \.jpeg or \.png, or hidden\)$/m);
    const rows = jsonl(await readFile(join(dir, 'mixed.jsonl'), 'utf8'));
    expect(rows.map((x) => [x.file, x.error === undefined])).toEqual([
      ['mixed/broken.png', false],
      ['mixed/t0.png', true],
      ['mixed/t1.png', true],
      ['mixed/t4.jpg', true],
      ['mixed/text.jpg', false],
    ]);
    const before = new Map(folderRows.map((x) => [x.file.replace('data/test/dog/', 'mixed/'), x.top]));
    for (const x of rows.filter((row) => row.top)) expectSameTop(x.file, x.top, before.get(x.file));
    // The output was written under a temporary name and renamed: nothing else is left.
    expect((await readdir(dir)).filter((f) => f.includes('mixed.jsonl'))).toEqual(['mixed.jsonl']);
  });

  test('archives (.tar.gz, .zip) are unpacked into a temporary directory, predicted, and removed; an unsafe one is a skipped input', async () => {
    const entries = async (name: string) =>
      Promise.all(['t0.png', 't3.png', 't5.png'].map(async (f) => ({ path: `${name}/${f}`, body: await readFile(join(dir, 'data/test', name, f)) })));
    await writeTar(join(dir, 'cats.tar.gz'), [{ path: 'cat', type: 'dir' }, ...(await entries('cat'))], { gzip: true });
    await writeZip(join(dir, 'dogs.zip'), await entries('dog'));
    await writeTar(join(dir, 'evil.tar'), [{ path: '../escape.png', body: 'x' }]);
    const r = await run('predict', 'cats.tar.gz', 'dogs.zip', 'evil.tar', 'data/test/cat/t1.png', '--format', 'jsonl');
    expect(r.code).toBe(4);
    const rows = jsonl(r.stdout);
    expect(rows.map((x) => x.file)).toEqual([
      'cats.tar.gz:cat/t0.png',
      'cats.tar.gz:cat/t3.png',
      'cats.tar.gz:cat/t5.png',
      'dogs.zip:dog/t0.png',
      'dogs.zip:dog/t3.png',
      'dogs.zip:dog/t5.png',
      'evil.tar',
      'data/test/cat/t1.png',
    ]);
    expect(rows[6]!.error).toMatch(/^cannot unpack the archive: unsafe entry "\.\.\/escape\.png"/);
    const byFile = new Map(folderRows.map((x) => [x.file, x.top]));
    for (const x of rows.filter((row) => row.top)) expectSameTop(x.file, x.top, byFile.get(x.file.replace(/^(cats\.tar\.gz|dogs\.zip):/, 'data/test/')));
    expect(await readdir(tmp)).toEqual([]);
    await expect(readFile(join(dir, '..', 'escape.png'))).rejects.toThrow();
  });

  test('usage errors say what is wrong (exit 2); a reader that goes away stops it quietly (exit 0)', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['--model', 'nope', 'data/test'],
        /--model nope: not a stage of pipeline\.yaml nor a directory \(train stages: train; or: current, a bundle directory\)/,
      ],
      [['--model', 'evaluate', 'data/test'], /stage evaluate has no model\/ output/],
      [['missing.png'], /missing\.png: no such file or directory/],
      [['--top-k', '0', 'data/test'], /--top-k.*positive integer/],
    ];
    await mkdir(join(dir, 'old-model'));
    for (const f of ['model.json', 'weights.bin']) await copyFile(join(dir, 'models/current', f), join(dir, 'old-model', f));
    cases.push([['--model', 'old-model', 'data/test'], /old-model has no bundle\.json \(a model trained before bundles existed\)/]);
    await mkdir(join(dir, 'empty'));
    cases.push([['empty'], /no JPEG or PNG images in empty/]);
    for (const [args, message] of cases) {
      const r = await run('predict', ...args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    // Far more than a pipe holds (~160 KB of rows): `| head -1` closes it long before the end.
    const many = Array.from({ length: 3000 }, () => 'data/test/cat/t0.png');
    const cli = JSON.stringify(resolve(REPO, 'dist/cli/main.js'));
    const piped = await shell(`node ${cli} predict ${many.join(' ')} | head -1; ` + 'echo "exit ${PIPESTATUS[0]}" >&2');
    expect(piped.stdout).toBe('file,class_1,probability_1,class_2,probability_2,error\n');
    expect(piped.stderr).toMatch(/^exit 0$/m);
    expect(piped.stderr).not.toMatch(/EPIPE|error/);
    expect(piped.stderr).not.toMatch(/3000 predicted/); // it stopped early
  });
});

describe('interrupted', () => {
  test('Ctrl-C: exit 130, no output file, no temporary file or directory left', async () => {
    const many = Array.from({ length: 3000 }, () => 'data/test/cat/t0.png');
    let sent = false;
    const r = await runCli(['predict', 'cats.tar.gz', ...many, '--out', 'stopped.csv'], {
      cwd: dir,
      env: { TMPDIR: tmp },
      onOutput: (chunk, child) => {
        if (!sent && /classify\s+\d+ img/.test(chunk)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/^error: interrupted: predict stopped; no output file was written$/m);
    expect((await readdir(dir)).filter((f) => f.includes('stopped.csv'))).toEqual([]);
    expect(await readdir(tmp)).toEqual([]);
  });
});

/** Runs a bash command line in the workspace (TMPDIR: the test's). */
async function shell(command: string): Promise<{ stdout: string; stderr: string }> {
  const child = spawn('bash', ['-c', command], { cwd: dir, env: { ...process.env, TMPDIR: tmp, NO_COLOR: '1', CI: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await once(child, 'close');
  return { stdout, stderr };
}

/** Output lines of the Node example: {"file", "top"}. */
async function nodeExample(args: string[]): Promise<Row[]> {
  const child = spawn(process.execPath, [join(REPO, 'examples/node/classify.mjs'), ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [code] = (await once(child, 'close')) as [number];
  expect(code).toBe(0);
  return jsonl(out);
}

describe('the serving examples', () => {
  const images = () => [...plainPngs(), 'data/test/cat/t5.png', 'data/test/dog/t5.png'];

  test('preprocessing: the examples turn pixels into model input exactly as decode does (every resize method, RGB and L)', async () => {
    const tf = await import('@tensorflow/tfjs');
    await tf.setBackend('cpu');
    const { bundleInput } = (await import(pathToFileURL(join(REPO, 'examples/bundle-input.mjs')).href)) as {
      bundleInput: (
        t: typeof tf,
        bundle: Pick<ModelBundle, 'input' | 'normalization'>,
        rgb: import('@tensorflow/tfjs').Tensor3D,
      ) => import('@tensorflow/tfjs').Tensor;
    };
    const { convertImage } = await import('../lib/images/convert.js');
    for (const [sh, sw, th, tw] of [
      [20, 24, 16, 16],
      [7, 9, 16, 12],
      [33, 17, 5, 6],
    ] as const) {
      const src = Uint8Array.from({ length: sh * sw * 3 }, (_, i) => (i * 7919 + (i >> 3) * 31) % 256);
      for (const method of ['bilinear', 'nearest', 'area'] as const) {
        for (const c of [3, 1] as const) {
          const expected = new Uint8Array(th * tw * c);
          convertImage({ width: sw, height: sh, channels: 3, data: src }, { height: th, width: tw, channels: c }, method, expected, 0);
          const bundle = {
            input: {
              size: [th, tw, c] as [number, number, number],
              layout: 'NHWC' as const,
              channel_order: c === 3 ? ('RGB' as const) : ('L' as const),
              resize: method,
            },
            normalization: { method: 'scale' as const, formula: '', scale: 1, mean: new Array<number>(c).fill(0), std: new Array<number>(c).fill(1) },
          };
          const x = bundleInput(tf, bundle, tf.tensor3d(Int32Array.from(src), [sh, sw, 3]));
          expect({ method, c, size: [th, tw], pixels: Array.from(x.dataSync()) }).toEqual({ method, c, size: [th, tw], pixels: Array.from(expected) });
          x.dispose();
        }
      }
    }
  });

  test('Node (stock tfjs, no tfjs-node): the same classes and probabilities as predict', async () => {
    const rows = await nodeExample(['models/current', ...images()]);
    const byFile = new Map(folderRows.map((x) => [x.file, x.top]));
    expect(rows.map((r) => r.file)).toEqual(images());
    for (const r of rows) expectSameTop(r.file, r.top, byFile.get(r.file));
  });

  const maybe = browserAvailable('predict (serving page)') ? test : test.skip;
  maybe('browser: the page with stock tfjs (served locally, no CDN) predicts what predict and evaluate predict', async () => {
    const server = spawn(process.execPath, [join(REPO, 'examples/browser/serve.mjs'), '--model', 'models/current', '--port', '0'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const url = await serverUrl(server);
      const rows = await pageClassifies(url, images());
      const byFile = new Map(folderRows.map((x) => [x.file, x.top]));
      expect(rows).toHaveLength(images().length);
      rows.forEach((top, i) => expectSameTop(images()[i]!, top, byFile.get(images()[i]!)));
    } finally {
      server.kill('SIGTERM');
      await once(server, 'close');
    }
  });
});

async function serverUrl(server: ChildProcess): Promise<string> {
  let text = '';
  for await (const chunk of server.stdout!) {
    text += String(chunk);
    const m = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(text);
    if (m) return m[1]!;
  }
  throw new Error(`serve.mjs printed no URL: ${text}`);
}

interface PageElement {
  dataset: Record<string, string | undefined>;
  rows: ArrayLike<PageElement>;
}

/** Opens the example page in headless Chromium (offline: any request off the server fails the test), picks `files`, returns each row's top classes. */
async function pageClassifies(url: string, files: string[]): Promise<{ class: string; probability: number }[][]> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: chromiumPath()!,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(url) && !/^(blob|data):/.test(r.url())) problems.push(`request off the server: ${r.url()}`);
    });
    await page.goto(`${url}?model=model/&backend=cpu`);
    await page.waitForSelector('#status[data-ready], #status[data-error]');
    expect(await page.getAttribute('#status', 'data-error')).toBeNull();
    await page.setInputFiles(
      '#files',
      files.map((f) => join(dir, f)),
    );
    await page.waitForSelector('#status[data-done]');
    const tops = await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { getElementById(id: string): PageElement } }).document;
      return Array.from(doc.getElementById('results').rows, (row) => row.dataset.top ?? '[]');
    });
    expect(problems).toEqual([]);
    return tops.map((t) => JSON.parse(t) as { class: string; probability: number }[]);
  } finally {
    await browser.close();
  }
}
