// Reliability of the built CLI under hostile but ordinary use (issue 13): kill signals, orphaned
// commands, bit flips in the store, outs that would delete files the tool does not own, odd
// pipeline files, and params that try to become shell code.
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, runCli, workspace, type CliResult } from './helpers/cli.js';
import { mountTmpfs, resizeTmpfs, tmpfsSkipReason, unmountTmpfs } from './helpers/tmpfs.js';
import { writeTar } from './helpers/archive-builders.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function ws(yaml: string): Promise<string> {
  const dir = await workspace(yaml, 'reliability-');
  dirs.push(dir);
  return dir;
}

/** Runs the CLI and expects success (on failure the assertion shows stdout and stderr). */
async function ok(args: string[], cwd: string): Promise<CliResult> {
  const r = await runCli(args, { cwd });
  expect(r).toMatchObject({ code: 0 });
  return r;
}

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');

describe('params given on the command line never run as shell code', () => {
  const yaml = `
params:
  x: hello world
stages:
  plain:
    cmd: echo \${params.x} > plain.txt
    outs: [plain.txt]
  quoted:
    cmd: echo "x=\${params.x}" > quoted.txt
    outs: [quoted.txt]
`;

  test('--set values with $(...), backticks and ; are passed as text', async () => {
    const dir = await ws(yaml);
    for (const value of ['$(touch pwned1)', '`touch pwned2`', 'a; touch pwned3', "it's; touch pwned4; '", 'a"; touch pwned5; "']) {
      const r = await ok(['run', '--set', `params.x=${value}`], dir);
      expect(r.stdout).toMatch(/ran\s+plain/);
      expect((await read(dir, 'quoted.txt')).trimEnd()).toBe(`x=${value}`);
    }
    for (const n of [1, 2, 3, 4, 5]) expect(existsSync(join(dir, `pwned${n}`))).toBe(false);
    // Unquoted, a value is split into words like any shell variable (never parsed as code).
    await ok(['run', '--set', 'params.x=a; touch pwned3'], dir);
    expect(await read(dir, 'plain.txt')).toBe('a; touch pwned3\n');
  });

  test('values from pipeline.yaml work as before, and a changed value reruns the stage', async () => {
    const dir = await ws(yaml);
    await ok(['run'], dir);
    expect(await read(dir, 'plain.txt')).toBe('hello world\n');
    expect(await read(dir, 'quoted.txt')).toBe('x=hello world\n');
    const again = await ok(['run'], dir);
    expect(again.stdout).toMatch(/cached\s+plain/);
    const changed = await ok(['run', '--set', 'params.x=other'], dir);
    expect(changed.stdout).toMatch(/ran\s+plain/);
    expect(await read(dir, 'plain.txt')).toBe('other\n');
  });
});

