// The store commands on the real CLI: status (each reason), show, runs, gc and verify.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { appendFile, chmod, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace, type CliResult } from './helpers/cli.js';

const yaml = (otherCmd = 'echo other > other.txt') => `
stages:
  prep:
    cmd: sort input.txt > sorted.txt
    deps: [input.txt]
    outs: [sorted.txt]
  count:
    cmd: wc -l < sorted.txt > count.txt
    deps: [sorted.txt]
    outs: [count.txt]
  other:
    cmd: ${otherCmd}
    outs: [other.txt]
`;

let dir: string;
beforeEach(async () => {
  dir = await workspace(yaml(), 'cli-commands-');
  await writeFile(join(dir, 'input.txt'), 'c\na\nb\n');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[], code = 0): Promise<CliResult> {
  const r = await runCli(args, { cwd: dir });
  expect(r).toMatchObject({ code });
  return r;
}

/** stage → the rest of its status line. */
function statusLines(r: CliResult): Record<string, string> {
  const found: Record<string, string> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m) found[m[1]!] = m[2]!;
  }
  return found;
}

interface ShowJson {
  key: string;
  cmd?: string;
  outputs: { path: string; digest: string; size: number; view: string; workspace?: string }[];
  inputs: { stage: string; outputsDigest: string }[];
  deps: { path: string; digest: string | null }[];
  ranAt: string;
  durationMs: number;
}

const objectPath = (digest: string) => join(dir, 'artifacts', 'objects', digest.slice(0, 2), digest.slice(2));
const countObjects = async () => {
  let n = 0;
  for (const fan of await readdir(join(dir, 'artifacts', 'objects'))) n += (await readdir(join(dir, 'artifacts', 'objects', fan))).length;
  return n;
};

describe('status', () => {
  test('explains each kind of staleness and never runs anything', async () => {
    expect(statusLines(await cli(['status']))).toEqual({
      prep: 'stale: never run',
      count: 'stale: never run; upstream stale: prep',
      other: 'stale: never run',
    });
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
    await cli(['run']);
    expect(statusLines(await cli(['status']))).toEqual({ prep: 'up to date', count: 'up to date', other: 'up to date' });

    // input changed (a dep) → the stage and, through it, its downstream.
    await writeFile(join(dir, 'input.txt'), 'c\na\nd\n');
    let s = statusLines(await cli(['status']));
    expect(s.prep).toMatch(/^stale: input changed: input.txt \([0-9a-f]{8} → [0-9a-f]{8}\)$/);
    expect(s.count).toBe('stale: upstream stale: prep');
    await writeFile(join(dir, 'input.txt'), 'c\na\nb\n');

    // code changed (the command).
    await writeFile(join(dir, 'pipeline.yaml'), yaml('echo another > other.txt'));
    expect(statusLines(await cli(['status'])).other).toBe('stale: code changed: cmd `echo other > othe…` → `echo another > othe…`');
    await writeFile(join(dir, 'pipeline.yaml'), yaml());

    // output missing: a workspace out (restorable) and a store object (must rerun).
    await rm(join(dir, 'other.txt'));
    const show = JSON.parse((await cli(['show', 'prep', '--json'])).stdout) as ShowJson;
    await rm(objectPath(show.outputs[0]!.digest));
    s = statusLines(await cli(['status']));
    expect(s.other).toBe('stale: output missing: workspace other.txt missing or modified (run restores it)');
    expect(s.prep).toBe('stale: output missing: sorted.txt gone from the store');
    expect(s.count).toBe('stale: upstream stale: prep');

    const json = JSON.parse((await cli(['status', '--json'])).stdout) as { stages: { stage: string; state: string; reasons: { type: string }[] }[] };
    expect(json.stages.map((x) => [x.stage, x.state, x.reasons.map((r) => r.type)])).toEqual([
      ['prep', 'stale', ['output-missing']],
      ['count', 'stale', ['upstream']],
      ['other', 'stale', ['output-missing']],
    ]);

    const again = await cli(['run']);
    expect(again.stdout).toMatch(/^ran\s+prep\b/m);
    expect(again.stdout).toMatch(/^cached\s+count\b/m); // prep's new outputs are the same bytes
    expect(again.stdout).toMatch(/^cached\s+other\s+\S+\s+\(restored other.txt from the store\)/m);
    expect(statusLines(await cli(['status']))).toEqual({ prep: 'up to date', count: 'up to date', other: 'up to date' });
  });
});

