// `pipeline ui` in a real headless Chromium (Debian's, via playwright-core) over a store made by
// real runs of the built CLI (cmd stages standing in for train and evaluate, so each metric is
// chosen, beside a real `uses: train` stage on a tiny generated image folder, so progress bars and
// history.json curves are real): the runs table, a run's DAG with states, a run followed live
// (stage states, epoch lines and the real train stage's epoch progress arrive without a reload:
// the cmd train waits on gate files the test creates), a hanging run cancelled from its page
// (the page and its record say cancelled), a stage's log, two runs compared (their
// real learning curves overlaid), promote and rollback from the page (checked on disk), no
// request leaves 127.0.0.1, no console errors; and the server's guards: the token on a
// non-loopback bind (the event stream too), CSRF on actions, no file outside the store.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { request } from 'node:http';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import type { RunRecord } from '../engine/store/runs.js';
import type { ModelInfo } from '../lib/champion.js';
import { startUiServer, type UiServer } from '../ui/server.js';
import { openSession } from '../cli/session.js';
import { browserAvailable, chromiumPath, TEST_ARTIFACTS } from './helpers/browser.js';
import { runCli, workspace } from './helpers/cli.js';
import { syntheticImage } from './helpers/dataset.js';

const TRAIN_SH = `#!/bin/sh
# A stand-in for training: three epoch lines (each waits for gate/N when gated), then a model.
acc=$1
gated=$2
for e in 1 2 3; do
  if [ "$gated" = 1 ]; then while [ ! -e gate/$e ]; do sleep 0.05; done; fi
  echo "Epoch $e/3 - 0s - loss: 1.$e - acc: 0.$e"
done
mkdir -p model && printf '{"format":"layers-model","acc":%s}' "$acc" > model/model.json && head -c 4096 /dev/urandom > model/weights.bin
`;

const PIPELINE = `params:
  acc: 0.5
  gated: 0
  seed: 1
  hang: 0
stages:
  hang:
    # Runs until cancelled when hang is 1.
    cmd: 'if [ \${params.hang} = 1 ]; then while :; do sleep 0.05; done; fi; echo done > hang.txt'
    outs: [hang.txt]
  prepare:
    cmd: echo prepared > data.txt
    outs: [data.txt]
  train:
    cmd: sh train.sh \${params.acc} \${params.gated}
    deps: [data.txt, train.sh]
    outs: [model]
  evaluate:
    cmd: printf '{"test_accuracy":%s,"test_loss":0.9,"per_class":[{"class":"a","precision":%s,"recall":%s,"f1":%s,"support":5}]}' "\${params.acc}" "\${params.acc}" "\${params.acc}" "\${params.acc}" > metrics.json
    deps: [model]
    outs: [metrics.json]
  report:
    cmd: printf '<!doctype html><title>report</title><h1>Report of test_accuracy %s</h1>' "\${params.acc}" > index.html
    deps: [metrics.json]
    outs: [index.html]
  # A real (tiny) training, so the live progress bars and the compared curves are the real ones.
  fetch:
    uses: fetch
    with: {url: images}
  decode:
    uses: decode
    needs: [fetch]
    with: {height: 8, width: 8}
  normalize:
    uses: normalize
    needs: [decode]
    with: {validation_split: 0.25}
  fit:
    uses: train
    needs: [normalize]
    with:
      backend: wasm
      workers: 1
      epochs: 3
      batch_size: 8
      seed: \${params.seed}
      model: [{type: flatten}, {type: dense, units: 2, activation: softmax}]
promote:
  evaluate: evaluate
  train: train
  min_delta: 0.01
schedule:
  nightly:
    cron: "0 3 * * *"
`;

const run = browserAvailable('ui-browser') ? test : test.skip;
const TOKEN = 'ui-test-token-0123456789';

let dir: string;
let ui: UiServer;
let browser: Browser;
let page: Page;
const consoleErrors: string[] = [];
const foreignRequests: string[] = [];
let runA: string;
let runB: string;