describe('run never deletes or writes files it does not own', () => {
  test('an out under a symlinked parent directory that leaves the pipeline directory is refused', async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'reliability-elsewhere-'));
    dirs.push(elsewhere);
    await writeFile(join(elsewhere, 'victim.txt'), 'precious\n');
    await mkdir(join(elsewhere, 'victims'));
    await writeFile(join(elsewhere, 'victims', 'a.txt'), 'precious too\n');
    const dir = await ws(`
stages:
  file:
    cmd: echo overwritten > sub/victim.txt
    outs: [sub/victim.txt]
  tree:
    cmd: mkdir -p sub/victims && echo overwritten > sub/victims/a.txt
    outs: [sub/victims]
`);
    await symlink(elsewhere, join(dir, 'sub'));
    const r = await runCli(['run', '--keep-going'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stage file: out sub\/victim\.txt resolves to .*outside the pipeline directory/);
    expect(r.stderr).toMatch(/stage tree: out sub\/victims resolves to .*outside the pipeline directory/);
    expect(await readFile(join(elsewhere, 'victim.txt'), 'utf8')).toBe('precious\n');
    expect(await readFile(join(elsewhere, 'victims', 'a.txt'), 'utf8')).toBe('precious too\n');
  });

  test('restoring a cached out never follows a parent directory that became a link out of the pipeline directory', async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'reliability-elsewhere-'));
    dirs.push(elsewhere);
    const dir = await ws('stages:\n  file:\n    cmd: mkdir -p sub && echo committed > sub/victim.txt\n    outs: [sub/victim.txt]\n');
    await ok(['run'], dir);
    await rm(join(dir, 'sub'), { recursive: true });
    await writeFile(join(elsewhere, 'victim.txt'), 'precious\n');
    await symlink(elsewhere, join(dir, 'sub'));
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/out sub\/victim\.txt resolves to .*outside the pipeline directory/);
    expect(await readFile(join(elsewhere, 'victim.txt'), 'utf8')).toBe('precious\n');
  });

  const invalid: [string, string, RegExp][] = [
    [
      'its own dep',
      'stages:\n  sort:\n    cmd: sort -n data.txt -o data.txt\n    deps: [data.txt]\n    outs: [data.txt]\n',
      /^error: pipeline\.yaml:5:12: stage 'sort': output 'data\.txt' is also its dep \(pipeline\.yaml:4:12\)/m,
    ],
    [
      'a directory holding its dep',
      'stages:\n  a:\n    cmd: ls data > data/list.txt\n    deps: [data/in.txt]\n    outs: [data]\n',
      /^error: pipeline\.yaml:5:12: stage 'a': output 'data' contains its dep 'data\/in\.txt' \(pipeline\.yaml:4:12\)/m,
    ],
    [
      'the pipeline file',
      'stages:\n  a:\n    cmd: echo hi > pipeline.yaml\n    outs: [pipeline.yaml]\n',
      /^error: pipeline\.yaml:4:12: stage 'a': output 'pipeline\.yaml' is the pipeline file/m,
    ],
    ['.git', 'stages:\n  a:\n    cmd: echo hi > .git/x\n    outs: [.git/x]\n', /^error: pipeline\.yaml:4:12: stage 'a': output '\.git\/x' is inside \.git/m],
  ];
  test.each(invalid)('an out naming %s is a config error (exit 2) and nothing is deleted', async (_what, yaml, message) => {
    const dir = await ws(yaml);
    await writeFile(join(dir, 'data.txt'), '3\n1\n2\n');
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'data', 'in.txt'), 'in\n');
    await mkdir(join(dir, '.git'));
    await writeFile(join(dir, '.git', 'x'), 'git\n');
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(await read(dir, 'data.txt')).toBe('3\n1\n2\n');
    expect(await read(dir, 'data/in.txt')).toBe('in\n');
    expect(await read(dir, '.git/x')).toBe('git\n');
    expect(await read(dir, 'pipeline.yaml')).toBe(yaml);
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
  });
});

/** Whether a process exists and is not a zombie (an orphan's zombie may linger if nothing reaps it). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls (bounded) until `check` holds; returns whether it did. Coordination on files and processes, not on time. */
async function eventually(check: () => boolean | Promise<boolean>, tries = 400): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** Starts `pipeline ARGS` in its own process group (so a test can kill the CLI with its group). */
function startCli(args: string[], cwd: string): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', CI: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

const pidsIn = async (dir: string, file: string) => (await readFile(join(dir, file), 'utf8').catch(() => '')).split(/\s+/).filter(Boolean).map(Number);