describe('show and runs', () => {
  test('show prints key, command, inputs, outputs with digests, sizes and readable paths', async () => {
    await cli(['run']);
    const text = (await cli(['show', 'count'])).stdout;
    expect(text).toMatch(/^key\s+[0-9a-f]{64}$/m);
    expect(text).toMatch(/^cmd\s+wc -l < sorted.txt > count.txt$/m);
    expect(text).toMatch(/^ran\s+\d{4}-\d\d-\d\dT.*, took \d+ms/m);
    expect(text).toMatch(/^\s+stage prep\s+outputs [0-9a-f]{16}$/m);
    expect(text).toMatch(/^\s+count\.txt\s+2 B\s+[0-9a-f]{16}\s+artifacts\/stages\/count\/count\.txt$/m);

    const info = JSON.parse((await cli(['show', 'count', '--json'])).stdout) as ShowJson;
    expect(info.inputs.map((i) => i.stage)).toEqual(['prep']);
    expect(info.outputs).toHaveLength(1);
    const out = info.outputs[0]!;
    expect(out).toMatchObject({ path: 'count.txt', size: 2, workspace: join(dir, 'count.txt') });
    expect(await readFile(out.view, 'utf8')).toBe('3\n');
    expect((await stat(out.view)).mode & 0o777).toBe(0o444); // the view is the read-only object

    const prep = JSON.parse((await cli(['show', 'prep', '--json'])).stdout) as ShowJson;
    expect(prep.deps).toEqual([{ path: 'input.txt', digest: expect.stringMatching(/^[0-9a-f]{64}$/) }]);

    const unknown = await cli(['show', 'nope'], 2);
    expect(unknown.stderr).toContain("unknown stage 'nope'");
  });

  test('show summarises a result of many files per directory; --all lists them', async () => {
    await writeFile(
      join(dir, 'pipeline.yaml'),
      `stages:\n  many:\n    cmd: mkdir -p imgs/a imgs/b && for i in $(seq 1 60); do echo $i > imgs/a/$i.txt; echo $i > imgs/b/$i.txt; done; echo ok > top.txt\n    outs: [imgs, top.txt]\n`,
    );
    await cli(['run']);
    const text = (await cli(['show', 'many'])).stdout;
    expect(text).toMatch(/^outputs\s+121 files, /m);
    expect(text).toMatch(/^\s+imgs\/\s+\d+ B\s+120 files\s+artifacts\/stages\/many\/imgs$/m);
    expect(text).toMatch(/^\s+top\.txt\s+3 B\s+[0-9a-f]{16}\s+artifacts\/stages\/many\/top\.txt$/m);
    expect(text).toContain('(121 files in all: --all lists them, --json gives every digest)');
    expect(text.trim().split('\n').length).toBeLessThan(20);
    const all = (await cli(['show', 'many', '--all'])).stdout;
    expect(all).toMatch(/^\s+imgs\/b\/59\.txt\s+3 B\s+[0-9a-f]{16}\s+artifacts\/stages\/many\/imgs\/b\/59\.txt$/m);
    expect(all.trim().split('\n').length).toBeGreaterThan(121);
  });

  test('show on a stage that never ran says so', async () => {
    expect((await cli(['show', 'prep'])).stdout).toContain('prep: no result yet (never run)');
  });

  test('runs lists each run, newest first, with per-stage outcomes', async () => {
    await cli(['run', 'prep']);
    await cli(['run']);
    const runs = JSON.parse((await cli(['runs', '--json'])).stdout) as {
      id: string;
      outcome: string;
      durationMs: number;
      stages: { stage: string; outcome: string }[];
    }[];
    expect(runs).toHaveLength(2);
    expect(runs[0]!.stages.map((s) => [s.stage, s.outcome])).toEqual([
      ['prep', 'cached'],
      ['count', 'ran'],
      ['other', 'ran'],
    ]);
    expect(runs[1]!.stages.map((s) => [s.stage, s.outcome])).toEqual([['prep', 'ran']]);
    expect(runs.every((r) => r.outcome === 'ok' && r.durationMs >= 0)).toBe(true);
    const text = (await cli(['runs'])).stdout;
    expect(text.indexOf(runs[0]!.id)).toBeLessThan(text.indexOf(runs[1]!.id));
    expect(text).toMatch(/^\s+ran\s+count\s+\S+\s+\(never run\)$/m);
  });
});