const cli = (...args: string[]) => runCli(args, { cwd: dir });
const currentModel = async (): Promise<ModelInfo> => JSON.parse(await readFile(join(dir, 'models', 'current', 'model-info.json'), 'utf8')) as ModelInfo;
const records = async (): Promise<RunRecord[]> => JSON.parse((await cli('runs', '--json', '--limit', '0')).stdout) as RunRecord[];
const shot = async (name: string) => {
  await mkdir(TEST_ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(TEST_ARTIFACTS, name), fullPage: true });
};

/** The id of the run that started besides `known`: its record appears as it starts. */
async function startedRun(known: string[]): Promise<string> {
  for (;;) {
    const names = (await readdir(join(dir, 'artifacts', 'runs'))).filter((n) => n.endsWith('.json'));
    const id = names.map((n) => n.slice(0, -5)).find((n) => !known.includes(n));
    if (id) return id;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** images/{train,test}/{cat,dog}/: 8×8 class-coloured discs (12 training and 3 test images a class). */
async function writeImages(root: string): Promise<void> {
  for (const [c, name] of ['cat', 'dog'].entries())
    for (const [split, count] of [
      ['train', 12],
      ['test', 3],
    ] as const) {
      await mkdir(join(root, split, name), { recursive: true });
      for (let i = 0; i < count; i++) {
        const image = new PNG({ width: 8, height: 8 });
        image.data.set(syntheticImage(c, split === 'train' ? i : 1000 + i, 8));
        await writeFile(join(root, split, name, `${i}.png`), PNG.sync.write(image, { colorType: 2 }));
      }
    }
}

/** Raw GET (the path as given, no URL normalisation) → status and body. */
function rawGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
        // An event stream stays open: its first bytes are enough.
        if (res.headers['content-type']?.startsWith('text/event-stream')) res.destroy();
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = await workspace(PIPELINE, 'ui-');
  await writeFile(join(dir, 'train.sh'), TRAIN_SH);
  await writeImages(join(dir, 'images'));
  const a = await cli('run');
  expect(a.code).toBe(0);
  const b = await cli('run', '--set', 'params.acc=0.7', '--set', 'params.seed=2');
  expect(b.code).toBe(0);
  const done = await records();
  [runB, runA] = [done[0]!.id, done[1]!.id];
  ui = await startUiServer({ session: await openSession(join(dir, 'pipeline.yaml')), host: '127.0.0.1', port: 0 });
  if (!browserAvailable('ui-browser')) return;
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('no Chromium: install Debian chromium or set CHROMIUM_PATH (REQUIRE_BROWSER is set)');
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath,
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
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // Nothing may leave the server: every other request is recorded and refused.
  await page.route('**/*', async (route) => {
    const url = route.request().url();
    if (url.startsWith('http://127.0.0.1:')) return route.continue();
    foreignRequests.push(url);
    return route.abort();
  });
}, 600_000); // two real runs with a training, on a loaded machine