describe('commands never outlive the run that owns them', () => {
  const stragglers: number[] = [];
  afterEach(() => {
    for (const pid of stragglers.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });

  test('SIGKILL of the CLI: the next run does not run alongside the orphan, and commits a clean result', async () => {
    const dir = await ws(`
stages:
  log:
    cmd: echo $$ >> pids.txt; for i in $(seq 1 10); do echo line$i >> log.txt; sleep 0.4; done
    outs: [log.txt]
`);
    const first = startCli(['run'], dir);
    expect(await eventually(() => existsSync(join(dir, 'log.txt')))).toBe(true);
    first.child.kill('SIGKILL');
    await first.done;
    const [orphan] = await pidsIn(dir, 'pids.txt');
    stragglers.push(orphan!);
    await ok(['run'], dir);
    expect(await read(dir, 'log.txt')).toBe(Array.from({ length: 10 }, (_, i) => `line${i + 1}\n`).join(''));
    expect(running(orphan!)).toBe(false);
    expect((await ok(['status'], dir)).stdout).toMatch(/up to date/);
    await ok(['verify'], dir);
  });

  /** A run whose one command never ends, started and seen running: the CLI and the command's pid. */
  async function runForever(): Promise<{ dir: string; first: ReturnType<typeof startCli>; pid: number }> {
    const dir = await ws(`
stages:
  forever:
    cmd: echo $$ >> pids.txt; while true; do sleep 0.1; done
    outs: [never.txt]
`);
    const first = startCli(['run'], dir);
    expect(await eventually(async () => (await pidsIn(dir, 'pids.txt')).length > 0)).toBe(true);
    const [pid] = await pidsIn(dir, 'pids.txt');
    stragglers.push(pid!);
    return { dir, first, pid: pid! };
  }

  test('SIGKILL of the CLI alone: its command is stopped without another run', async () => {
    const { first, pid } = await runForever();
    first.child.kill('SIGKILL');
    await first.done;
    expect(await eventually(() => !running(pid))).toBe(true);
  });

  test('SIGHUP (terminal closed) stops the run like SIGTERM: exit 130, commands stopped, nothing committed', async () => {
    const { dir, first, pid } = await runForever();
    first.child.kill('SIGHUP');
    const r = await first.done;
    expect(r).toMatchObject({ code: 130 });
    expect(r.stderr).toMatch(/received SIGHUP/);
    expect(await eventually(() => !running(pid))).toBe(true);
    const runs = await ok(['runs', '--json'], dir);
    expect((JSON.parse(runs.stdout) as { outcome: string }[])[0]!.outcome).toBe('interrupted');
  });

  test('SIGKILL of the CLI, alone or with its process group, at random moments: reruns are byte-identical, verify is clean, no orphans', async () => {
    // Each command first notes any command of an earlier run still alive (not a zombie): a run must
    // never run alongside a dead run's leftovers.
    const check = `for p in $(cat pids.txt 2>/dev/null); do if [ -r /proc/$p/stat ] && ! grep -q ') Z ' /proc/$p/stat; then echo $p >> overlap.txt; fi; done; echo $$ >> pids.txt`;
    const yaml = `
stages:
  gen:
    cmd: ${check}; for i in $(seq 1 8); do echo gen$i >> gen.txt; sleep 0.1; done
    outs: [gen.txt]
  upper:
    cmd: ${check}; tr a-z A-Z < gen.txt > upper.txt; sleep 0.2; echo done >> upper.txt
    deps: [gen.txt]
    outs: [upper.txt]
  parts:
    cmd: ${check}; mkdir -p parts; for i in 1 2 3; do sed -n "\${i}p" upper.txt > parts/p$i.txt; sleep 0.05; done
    deps: [upper.txt]
    outs: [parts]
`;
    const reference = await ws(yaml);
    await ok(['run'], reference);
    const dir = await ws(yaml);
    for (let round = 0; round < 10; round++) {
      const r = startCli(['run', ...(round % 3 === 0 ? ['--force'] : [])], dir);
      // A random moment (not coordination): before, during or after any stage, or after the run.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 2000)));
      if (round % 2 === 0) r.child.kill('SIGKILL');
      else if (r.child.pid !== undefined) {
        try {
          process.kill(-r.child.pid, 'SIGKILL');
        } catch {
          // already finished
        }
      }
      await r.done;
    }
    await ok(['run'], dir);
    for (const f of ['gen.txt', 'upper.txt', 'parts/p1.txt', 'parts/p2.txt', 'parts/p3.txt']) expect(await read(dir, f)).toBe(await read(reference, f));
    await ok(['verify'], dir);
    expect((await ok(['status'], dir)).stdout).not.toMatch(/stale/);
    const pids = await pidsIn(dir, 'pids.txt');
    stragglers.push(...pids);
    expect(pids.filter(running)).toEqual([]);
    expect(existsSync(join(dir, 'overlap.txt')) ? await read(dir, 'overlap.txt') : 'no overlap').toBe('no overlap');
  });
});

describe('smaller failure cases', () => {
  test('a YAML alias bomb is a config error with its location (exit 2)', async () => {
    const levels = ['  a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) levels.push(`  a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    const dir = await ws(['params:', ...levels, 'stages:', '  s:', '    cmd: echo hi > s.txt', '    outs: [s.txt]', ''].join('\n'));
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: pipeline\.yaml:\d+:\d+: YAML: .*alias/m);
    expect(r.stderr).not.toMatch(/--verbose/);
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
  });

  test('a lock directory without a holder record is broken, not waited on', async () => {
    const dir = await ws('stages:\n  s:\n    cmd: echo hi > s.txt\n    outs: [s.txt]\n');
    await mkdir(join(dir, 'artifacts', 'lock'), { recursive: true });
    // Its holder died between creating it and writing lock.json, 10 s ago (it would go stale by mtime only at 20 s).
    const past = new Date(Date.now() - 10_000);
    await utimes(join(dir, 'artifacts', 'lock'), past, past);
    const r = await runCli(['run', '--lock-timeout', '5'], { cwd: dir });
    expect(r).toMatchObject({ code: 0 });
    expect(r.stderr).toMatch(/broke a store lock without a holder record/);
  });

  test('a dead holder whose pid now belongs to another process does not hold the lock', async () => {
    const dir = await ws('stages:\n  s:\n    cmd: echo hi > s.txt\n    outs: [s.txt]\n');
    const lockDir = join(dir, 'artifacts', 'lock');
    await mkdir(lockDir, { recursive: true });
    // The pid is alive (this test process), but it started later than the holder did.
    const holder = {
      pid: process.pid,
      command: 'pipeline run',
      startedAt: new Date().toISOString(),
      hostname: hostname(),
      lockIno: (await stat(lockDir)).ino,
      pidStart: '1',
    };
    await writeFile(join(dir, 'artifacts', 'lock.json'), JSON.stringify(holder));
    const r = await runCli(['run', '--lock-timeout', '10'], { cwd: dir });
    expect(r).toMatchObject({ code: 0 });
    expect(r.stderr).toMatch(new RegExp(`broke the store lock left by pid ${process.pid}`));
  });

  test('a second Ctrl-C exits at once and records the run as interrupted', async () => {
    const dir = await ws(`
stages:
  stubborn:
    cmd: trap '' TERM INT; echo $$ >> pids.txt; while true; do sleep 0.1; done
    outs: [never.txt]
`);
    const r = startCli(['run'], dir);
    expect(await eventually(async () => (await pidsIn(dir, 'pids.txt')).length > 0)).toBe(true);
    let stderr = '';
    const stopping = new Promise<void>((resolve) =>
      r.child.stderr!.on('data', (d: Buffer) => ((stderr += d.toString()), stderr.includes('stopping') && resolve())),
    );
    r.child.kill('SIGINT');
    await stopping;
    r.child.kill('SIGINT');
    expect(await r.done).toMatchObject({ code: 130 });
    const [pid] = await pidsIn(dir, 'pids.txt');
    expect(await eventually(() => !running(pid!))).toBe(true);
    const runs = JSON.parse((await ok(['runs', '--json'], dir)).stdout) as { outcome: string }[];
    expect(runs[0]!.outcome).toBe('interrupted');
  });
});

const withTmpfsTest = tmpfsSkipReason('reliability') === undefined ? test : test.skip;

/** Runs `body` in a fresh directory that is a tmpfs of `size` (e.g. `20m`), unmounted after. */
async function onTmpfs(size: string, body: (dir: string, grow: (size: string) => void) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'reliability-full-'));
  dirs.push(dir);
  mountTmpfs(dir, size);
  try {
    await body(dir, (bigger) => resizeTmpfs(dir, bigger));
  } finally {
    unmountTmpfs(dir);
  }
}

