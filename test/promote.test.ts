// Champion/challenger promotion through the built CLI, with cmd stages standing in for train and
// evaluate (their metric is a param, so each outcome is chosen, not hoped for): a better model is
// promoted and a worse one is not, rollback restores the previous champion byte for byte, a reader
// of models/current never sees a partial or mixed model while promotions happen, gc keeps promoted
// models, and `pipeline promote RUN` / `pipeline metrics --diff` work on past runs.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile, readlink, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace } from './helpers/cli.js';
import type { RunRecord } from '../engine/store/runs.js';
import type { ModelInfo } from '../lib/champion.js';

const PIPELINE = `params:
  acc: 0.5
stages:
  train:
    cmd: mkdir -p model && printf '{"format":"layers-model","acc":%s}' "\${params.acc}" > model/model.json && head -c 65536 /dev/urandom > model/weights.bin
    outs: [model]
  evaluate:
    cmd: printf '{"test_accuracy":%s,"test_loss":%s}' "\${params.acc}" "\${params.acc}" > metrics.json
    deps: [model]
    outs: [metrics.json]
promote:
  evaluate: evaluate
  train: train
  min_delta: 0.01
`;

let dir: string;
const run = (...args: string[]) => runCli(args, { cwd: dir });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const current = () => join(dir, 'models', 'current');
const readInfo = async (): Promise<ModelInfo> => JSON.parse(await readFile(join(current(), 'model-info.json'), 'utf8')) as ModelInfo;
const runs = async (): Promise<RunRecord[]> => JSON.parse((await run('runs', '--json', '--limit', '0')).stdout) as RunRecord[];

async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(current())).sort()) out[name] = sha(await readFile(join(current(), name)));
  return out;
}

