// `pipeline schedule` through the built CLI with shell stages: a seconds-level schedule fires and
// records each tick, a tick during a long stage is skipped (never overlapped), a tick while another
// process holds the store is skipped, SIGTERM stops the scheduler with exit 0, and on_failure /
// on_success reach a local webhook server and a shell command.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { watch } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace, type CliResult } from './helpers/cli.js';
import type { RunRecord } from '../engine/store/runs.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function ws(yaml: string): Promise<string> {
  const d = await workspace(yaml, 'schedule-');
  dirs.push(d);
  return d;
}

const records = async (cwd: string): Promise<RunRecord[]> =>
  (JSON.parse((await runCli(['runs', '--json', '--limit', '0'], { cwd })).stdout) as RunRecord[]).reverse();

/**
 * Starts `pipeline schedule` and calls `step(output, child)` on every chunk of output until it
 * returns true (then SIGTERMs the scheduler); resolves with the scheduler's result.
 */
function schedule(cwd: string, step: (output: string) => boolean | Promise<boolean>, args: string[] = []): Promise<CliResult> {
  let output = '';
  let done = false;
  return runCli(['schedule', ...args], {
    cwd,
    onOutput: (chunk, child: ChildProcess) => {
      output += chunk;
      if (done) return;
      void Promise.resolve(step(output)).then((stop) => {
        if (stop && !done) {
          done = true;
          child.kill('SIGTERM');
        }
      });
    },
  });
}

const count = (text: string, re: RegExp) => (text.match(new RegExp(re.source, 'gm')) ?? []).length;

describe('pipeline schedule', () => {
  test('a seconds-level schedule fires twice and records both ticks; SIGTERM exits 0', async () => {
    const cwd = await ws(`stages:\n  stamp:\n    cmd: date +%s%N > stamp.txt\n    outs: [stamp.txt]\nschedule:\n  often:\n    cron: "* * * * * *"\n`);
    const result = await schedule(cwd, (o) => count(o, /^tick often: /) >= 2);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^schedule often: '\* \* \* \* \* \*'; next \S+Z, \S+Z, \S+Z$/m);
    expect(result.stdout).toMatch(/^tick often: ran \(run \S+\)$/m);
    expect(result.stdout).toMatch(/^tick often: nothing-changed \(run \S+\)$/m);
    expect(result.stdout).toMatch(/^scheduler stopped$/m);
    const ticks = (await records(cwd)).filter((r) => r.trigger?.entry === 'often' && r.outcome !== 'skipped');
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    expect(ticks[0]).toMatchObject({ outcome: 'ok', trigger: { type: 'schedule', result: 'ran' }, stages: [{ stage: 'stamp', outcome: 'ran' }] });
    // Nothing changed for the second tick: no stage ran.
    expect(ticks[1]).toMatchObject({ outcome: 'ok', trigger: { result: 'nothing-changed' }, stages: [{ stage: 'stamp', outcome: 'cached' }] });
  });

  test('a tick while a long stage runs is skipped and recorded, never overlapped', async () => {
    const cwd = await ws(
      `stages:\n  slow:\n    cmd: while [ ! -e release ]; do sleep 0.02; done; echo done > out.txt\n    outs: [out.txt]\nschedule:\n  often:\n    cron: "* * * * * *"\n`,
    );
    let released = false;
    const result = await schedule(cwd, async (o) => {
      if (!released && count(o, /^tick often at .*: skipped: run \S+ of 'often' .* is still going$/) >= 2) {
        released = true;
        await writeFile(join(cwd, 'release'), '');
      }
      return /^tick often: ran /m.test(o);
    });
    expect(result.code).toBe(0);
    const all = await records(cwd);
    const ran = all.filter((r) => r.outcome !== 'skipped');
    const skipped = all.filter((r) => r.outcome === 'skipped');
    expect(ran.length).toBeGreaterThanOrEqual(1);
    expect(ran[0]!.trigger?.result).toBe('ran');
    expect(skipped.length).toBeGreaterThanOrEqual(2);
    expect(skipped[0]!.trigger).toMatchObject({ entry: 'often', result: 'skipped', note: expect.stringContaining(ran[0]!.id) });
    // Runs never overlap: each starts after the previous one finished.
    for (let i = 1; i < ran.length; i++) expect(Date.parse(ran[i]!.startedAt)).toBeGreaterThanOrEqual(Date.parse(ran[i - 1]!.finishedAt!));
    expect(count(await readFile(join(cwd, 'out.txt'), 'utf8'), /^done$/)).toBe(1);
  });

  test('--once while another process holds the store: the tick is skipped and recorded, exit 0', async () => {
    const cwd = await ws(
      `stages:\n  slow:\n    cmd: echo started > started; while [ ! -e release ]; do sleep 0.02; done; echo done > out.txt\n    outs: [out.txt]\nschedule:\n  nightly:\n    cron: "0 3 * * *"\n`,
    );
    // The holder has the lock once its stage has started (it writes `started`).
    const started = new Promise<void>((resolve) => {
      const watcher = watch(cwd, (_, name) => {
        if (name === 'started') {
          watcher.close();
          resolve();
        }
      });
    });
    const holder = runCli(['run'], { cwd });
    await started;
    const tick = await runCli(['schedule', '--once'], { cwd });
    await writeFile(join(cwd, 'release'), '');
    expect((await holder).code).toBe(0);
    expect(tick.code).toBe(0);
    expect(tick.stderr).toMatch(/^tick nightly at \S+: skipped: the store .* is locked by pid \d+ \(pipeline run\)/m);
    const skipped = (await records(cwd)).filter((r) => r.outcome === 'skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.trigger).toMatchObject({ entry: 'nightly', result: 'skipped' });
  });
});