describe('gc and verify', () => {
  test('gc deletes results nothing refers to; --dry-run only reports', async () => {
    await cli(['run']);
    await writeFile(join(dir, 'input.txt'), 'z\ny\nx\n'); // new sorted.txt, same count.txt
    await cli(['run']);
    const before = await countObjects();

    expect((await cli(['gc'])).stdout).toMatch(/^removed 0 objects \(0 B\), 0 manifests, 0 views; kept 5 results$/m); // last runs keep them
    const dry = await cli(['gc', '--dry-run', '--keep-runs', '0']);
    expect(dry.stdout).toMatch(/^would remove 1 object \(6 B\), 2 manifests, 2 views; kept 3 results$/m);
    expect(await countObjects()).toBe(before);

    expect((await cli(['gc', '--keep-runs', '0'])).stdout).toMatch(/^removed 1 object \(6 B\), 2 manifests, 2 views; kept 3 results$/m);
    expect(await countObjects()).toBe(before - 1);
    await cli(['verify']);
    const after = await cli(['run']);
    expect(after.stdout).toMatch(/^3 cached in /m);
  });

  test('verify reports a corrupted object (exit 1); --fix removes it and the stage reruns', async () => {
    await cli(['run']);
    const ok = await cli(['verify']);
    expect(ok.stdout).toMatch(/^checked 3 objects \(\d+ B\): 0 corrupt, 0 missing$/m);

    const show = JSON.parse((await cli(['show', 'prep', '--json'])).stdout) as ShowJson;
    const obj = objectPath(show.outputs[0]!.digest);
    expect((await stat(obj)).mode & 0o777).toBe(0o444);
    await chmod(obj, 0o644);
    await appendFile(obj, 'tampered\n');

    const bad = await cli(['verify'], 1);
    expect(bad.stdout).toContain(`corrupt  artifacts/objects/${show.outputs[0]!.digest.slice(0, 2)}/`);
    expect(bad.stdout).toContain('used by prep:sorted.txt');
    expect(bad.stdout).toMatch(/: 1 corrupt, 0 missing$/m);
    expect(bad.stderr).toContain('error: store verification failed: 1 corrupt, 0 missing');

    await rm(obj);
    const missing = await cli(['verify'], 1);
    expect(missing.stdout).toMatch(/^missing  object [0-9a-f]{16}…, used by prep:sorted.txt$/m);

    const rerun = await cli(['run']);
    expect(rerun.stdout).toMatch(/^ran\s+prep\s+\S+\s+\(output missing: sorted.txt gone from the store\)$/m);
    await cli(['verify']);
  });

  test('verify --fix deletes corrupt objects so their stage reruns', async () => {
    await cli(['run']);
    const show = JSON.parse((await cli(['show', 'other', '--json'])).stdout) as ShowJson;
    const obj = objectPath(show.outputs[0]!.digest);
    await chmod(obj, 0o644);
    await writeFile(obj, 'garbage');
    const fixed = await cli(['verify', '--fix'], 1);
    expect(fixed.stdout).toContain('used by other:other.txt (removed)');
    expect(existsSync(obj)).toBe(false);
    expect((await cli(['run'])).stdout).toMatch(/^ran\s+other\b/m);
    await cli(['verify']);
    expect(await readFile(show.outputs[0]!.view, 'utf8')).toBe('other\n');
  });
});