beforeAll(async () => {
  dir = await workspace(PIPELINE, 'promote-');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('promotion after a run', () => {
  let first: Record<string, string>;

  test('the first model is promoted; a better one replaces it; a worse one or one within min_delta does not', async () => {
    const a = await run('run');
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^promote: promoted the new model to models\/current \(.+\): no current model yet \[test_accuracy: new 0\.5, current none\]$/m);
    first = await snapshot();
    const infoA = await readInfo();
    expect(infoA).toMatchObject({
      how: 'first',
      stage: 'train',
      previous: null,
      evaluate: { stage: 'evaluate', metric: 'test_accuracy', mode: 'max', value: 0.5 },
    });
    expect(infoA.files['weights.bin']!.sha256).toBe(first['weights.bin']);
    expect(infoA.dataDigest).toBeNull(); // the evaluation reads nothing but the model

    const b = await run('run', '--set', 'params.acc=0.7');
    expect(b.code).toBe(0);
    expect(b.stdout).toMatch(/^promote: promoted .*test_accuracy 0\.7 vs 0\.5 \(higher is better, change \+0\.2, min_delta 0\.01\)/m);
    const infoB = await readInfo();
    expect(infoB).toMatchObject({ how: 'metric', previous: infoA.id, evaluate: { value: 0.7 } });

    const worse = await run('run', '--set', 'params.acc=0.6');
    expect(worse.code).toBe(0);
    expect(worse.stdout).toMatch(
      /^promote: kept the current model \(.+\): test_accuracy 0\.6 vs 0\.7 .*change -0\.1.*\[test_accuracy: new 0\.6, current 0\.7\]$/m,
    );
    const close = await run('run', '--set', 'params.acc=0.705');
    expect(close.stdout).toMatch(/^promote: kept the current model .*change \+0\.005, min_delta 0\.01/m);
    expect((await readInfo()).id).toBe(infoB.id);

    // Nothing changed since: the model that lost is not judged (or promoted) again.
    const again = await run('run', '--set', 'params.acc=0.705');
    expect(again.stdout).toMatch(/^cached\s+train\s/m);
    expect(again.stdout).toMatch(/^promote: kept the current model .*: no new model \(train's model was judged in run /m);

    const records = await runs();
    expect(records.slice(0, 5).map((r) => r.promotion?.decision)).toEqual(['kept', 'kept', 'kept', 'promoted', 'promoted']);
    expect(records[2]!.promotion).toMatchObject({ metric: 'test_accuracy', candidate: 0.6, champion: 0.7, current: infoB.id });
  });

  test('rollback restores the previous champion byte for byte; a second rollback has nowhere to go', async () => {
    const before = (await readInfo()).id;
    const rolled = await run('rollback');
    expect(rolled.code).toBe(0);
    expect(rolled.stdout).toMatch(new RegExp(`^rolled back models/current: ${before} -> .+ \\(run .+, test_accuracy 0\\.5\\)$`, 'm'));
    expect(await snapshot()).toEqual(first);
    const none = await run('rollback');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/nothing to roll back to: .* was the first promoted model/);
    const events = (await readFile(join(dir, 'models', 'events.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string });
    expect(events.map((e) => e.event)).toEqual(['promote', 'promote', 'rollback']);
  });

  test("pipeline promote RUN makes a past run's model current whatever its metric", async () => {
    const records = await runs();
    const worse = records.find((r) => r.promotion?.candidate === 0.6)!;
    const promoted = await run('promote', worse.id.slice(0, 20));
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toMatch(new RegExp(`^promoted train of run ${worse.id} to models/current \\(.+, test_accuracy 0\\.6\\); previous: `, 'm'));
    expect(await readInfo()).toMatchObject({ how: 'manual', runId: worse.id, evaluate: { value: 0.6 } });
    const unknown = await run('promote', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no run 'nope'/);
  });

  test('gc keeps the results of promoted models, so they can be promoted again', async () => {
    const gc = await run('gc', '--keep-runs', '0');
    expect(gc.code).toBe(0);
    const history = (await readdir(join(dir, 'models', 'history'))).filter((n) => !n.startsWith('.'));
    for (const id of history) {
      const info = JSON.parse(await readFile(join(dir, 'models', 'history', id, 'model-info.json'), 'utf8')) as ModelInfo;
      await expect(readFile(join(dir, 'artifacts', 'manifests', `${info.trainKey}.json`), 'utf8')).resolves.toContain(info.trainKey);
    }
    const firstRun = (await runs()).at(-1)!;
    const back = await run('promote', firstRun.id);
    expect(back.code).toBe(0);
    expect(await snapshot()).toMatchObject({ 'weights.bin': first['weights.bin'], 'model.json': first['model.json'] });
    expect((await run('verify')).code).toBe(0);
  });

  test('metrics shows the latest run with metrics, and --diff two runs side by side', async () => {
    // A run without the evaluate stage judges nothing and has no metrics to show.
    const partial = await run('run', 'train', '--set', 'params.acc=0.705');
    expect(partial.stdout).toMatch(/^promote: nothing to judge: evaluate was not part of this run$/m);
    const latest = await run('metrics');
    expect(latest.code).toBe(0);
    expect(latest.stdout).toMatch(/^evaluate\s+test_accuracy\s+0\.705$/m);
    const records = await runs();
    const [b, a] = [records.find((r) => r.promotion?.candidate === 0.7)!, records.find((r) => r.promotion?.candidate === 0.5)!];
    const diff = await run('metrics', '--diff', a.id, b.id);
    expect(diff.stdout).toMatch(new RegExp(`^stage\\s+metric\\s+${a.id}\\s+${b.id}\\s+change$`, 'm'));
    expect(diff.stdout).toMatch(/^evaluate\s+test_accuracy\s+0\.5\s+0\.7\s+\+0\.2$/m);
    const json = JSON.parse((await run('metrics', '--diff', a.id, b.id, '--json')).stdout) as { metrics: { metric: string; change: number }[] };
    expect(json.metrics.find((m) => m.metric === 'test_loss')!.change).toBeCloseTo(0.2);
  });
});

describe('a reader of models/current during promotions', () => {
  test('always gets a complete model whose files match its model-info.json', async () => {
    // The reader resolves the link once per load (as docs/operations.md tells serving code to) and checks
    // every file against the digests in model-info.json; it also reads model.json through the
    // link itself, which must always parse.
    const stopFile = join(dir, 'stop-reader');
    const script = `
      const fs = require('fs'), path = require('path'), crypto = require('crypto');
      const cur = path.join(process.argv[1], 'models', 'current');
      let loads = 0, bad = [];
      const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
      while (!fs.existsSync(process.argv[2])) {
        try {
          JSON.parse(fs.readFileSync(path.join(cur, 'model.json'), 'utf8'));
          const dir = fs.realpathSync(cur);
          const info = JSON.parse(fs.readFileSync(path.join(dir, 'model-info.json'), 'utf8'));
          for (const [name, f] of Object.entries(info.files)) {
            const got = sha(fs.readFileSync(path.join(dir, name)));
            if (got !== f.sha256) bad.push(name + ' of ' + info.id);
          }
        } catch (e) { bad.push(String(e)); }
        if (++loads === 1) process.stdout.write('ready\\n');
      }
      process.stdout.write(JSON.stringify({ loads, bad }) + '\\n');
    `;
    const reader = spawn(process.execPath, ['-e', script, dir, stopFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    reader.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = once(reader, 'close');
    while (!output.includes('ready')) await once(reader.stdout, 'data');

    const ids = new Set<string>();
    for (const acc of ['0.8', '0.85', '0.9', '0.95']) {
      const r = await run('run', '--set', `params.acc=${acc}`);
      expect(r.stdout).toMatch(/^promote: promoted /m);
      ids.add(await readlink(current()));
    }
    await writeFile(stopFile, '');
    await exited;
    const result = JSON.parse(output.split('\n').find((l) => l.startsWith('{'))!) as { loads: number; bad: string[] };
    expect(result.bad).toEqual([]);
    expect(result.loads).toBeGreaterThan(0);
    expect(ids.size).toBe(4);
  });
});