describe('catch-up', () => {
  test('a scheduler stopped over two ticks replays the most recent one once at start (catchup: true)', async () => {
    const cwd = await ws(
      `stages:\n  stamp:\n    cmd: date +%s%N > stamp.txt\n    outs: [stamp.txt]\nschedule:\n  nightly:\n    cron: "0 3 * * *"\n    timezone: UTC\n    catchup: true\n`,
    );
    // The previous scheduler's last tick: two 03:00 ticks before the most recent one.
    const now = new Date();
    const due = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), 3));
    if (due > now) due.setUTCDate(due.getUTCDate() - 1);
    const lastFired = new Date(due.getTime() - 2 * 86_400_000 + 7);
    expect((await runCli(['run'], { cwd })).code).toBe(0);
    const [first] = await records(cwd);
    await writeFile(
      join(cwd, 'artifacts', 'runs', `${first!.id}.json`),
      JSON.stringify({ ...first, trigger: { type: 'schedule', entry: 'nightly', firedAt: lastFired.toISOString(), result: 'ran' } }),
    );
    await writeFile(join(cwd, 'pipeline.yaml'), (await readFile(join(cwd, 'pipeline.yaml'), 'utf8')).replace('date +%s%N', 'date +%s%N; echo again'));
    const result = await schedule(cwd, (o) => /^tick nightly: /m.test(o));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`catch-up nightly: 2 ticks missed since ${lastFired.toISOString()}; running the one due at ${due.toISOString()} now`);
    const ticks = (await records(cwd)).filter((r) => r.id !== first!.id);
    expect(ticks).toHaveLength(1);
    expect(ticks[0]).toMatchObject({ outcome: 'ok', trigger: { entry: 'nightly', firedAt: due.toISOString(), result: 'ran', catchup: { missed: 2 } } });
  });

  test('no catch-up without catchup: true, nor for an entry that never ticked', async () => {
    const cwd = await ws(
      `stages:\n  stamp:\n    cmd: date +%s%N > stamp.txt\n    outs: [stamp.txt]\nschedule:\n  often:\n    cron: "* * * * * *"\n    catchup: true\n`,
    );
    const result = await schedule(cwd, (o) => /^tick often: /m.test(o));
    expect(result.code).toBe(0);
    expect(result.stdout).not.toMatch(/catch-up/);
  });
});