afterAll(async () => {
  await browser?.close();
  await ui?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('pipeline ui in a browser', () => {
  run('the runs table lists the runs with their outcome and headline metric', async () => {
    await page.goto(`${ui.url}#/runs`);
    await page.locator(`#runs-table tr[data-run="${runB}"]`).waitFor();
    expect(await page.locator('#runs-table tbody tr').count()).toBe(2);
    const rowA = await page.locator(`#runs-table tr[data-run="${runA}"]`).innerText();
    expect(rowA).toMatch(/command line/);
    expect(rowA).toMatch(/\bok\b/);
    expect(rowA).toMatch(/0\.5/);
    await page.locator('#runs-filter').fill(runB);
    expect(await page.locator('#runs-table tbody tr').count()).toBe(1);
    await shot('ui-runs.png');
  });

  run("a run's page shows the DAG with each stage's state, and a stage's log", async () => {
    await page.goto(`${ui.url}#/run/${runA}`);
    await page.locator('svg.dag g[data-stage="evaluate"]').waitFor();
    for (const stage of ['prepare', 'train', 'evaluate']) expect(await page.locator(`svg.dag g[data-stage="${stage}"]`).getAttribute('data-state')).toBe('ran');
    await page.locator('#curves svg[data-stage="train"][data-metric="loss"][data-points="3"]').waitFor();
    await page.locator('a[data-log="train.log"]').click();
    await page.locator('#log-text').getByText('Epoch 2/3').waitFor();
    await page.locator('#log-search').fill('Epoch 3');
    expect((await page.locator('#log-text').innerText()).trim()).toBe('Epoch 3/3 - 0s - loss: 1.3 - acc: 0.3');
    expect(await page.locator('#log-download').getAttribute('href')).toContain(`/api/runs/${runA}/logs/train.log?download=1`);
    // The run's HTML report opens inside the page.
    await page.frameLocator('#report-frame').getByText('Report of test_accuracy 0.5').waitFor();
    await shot('ui-run.png');
  });

  run('a run started while its page is open updates live: stage states and epochs, no reload', async () => {
    await mkdir(join(dir, 'gate'), { recursive: true });
    // Every text the real train stage's progress bar shows while the page is open, recorded as the
    // DOM changes (so how fast the tiny training runs does not matter); in this document (a hash
    // change keeps it) and in a new one.
    const recordProgress = `if (!window.__fitProgress) {
      const seen = (window.__fitProgress = []);
      new MutationObserver(() => {
        const text = document.querySelector('#progress .progress[data-stage="fit"]')?.textContent;
        if (text && seen.at(-1) !== text) seen.push(text);
      }).observe(document, { subtree: true, childList: true, characterData: true });
    }`;
    await page.addInitScript(recordProgress);
    await page.evaluate(recordProgress);
    const live = cli('run', '--set', 'params.acc=0.6', '--set', 'params.gated=1', '--set', 'params.seed=3');
    const id = await startedRun([runA, runB]);
    await page.goto(`${ui.url}#/run/${id}`);
    await page.evaluate('window.__notReloaded = true');
    await page.locator('svg.dag g[data-stage="train"][data-state="running"]').waitFor();
    expect(await page.locator('svg.dag g[data-stage="evaluate"]').getAttribute('data-state')).not.toBe('ran');
    for (const epoch of [1, 2]) {
      await writeFile(join(dir, 'gate', String(epoch)), '');
      await page.locator(`#curves svg[data-stage="train"][data-metric="loss"][data-points="${epoch}"]`).waitFor();
    }
    await shot('ui-run-live.png');
    await writeFile(join(dir, 'gate', '3'), '');
    await page.locator('svg.dag g[data-stage="evaluate"][data-state="ran"]').waitFor();
    await page.locator('#run-outcome', { hasText: 'ok' }).waitFor();
    expect(await page.evaluate('window.__notReloaded')).toBe(true);
    expect((await live).code).toBe(0);
    await page.locator('svg.dag g[data-stage="fit"][data-state="ran"]').waitFor();
    // The train stage's bar went through its epochs with the terminal's figures.
    const bar = (await page.evaluate('window.__fitProgress')) as string[];
    const epochs = new Set(bar.map((t) => /\[fit\] Epoch (\d)\/3/.exec(t)?.[1]).filter(Boolean));
    expect([...epochs].sort()).toEqual(['1', '2', '3']);
    expect(bar.some((t) => /\d+\/\d+ img\s+\d+ img\/s\s+ETA \d+s\s+loss: [\d.]+ - acc: [\d.]+/.test(t))).toBe(true);
    // Its epoch lines grew its curves too.
    await page.locator('#curves svg[data-stage="fit"][data-metric="loss"][data-points="3"]').waitFor();
  });

  run('a running run is cancelled from its page: the page and its record say cancelled', async () => {
    const known = (await records()).map((r) => r.id);
    const hanging = cli('run', '--set', 'params.hang=1');
    const id = await startedRun(known);
    await page.goto(`${ui.url}#/run/${id}`);
    await page.locator('svg.dag g[data-stage="hang"][data-state="running"]').waitFor();
    await page.locator('#cancel-run').click();
    await page.locator('#confirm-cancel').click(); // not confirmed: nothing happens
    expect(await page.locator('#run-outcome').innerText()).toBe('running');
    await page.locator('#cancel-run').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#run-outcome', { hasText: 'cancelled' }).waitFor();
    await page.locator('#stages-table tr[data-stage="hang"]', { hasText: 'aborted' }).waitFor();
    expect(await page.locator('#cancel-run').count()).toBe(0);
    await shot('ui-run-cancelled.png');
    expect((await hanging).code).not.toBe(0);
    expect((await records()).find((r) => r.id === id)?.outcome).toBe('cancelled');
    // An ended run cannot be cancelled.
    const { csrf } = (await (await fetch(`${ui.url}api/session`)).json()) as { csrf: string };
    const again = await fetch(`${ui.url}api/runs/${id}/cancel`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: '{}',
    });
    expect(again.status).toBe(400);
    expect(((await again.json()) as { error: string }).error).toMatch(/not running/);
  });

  run('two runs compared show the param and the metric that differ, and the curves', async () => {
    await page.goto(`${ui.url}#/runs`);
    await page.locator(`input[data-run="${runA}"]`).check();
    await page.locator(`input[data-run="${runB}"]`).check();
    await page.locator('#compare-selected').click();
    await page.locator('#compare-params tr[data-param="params.acc"]').waitFor();
    expect(await page.locator('#compare-params tr[data-param="params.acc"]').innerText()).toMatch(/0\.5\s+0\.7/);
    expect(await page.locator('#compare-metrics tr[data-metric="evaluate.test_accuracy"]').innerText()).toMatch(/0\.5\s+0\.7/);
    expect(await page.locator('#compare-deltas svg').count()).toBe(1);
    // The real train stage's history.json curves of both runs, overlaid: one legend entry a run.
    const curves = await page.locator('#compare-curves svg').innerHTML();
    for (const id of [runA, runB]) expect(curves).toContain(`${id} fit`);
    for (const metric of ['loss', 'acc', 'val_loss', 'val_acc']) expect(curves).toContain(`>${metric}<`);
    await shot('ui-compare.png');
  });

  run('promote and rollback from the page change models/current on disk', async () => {
    expect((await currentModel()).runId).toBe(runB);
    await page.goto(`${ui.url}#/models`);
    await page.locator('#promote-run').selectOption(runA);
    await page.locator('#promote').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#models-current', { hasText: runA }).waitFor();
    expect((await currentModel()).runId).toBe(runA);
    await shot('ui-models.png');
    await page.locator('#rollback').click();
    await page.locator('#confirm-cancel').click(); // cancelled: nothing changes
    expect((await currentModel()).runId).toBe(runA);
    await page.locator('#rollback').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#models-current', { hasText: runB }).waitFor();
    expect((await currentModel()).runId).toBe(runB);
  });

  run('the schedule page shows the entry with its next fire times', async () => {
    await page.goto(`${ui.url}#/schedule`);
    await page.locator('#schedule-table tr[data-entry="nightly"]').waitFor();
    expect(await page.locator('#schedule-table tr[data-entry="nightly"]').innerText()).toContain('0 3 * * *');
    await shot('ui-schedule.png');
  });

  run('no request left 127.0.0.1 and nothing logged an error', () => {
    expect(foreignRequests).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});

describe("the server's guards", () => {
  test('bound beyond loopback, every request needs the token, the event stream too', async () => {
    const open = await startUiServer({ session: await openSession(join(dir, 'pipeline.yaml')), host: '0.0.0.0', port: 0, token: TOKEN });
    try {
      const port = Number(new URL(open.url).port);
      expect((await rawGet(port, '/api/runs')).status).toBe(401);
      expect((await rawGet(port, '/api/runs', { authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await rawGet(port, '/?token=wrong')).status).toBe(401);
      expect((await rawGet(port, `/api/runs/${runA}/events`)).status).toBe(401);
      expect((await rawGet(port, '/', { cookie: 'pipeline_ui_token=wrong' })).status).toBe(401);
      expect((await rawGet(port, '/api/runs', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
      expect((await rawGet(port, `/api/runs/${runA}/events`, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
      const viaQuery = await rawGet(port, `/?token=${TOKEN}`);
      expect(viaQuery.status).toBe(303);
      if (browser) {
        // Opened with ?token=, the page works from its cookie (the event stream included).
        const p = await browser.newPage();
        try {
          await p.goto(`http://127.0.0.1:${port}/?token=${TOKEN}#/run/${runA}`);
          await p.locator('#curves svg[data-stage="train"][data-metric="loss"][data-points="3"]').waitFor();
          await p.screenshot({ path: join(TEST_ARTIFACTS, 'ui-token.png') });
        } finally {
          await p.close();
        }
      }
    } finally {
      await open.close();
    }
  });

  test('actions need the CSRF token; no path reaches outside the store', async () => {
    const port = Number(new URL(ui.url).port);
    const post = (path: string, headers: Record<string, string>) =>
      fetch(`${ui.url}${path.slice(1)}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
    expect((await post('/api/models/rollback', {})).status).toBe(403);
    expect((await post('/api/models/rollback', { 'x-csrf-token': 'wrong' })).status).toBe(403);
    const { csrf } = (await (await fetch(`${ui.url}api/session`)).json()) as { csrf: string };
    expect((await post('/api/models/rollback', { 'x-csrf-token': csrf, origin: 'http://evil.example' })).status).toBe(403);
    expect((await post(`/api/runs/${runA}/cancel`, {})).status).toBe(403);
    expect((await post(`/api/runs/${runA}/cancel`, { 'x-csrf-token': csrf, origin: 'http://evil.example' })).status).toBe(403);
    expect(await (await fetch(`${ui.url}api/runs`, { method: 'DELETE' })).status).toBe(405);
    const key = (await records()).find((r) => r.id === runA)!.stages.find((s) => s.stage === 'evaluate')!.key!;
    expect((await rawGet(port, `/api/files/${key}/metrics.json`)).body).toContain('test_accuracy');
    for (const path of [
      `/api/files/${key}/../../../../etc/passwd`,
      `/api/files/${key}/..%2f..%2f..%2f..%2fetc%2fpasswd`,
      `/api/files/..%2f..%2fpipeline.yaml/x`,
      `/api/runs/${runA}/logs/..%2f..%2f..%2fpipeline.yaml`,
      `/api/runs/..%2f..%2fstages/logs/train.log`,
      '/assets/..%2f..%2fpackage.json',
      '/assets/%2e%2e%2fserver.js',
      '/../../../etc/passwd',
    ]) {
      const res = await rawGet(port, path);
      expect([path, res.status]).toEqual([path, 404]);
      expect(res.body).not.toMatch(/root:|"name"|params:/);
    }
    // A foreign Host name (DNS rebinding) is refused on loopback.
    expect((await rawGet(port, '/api/runs', { host: 'evil.example' })).status).toBe(403);
  });

  test('`pipeline ui` refuses a non-loopback address without PIPELINE_UI_TOKEN, and serves the store', async () => {
    const refused = await runCli(['ui', '--host', '0.0.0.0', '--port', '0'], { cwd: dir, env: { PIPELINE_UI_TOKEN: '' } });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/PIPELINE_UI_TOKEN/);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    let body = '';
    const served = await runCli(['ui', '--port', '0'], {
      cwd: dir,
      onOutput: (chunk, child) => {
        const url = /at (http:\/\/\S+)/.exec(chunk)?.[1];
        if (url)
          void fetch(`${url}api/runs`)
            .then((r) => r.text())
            .then((t) => (body = t))
            .finally(() => child.kill('SIGTERM'));
      },
    });
    expect(served.code).toBe(0);
    expect(body).toContain(runA);
  });
});
