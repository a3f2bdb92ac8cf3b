// Stage output kept per run and attempt (engine/store/stage-logs.ts) and read back with
// `pipeline logs [RUN] STAGE`: a failed stage from a past run, a retried stage's attempts, and
// the bound on a log's size (head and tail kept).
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoundedLog, stageLogFile } from '../engine/store/stage-logs.js';
import type { RunRecord } from '../engine/store/runs.js';
import { runCli, workspace } from './helpers/cli.js';

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

async function ws(text: string): Promise<string> {
  const dir = await workspace(text, 'stage-logs-');
  made.push(dir);
  return dir;
}

async function records(dir: string): Promise<RunRecord[]> {
  const runs = join(dir, 'artifacts', 'runs');
  const files = (await readdir(runs)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(runs, f), 'utf8')) as RunRecord));
}

describe('pipeline logs', () => {
  test('the output of a stage that failed in a past run, by default from the latest run that has it', async () => {
    const dir = await ws(`stages:
  ok:
    cmd: echo fine > ok.txt
    outs: [ok.txt]
  bad:
    cmd: 'echo reading input; echo "no such column: label" >&2; exit 3'
    needs: [ok]
`);
    const failed = await runCli(['run'], { cwd: dir });
    expect(failed.code).toBe(1);
    // A later run without the stage: `logs bad` still finds the failed run's output.
    expect((await runCli(['run', 'ok'], { cwd: dir })).code).toBe(0);
    const [first, second] = await records(dir);
    expect(second!.stages.map((s) => s.stage)).toEqual(['ok']);

    const latest = await runCli(['logs', 'bad'], { cwd: dir });
    expect({ code: latest.code, stderr: latest.stderr }).toEqual({ code: 0, stderr: '' });
    expect(latest.stdout).toBe('reading input\nno such column: label\n');
    const named = await runCli(['logs', first!.id.slice(0, 18), 'bad'], { cwd: dir });
    expect(named.stdout).toBe(latest.stdout);

    const none = await runCli(['logs', second!.id, 'bad'], { cwd: dir });
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(`error: run ${second!.id} kept no output of stage bad (it is not one of its stages)\n`);
    const unknown = await runCli(['logs', 'nope'], { cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no run has kept output of stage nope');
  });

  test("a retried stage's attempts, each in its own file, printed in order", async () => {
    const dir = await ws(`stages:
  flaky:
    cmd: n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count; echo "try $n"; test $n -ge 2
    retries: 1
`);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    const [run] = await records(dir);
    const runsDir = join(dir, 'artifacts', 'runs');
    expect(await readFile(stageLogFile(runsDir, run!.id, 'flaky', 2), 'utf8')).toBe('try 2\n');
    const r = await runCli(['logs', 'flaky'], { cwd: dir });
    expect(r.stdout).toBe(
      '== flaky, attempt 1 ==\ntry 1\nwarning: attempt 1 of 2 failed: stage flaky: command exited with code 1; retrying\n== flaky, attempt 2 ==\ntry 2\n',
    );
  });
});

describe('a log is bounded', () => {
  test('past its head, only the last lines are kept, with a note of how many were not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stage-logs-bound-'));
    made.push(dir);
    const file = join(dir, 'logs', 's.log');
    const log = new BoundedLog(file, { head: 16, tail: 17 });
    for (let i = 1; i <= 100; i++) log.line(`line ${i}`);
    log.close();
    expect(await readFile(file, 'utf8')).toBe('line 1\nline 2\n[... 96 lines not kept (logs keep their first and last lines) ...]\nline 99\nline 100\n');
  });
});

describe('pipeline logs --follow', () => {
  test("prints a running stage's lines as they come and ends with the run", async () => {
    // The command waits for a file the test creates once --follow has printed its first line.
    const dir = await ws(`stages:
  slow:
    cmd: 'echo first; while [ ! -e go ]; do sleep 0.05; done; echo second'
`);
    let follow: Promise<{ code: number | null; stdout: string }> | undefined;
    const run = runCli(['run'], {
      cwd: dir,
      onOutput: (chunk) => {
        if (follow || !chunk.includes('first')) return;
        follow = runCli(['logs', 'slow', '--follow'], {
          cwd: dir,
          onOutput: (out) => {
            if (out.includes('first')) void writeFile(join(dir, 'go'), '');
          },
        });
      },
    });
    expect((await run).code).toBe(0);
    const followed = await follow!;
    expect({ code: followed.code, stdout: followed.stdout }).toEqual({ code: 0, stdout: 'first\nsecond\n' });
  });
});