describe('notifications', () => {
  let server: Server;
  let url: string;
  const received: { path: string; body: unknown }[] = [];
  let arrived: () => void = () => {};

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        received.push({ path: req.url ?? '', body: JSON.parse(body) });
        res.writeHead(204).end();
        arrived();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.close();
    await once(server, 'close');
  });

  test('a failing scheduled run calls on_failure: the webhook receives the run summary as JSON', async () => {
    const cwd = await ws(
      `stages:\n  ok:\n    cmd: echo ok > ok.txt\n    outs: [ok.txt]\n  broken:\n    cmd: echo oops >&2; exit 3\n    needs: [ok]\nschedule:\n  nightly:\n    cron: "0 3 * * *"\n    on_failure:\n      - webhook: ${url}/alert\n      - command: echo "$PIPELINE_EVENT $PIPELINE_RESULT $PIPELINE_RUN_ID" > failure.txt\n    on_success: {webhook: ${url}/fine}\n`,
    );
    const result = await runCli(['schedule', '--once'], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^tick nightly: failed \(run \S+\)/m);
    expect(received.map((r) => r.path)).toEqual(['/alert']);
    const [record] = await records(cwd);
    expect(received[0]!.body).toMatchObject({
      event: 'failure',
      schedule: 'nightly',
      runId: record!.id,
      result: 'failed',
      stages: [
        { stage: 'ok', outcome: 'ran' },
        { stage: 'broken', outcome: 'failed', error: expect.stringMatching(/broken.*3/) },
      ],
      summary: expect.stringMatching(/^nightly: failed; 1 ran, 1 failed; /),
    });
    expect(await readFile(join(cwd, 'failure.txt'), 'utf8')).toBe(`failure failed ${record!.id}\n`);
    expect(record!.notifications).toEqual([
      { event: 'failure', target: `${url}/alert`, ok: true, attempts: [{ at: expect.any(String), ok: true }] },
      { event: 'failure', target: expect.stringContaining('failure.txt'), ok: true },
    ]);
    expect(received[0]!.body).toMatchObject({ reason: expect.stringMatching(/broken.*3/) });
  });

  test('a scheduled run whose stage hangs past its timeout: on_failure gets the reason (the stage timed out)', async () => {
    received.length = 0;
    const cwd = await ws(
      `stages:\n  ok:\n    cmd: echo ok > ok.txt\n    outs: [ok.txt]\n  train:\n    cmd: sleep 300\n    timeout: 1s\n    needs: [ok]\nschedule:\n  nightly:\n    cron: "0 3 * * *"\n    on_failure: {webhook: ${url}/timeout}\n    on_success: {webhook: ${url}/fine}\n`,
    );
    const result = await runCli(['schedule', '--once'], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^tick nightly: failed \(run \S+\): stage train timed out after 1s$/m);
    expect(received.map((r) => r.path)).toEqual(['/timeout']);
    const [record] = await records(cwd);
    expect(received[0]!.body).toMatchObject({
      event: 'failure',
      schedule: 'nightly',
      runId: record!.id,
      result: 'failed',
      reason: 'stage train timed out after 1s',
      error: 'stage train timed out after 1s',
      summary: 'nightly: failed; 1 ran, 1 failed; stage train timed out after 1s',
      stages: [
        { stage: 'ok', outcome: 'ran' },
        { stage: 'train', outcome: 'failed', error: 'stage train timed out after 1s' },
      ],
    });
    expect(record!.notifications).toEqual([{ event: 'failure', target: `${url}/timeout`, ok: true, attempts: [{ at: expect.any(String), ok: true }] }]);
  });

  test('a tick that cannot start (pipeline.yaml broke after the scheduler started) is recorded and reported', async () => {
    received.length = 0;
    const good = `stages:\n  ok:\n    cmd: echo ok > ok.txt\n    outs: [ok.txt]\nschedule:\n  often:\n    cron: "* * * * * *"\n    on_failure: {webhook: ${url}/broken}\n`;
    const cwd = await ws(good);
    let broke = false;
    const result = await schedule(cwd, async (o) => {
      if (!broke && /^tick often: ran /m.test(o)) {
        broke = true;
        await writeFile(join(cwd, 'pipeline.yaml'), good.replace('cmd: echo ok > ok.txt', 'cmd: echo ok > ok.txt\n    cmdd: typo'));
      }
      return /^tick often: failed /m.test(o);
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^tick often: failed \(run \S+\): pipeline\.yaml:4:5: stage 'ok': unknown key 'cmdd'/m);
    expect(received[0]).toMatchObject({
      path: '/broken',
      body: { event: 'failure', result: 'failed', stages: [], error: expect.stringMatching(/unknown key 'cmdd'/) },
    });
    await writeFile(join(cwd, 'pipeline.yaml'), good); // `pipeline runs` reads pipeline.yaml too
    const failed = (await records(cwd)).find((r) => r.trigger?.result === 'failed')!;
    expect(failed).toMatchObject({ outcome: 'failed', stages: [], error: expect.stringMatching(/^pipeline\.yaml:4:5: /) });
  });

  test('a successful run calls on_success; an unreachable webhook is recorded, not fatal', async () => {
    received.length = 0;
    const cwd = await ws(
      `stages:\n  ok:\n    cmd: echo ok > ok.txt\n    outs: [ok.txt]\nschedule:\n  nightly:\n    cron: "0 3 * * *"\n    on_success:\n      - webhook: ${url}/fine\n      - webhook: http://127.0.0.1:1/nobody\n`,
    );
    const result = await runCli(['schedule', '--once'], { cwd });
    expect(result.code).toBe(0);
    expect(received).toEqual([{ path: '/fine', body: expect.objectContaining({ event: 'success', result: 'ran' }) }]);
    expect(result.stderr).toMatch(/notification http:\/\/127\.0\.0\.1:1\/nobody failed/);
    const [record] = await records(cwd);
    expect(record!.notifications?.map((n) => n.ok)).toEqual([true, false]);
  });
});