interface RecordJson {
  outcome: string;
  stages: { stage: string; outcome: string; error?: string }[];
}

const lastRecord = async (dir: string) => (JSON.parse((await ok(['runs', '--json'], dir)).stdout) as RecordJson[])[0]!;

describe('a full disk', () => {
  withTmpfsTest('a command that fills the disk: its partial out is removed, the error says so, the run is recorded, verify is clean', async () => {
    await onTmpfs('20m', async (dir, grow) => {
      await writeFile(
        join(dir, 'pipeline.yaml'),
        'stages:\n  small:\n    cmd: echo hi > small.txt\n    outs: [small.txt]\n  fill:\n    deps: [small.txt]\n    cmd: mkdir -p data && echo started > data/log.txt && head -c 40000000 /dev/zero > data/big.bin\n    outs: [data]\n',
      );
      const r = await runCli(['run'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: stage fill: no space left on device: the disk holding \S+ is full \(its command said: head: error writing 'standard output': No space left on device\); removed its partial out data \(\d+\.\d MB\) to free the space; make room and run again$/m,
      );
      expect(r.stderr).not.toMatch(/ENOSPC: no space left on device, write/);
      expect(r.stderr).not.toMatch(/^hint:/m); // a full disk is not the data's fault
      expect(existsSync(join(dir, 'data'))).toBe(false);
      expect(await read(dir, 'small.txt')).toBe('hi\n');
      const record = await lastRecord(dir);
      expect(record.outcome).toBe('failed');
      expect(record.stages.find((s) => s.stage === 'fill')).toMatchObject({ outcome: 'failed', error: expect.stringContaining('no space left on device') });
      await ok(['verify'], dir);

      grow('100m');
      const rerun = await ok(['run'], dir);
      expect(rerun.stdout).toMatch(/ran\s+fill/);
      expect(rerun.stdout).toMatch(/cached\s+small/);
      expect((await stat(join(dir, 'data', 'big.bin'))).size).toBe(40_000_000);
      await ok(['verify'], dir);
    });
  });

  withTmpfsTest('a full disk while storing outs fails the stage naming the file; the uncommitted out is removed and the run is recorded', async () => {
    await onTmpfs('4m', async (dir, grow) => {
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  fill:\n    cmd: head -c 3000000 /dev/zero > big.bin\n    outs: [big.bin]\n');
      const r = await runCli(['run'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: stage fill: no space left on device while storing big\.bin in artifacts\/ \(the disk holding the store is full\); removed its uncommitted out big\.bin \(3\.0 MB\) to free the space; make room and run again$/m,
      );
      expect(r.stderr).not.toMatch(/ENOSPC: no space left on device, write/);
      expect(existsSync(join(dir, 'big.bin'))).toBe(false);
      expect((await lastRecord(dir)).outcome).toBe('failed');
      await ok(['verify'], dir);
      grow('16m');
      await ok(['run'], dir);
      await ok(['verify'], dir);
    });
  });

  withTmpfsTest('a stage kind whose outputs do not fit: the file is named, its partial outputs are gone, the run is recorded', async () => {
    await onTmpfs('20m', async (dir, grow) => {
      await mkdir(join(dir, 'images', 'train', 'cat'), { recursive: true });
      for (let i = 0; i < 6; i++) await writeFile(join(dir, 'images', 'train', 'cat', `${i}.jpg`), Buffer.alloc(2_000_000, i));
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  fetch:\n    uses: fetch\n    with:\n      url: images\n');
      const r = await runCli(['run'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: stage fetch: no space left on device while writing its output pack\/\.writing-\d+\.bin in artifacts\/tmp\/ \(the disk holding the store is full\); its partial outputs were removed; make room and run again$/m,
      );
      expect(r.stderr).not.toMatch(/ENOSPC/);
      expect(await readdir(join(dir, 'artifacts', 'tmp'))).toEqual([]);
      expect((await lastRecord(dir)).outcome).toBe('failed');
      await ok(['verify'], dir);
      grow('40m');
      await ok(['run'], dir);
      await ok(['verify'], dir);
    });
  });

  withTmpfsTest('an archive whose pack does not fit: the same full-disk error, nothing partial kept', async () => {
    await onTmpfs('20m', async (dir, grow) => {
      const entries = Array.from({ length: 6 }, (_, i) => ({ path: `train/cat/${i}.jpg`, body: Buffer.alloc(2_000_000, i) }));
      await writeTar(join(dir, 'images.tar'), entries);
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  fetch:\n    uses: fetch\n    with:\n      url: images.tar\n');
      const r = await runCli(['run'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: stage fetch: no space left on device while writing its output pack\/\.writing-\d+\.bin in artifacts\/tmp\/ \(the disk holding the store is full\); its partial outputs were removed; make room and run again$/m,
      );
      expect(await readdir(join(dir, 'artifacts', 'tmp'))).toEqual([]);
      await ok(['verify'], dir);
      grow('40m');
      await ok(['run'], dir);
      await ok(['verify'], dir);
    });
  });

  withTmpfsTest('a command that fills the disk with a file that is not its out: that file is left alone, and the run record is still written', async () => {
    await onTmpfs('8m', async (dir) => {
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  fill:\n    cmd: cat /dev/zero > junk.bin\n    outs: [out.txt]\n');
      const r = await runCli(['run'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: stage fill: no space left on device: .*\(its command said: cat: write error: No space left on device\); it left no partial outs; make room/m,
      );
      expect(r.stderr).not.toMatch(/could not write the run record/);
      expect(existsSync(join(dir, 'junk.bin'))).toBe(true); // not the tool's to delete
      // The disk is still full: the final record went over the space its first version reserved.
      const record = await lastRecord(dir);
      expect(record).toMatchObject({ outcome: 'failed', stages: [{ stage: 'fill', outcome: 'failed', error: expect.stringContaining('no space left') }] });
      await rm(join(dir, 'junk.bin'));
      await ok(['verify'], dir);
    });
  });

  withTmpfsTest('restoring a cached out that no longer fits: the partial copy is removed and the error says so', async () => {
    await onTmpfs('8m', async (dir) => {
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  big:\n    cmd: head -c 3000000 /dev/urandom > big.bin\n    outs: [big.bin]\n');
      await ok(['run'], dir);
      await rm(join(dir, 'big.bin'));
      await writeFile(join(dir, 'foreign.bin'), Buffer.alloc(3_500_000, 1));
      const r = await runCli(['run'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: stage big: no space left on device while restoring big\.bin from the store \(the disk holding \S+ is full\); removed the partial copy; make room and run again$/m,
      );
      expect(existsSync(join(dir, 'big.bin'))).toBe(false);
      expect((await lastRecord(dir)).outcome).toBe('failed');
      await rm(join(dir, 'foreign.bin'));
      expect((await ok(['run'], dir)).stdout).toMatch(/cached\s+big\s+\S+\s+\(restored big\.bin from the store\)/);
      await ok(['verify'], dir);
    });
  });

  withTmpfsTest('a disk already full when the run starts: the error names what could not be written, and no lock is left behind', async () => {
    await onTmpfs('8m', async (dir) => {
      await writeFile(join(dir, 'pipeline.yaml'), 'stages:\n  s:\n    cmd: echo hi > s.txt\n    outs: [s.txt]\n');
      await ok(['run'], dir);
      // Something else fills the disk to the last byte.
      spawnSync('sh', ['-c', 'cat /dev/zero > foreign.bin'], { cwd: dir });
      const r = await runCli(['run', '--force'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: no space left on device writing \S+artifacts\/\S+: the disk holding it is full; make room and run again$/m);
      expect(r.stderr).not.toMatch(/ENOSPC/);
      expect(existsSync(join(dir, 'artifacts', 'lock'))).toBe(false);
      await rm(join(dir, 'foreign.bin'));
      expect((await ok(['run', '--force'], dir)).stdout).toMatch(/ran\s+s/);
      await ok(['verify'], dir);
    });
  });
});

interface ShownOutput {
  path: string;
  digest: string;
}

/** The object file of `stage`'s output `path` (from `show --json`). */
async function objectOf(dir: string, stage: string, path: string): Promise<string> {
  const shown = JSON.parse((await ok(['show', stage, '--json'], dir)).stdout) as { outputs: ShownOutput[] };
  const out = shown.outputs.find((o) => o.path === path)!;
  return join(dir, 'artifacts', 'objects', out.digest.slice(0, 2), out.digest.slice(2));
}

/** Flips one byte of a file in place (as a bad disk or a stray write would; the inode stays). */
async function flipByte(file: string, at = 3, keepMtime = false): Promise<void> {
  const before = await stat(file);
  await chmod(file, 0o644);
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0x20;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
  await chmod(file, 0o444);
  if (keepMtime) await utimes(file, before.atime, before.mtime);
}

describe('a corrupt object never spreads', () => {
  const yaml = `
stages:
  b:
    cmd: printf 'payload-abcdefghij' > b.bin
    outs: [b.bin]
  d:
    cmd: tr a-z A-Z < b.bin > d.txt
    deps: [b.bin]
    outs: [d.txt]
`;

  test('restore checks what it copies out: a flipped byte is not restored, and downstream stages compute on good bytes', async () => {
    const dir = await ws(yaml);
    await ok(['run', 'b'], dir);
    await flipByte(await objectOf(dir, 'b', 'b.bin'));
    await rm(join(dir, 'b.bin'));
    const r = await ok(['run'], dir);
    expect(r.stdout).toMatch(/ran\s+d/);
    expect(await read(dir, 'b.bin')).toBe('payload-abcdefghij');
    expect(await read(dir, 'd.txt')).toBe('PAYLOAD-ABCDEFGHIJ');
    await ok(['verify'], dir);
  });

  test('a flip that keeps size, inode and mtime (so the stat cache vouches for it) is still caught when copied out', async () => {
    const dir = await ws(yaml);
    await ok(['run', 'b'], dir);
    await flipByte(await objectOf(dir, 'b', 'b.bin'), 3, true);
    await rm(join(dir, 'b.bin'));
    const r = await ok(['run'], dir);
    expect(r.stdout).toMatch(/ran\s+b/);
    expect(await read(dir, 'b.bin')).toBe('payload-abcdefghij');
    expect(await read(dir, 'd.txt')).toBe('PAYLOAD-ABCDEFGHIJ');
    await ok(['verify'], dir);
  });

  test('a cached stage whose object was changed on disk is recomputed, not used (the stat cache cannot vouch for it)', async () => {
    const dir = await ws(yaml);
    await ok(['run'], dir);
    await flipByte(await objectOf(dir, 'b', 'b.bin'));
    const r = await ok(['run'], dir);
    expect(r.stdout).toMatch(/ran\s+b .*\(output missing: b\.bin corrupt in the store \(removed\)\)/);
    expect(await read(dir, 'artifacts/stages/b/b.bin')).toBe('payload-abcdefghij');
    await ok(['verify'], dir);
  });

  test('a rerun producing the bytes of a corrupt object replaces it instead of deduplicating into it', async () => {
    const dir = await ws(yaml);
    await ok(['run'], dir);
    await flipByte(await objectOf(dir, 'b', 'b.bin'));
    await ok(['run', '--force', 'b'], dir);
    expect(await read(dir, 'artifacts/stages/b/b.bin')).toBe('payload-abcdefghij');
    await ok(['verify'], dir);
  });

  test('verify --fix invalidates everything computed from a corrupt object', async () => {
    const dir = await ws(yaml);
    await ok(['run'], dir);
    await flipByte(await objectOf(dir, 'b', 'b.bin'));
    const fix = await runCli(['verify', '--fix'], { cwd: dir });
    expect(fix.code).toBe(1);
    expect(fix.stdout).toMatch(/corrupt .*used by b:b\.bin/);
    expect(fix.stdout).toMatch(/invalidated d /);
    const status = JSON.parse((await ok(['status', '--json'], dir)).stdout) as { stages: { stage: string; state: string }[] };
    expect(status.stages.map((s) => [s.stage, s.state])).toEqual([
      ['b', 'stale'],
      ['d', 'stale'],
    ]);
    const r = await ok(['run'], dir);
    expect(r.stdout).toMatch(/ran\s+b/);
    expect(r.stdout).toMatch(/ran\s+d/);
    await ok(['verify'], dir);
  });

  test('verify right after verify --fix is clean: results that lost an object (corrupt, or gone before) are deleted with it', async () => {
    const dir = await ws(`${yaml}  e:\n    cmd: printf 'eee' > e.bin\n    outs: [e.bin]\n`);
    await ok(['run'], dir);
    await flipByte(await objectOf(dir, 'b', 'b.bin'));
    await rm(await objectOf(dir, 'e', 'e.bin'));
    const torn = join(dir, 'artifacts', 'manifests', `${'f'.repeat(64)}.json`);
    await writeFile(torn, '{"format": 1, "key": "ff');
    const fix = await runCli(['verify', '--fix'], { cwd: dir });
    expect(fix.code).toBe(1); // it found problems (and fixed them)
    const after = await ok(['verify'], dir);
    expect(after.stdout).toMatch(/: 0 corrupt, 0 missing$/m);
    expect(fix.stdout).toMatch(/^corrupt .*used by b:b\.bin \(removed\)$/m);
    expect(fix.stdout).toMatch(/^missing  object [0-9a-f]{16}…, used by e:e\.bin$/m);
    expect(fix.stdout).toMatch(/^deleted  result of b \([0-9a-f]{16}…\): b\.bin corrupt; b runs again$/m);
    expect(fix.stdout).toMatch(/^deleted  result of e \([0-9a-f]{16}…\): e\.bin gone from the store; e runs again$/m);
    expect(fix.stdout).toMatch(/^invalidated d /m);
    expect(fix.stdout).toMatch(/^unreadable manifest  .*f{64}\.json \(removed\)$/m);
    expect(fix.stderr).toMatch(/fixed: .*`pipeline verify` now finds nothing wrong/);
    expect(existsSync(torn)).toBe(false);

    const status = JSON.parse((await ok(['status', '--json'], dir)).stdout) as { stages: { stage: string; state: string }[] };
    expect(status.stages.map((s) => [s.stage, s.state])).toEqual([
      ['b', 'stale'],
      ['d', 'stale'],
      ['e', 'stale'],
    ]);
    const r = await ok(['run'], dir);
    for (const stage of ['b', 'd', 'e']) expect(r.stdout).toMatch(new RegExp(`ran\\s+${stage}\\b`));
    expect(await read(dir, 'artifacts/stages/b/b.bin')).toBe('payload-abcdefghij');
    await ok(['verify'], dir);
  });

  test('verify checks the readable views too, and --fix rebuilds them', async () => {
    const dir = await ws(yaml);
    await ok(['run'], dir);
    const view = join(dir, 'artifacts', 'stages', 'b', 'b.bin');
    await rm(view, { force: true });
    await writeFile(view, 'something else');
    const bad = await runCli(['verify'], { cwd: dir });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/view .*b\.bin.*does not match/);
    expect((await runCli(['verify', '--fix'], { cwd: dir })).code).toBe(1);
    await ok(['verify'], dir);
    expect(await read(dir, 'artifacts/stages/b/b.bin')).toBe('payload-abcdefghij');
  });
});