describe('alerts', () => {
  let server: Server;
  let url: string;
  const received: { status: number; body: Record<string, unknown> }[] = [];
  let accepted: () => void = () => {};
  const acceptedOnce = new Promise<void>((resolve) => (accepted = resolve));

  beforeAll(async () => {
    // Fails twice (503), then accepts: the delivery is retried with backoff.
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        const status = received.length < 2 ? 503 : 204;
        received.push({ status, body: JSON.parse(body) as Record<string, unknown> });
        res.writeHead(status).end();
        if (status === 204) accepted();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.close();
    await once(server, 'close');
  });

  test('a tick skipped behind a run going past skip_alert_after alerts on_failure once; the webhook fails twice, then accepts; each attempt is recorded', async () => {
    const cwd = await ws(
      `stages:\n  hung:\n    cmd: while [ ! -e release ]; do sleep 0.02; done; echo done > out.txt\n    outs: [out.txt]\nschedule:\n  often:\n    cron: "* * * * * *"\n    skip_alert_after: 1s\n    on_failure: {webhook: ${url}/hung}\n`,
    );
    let released = false;
    const result = await schedule(cwd, async (o) => {
      if (!released && received.some((r) => r.status === 204)) {
        released = true;
        await acceptedOnce;
        await writeFile(join(cwd, 'release'), '');
      }
      return released && /^tick often: ran /m.test(o);
    });
    expect(result.code).toBe(0);
    // One alert (three attempts), however many ticks were skipped behind the same run.
    expect(received.map((r) => r.status)).toEqual([503, 503, 204]);
    const ran = (await records(cwd)).find((r) => r.trigger?.result === 'ran')!;
    expect(received[2]!.body).toMatchObject({
      event: 'failure',
      schedule: 'often',
      result: 'skipped',
      reason: expect.stringMatching(new RegExp(`^tick of 'often' skipped: run ${ran.id} of 'often' has been running for \\S+ \\(skip_alert_after 1\\.0s\\)$`)),
    });
    const alerted = (await records(cwd)).filter((r) => r.notifications?.length);
    expect(alerted).toHaveLength(1);
    expect(alerted[0]).toMatchObject({ outcome: 'skipped', trigger: { entry: 'often', result: 'skipped' } });
    expect(alerted[0]!.notifications).toEqual([
      {
        event: 'failure',
        target: `${url}/hung`,
        ok: true,
        attempts: [
          { at: expect.any(String), ok: false, error: 'webhook answered HTTP 503' },
          { at: expect.any(String), ok: false, error: 'webhook answered HTTP 503' },
          { at: expect.any(String), ok: true },
        ],
      },
    ]);
    expect(result.stderr).toMatch(/^tick often at \S+: skipped: run \S+ of 'often' .* is still going$/m);
  });
});
