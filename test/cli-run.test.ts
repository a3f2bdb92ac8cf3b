// `pipeline run` end to end on the real CLI with shell-command stages: ordering and parallelism,
// cache hits and misses, --force, --dry-run, failures, kills, Ctrl-C, and concurrent runs.
import { afterEach, describe, expect, test } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace, type CliResult } from './helpers/cli.js';
import { PackReader } from '../lib/fetch/pack.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function ws(yaml: string): Promise<string> {
  const dir = await workspace(yaml, 'cli-run-');
  dirs.push(dir);
  return dir;
}

/** stage → outcome, from the `outcome  stage  time` lines of `run` (or `run --dry-run`). */
function outcomes(r: CliResult): Record<string, string> {
  const found: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(cached|ran|failed|skipped|aborted|run)\s+(\S+)/.exec(line);
    if (m) found[m[2]!] = m[1]!;
  }
  return found;
}

/** Runs the CLI and expects success (on failure the assertion shows stdout and stderr). */
async function ok(args: string[], cwd: string): Promise<CliResult> {
  const r = await runCli(args, { cwd });
  expect(r).toMatchObject({ code: 0 });
  return r;
}

const read = (dir: string, file: string) => readFile(join(dir, file), 'utf8');
const manifests = async (dir: string) => (await readdir(join(dir, 'artifacts', 'manifests'))).filter((n) => n.endsWith('.json'));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A shell loop waiting (bounded) for a file to appear; exits 9 if it never does. */
const waitFor = (file: string, tries: string) =>
  `i=0; while [ ! -f ${file} ]; do i=$((i+1)); if [ $i -gt ${tries} ]; then echo "gave up waiting for ${file}" >&2; exit 9; fi; sleep 0.05; done`;

describe('ordering and parallelism', () => {
  const yaml = `
params:
  patience: 600
stages:
  left:
    cmd: |
      echo "start left" >> log.txt
      touch left.started
      ${waitFor('right.started', '${params.patience}')}
      echo L > left.txt
      echo "end left" >> log.txt
    outs: [left.txt]
  right:
    cmd: |
      echo "start right" >> log.txt
      touch right.started
      ${waitFor('left.started', '${params.patience}')}
      echo R > right.txt
      echo "end right" >> log.txt
    outs: [right.txt]
  join:
    cmd: echo "start join" >> log.txt && cat left.txt right.txt > joined.txt
    deps: [left.txt, right.txt]
    outs: [joined.txt]
`;

  test('independent stages run at the same time; a stage starts after its needs end', async () => {
    const dir = await ws(yaml);
    // Each of left/right waits for the other to have started: this only finishes if they overlap.
    const r = await ok(['run', '--jobs', '2'], dir);
    expect(outcomes(r)).toEqual({ left: 'ran', right: 'ran', join: 'ran' });
    const log = (await read(dir, 'log.txt')).trim().split('\n');
    expect(log.indexOf('start join')).toBe(4);
    expect(log.slice(0, 2).sort()).toEqual(['start left', 'start right']);
    expect(await read(dir, 'joined.txt')).toBe('L\nR\n');
  });

  test('with --jobs 1 the same stages cannot overlap (the first one gives up waiting)', async () => {
    const dir = await ws(yaml);
    const r = await runCli(['run', '--jobs', '1', '--set', 'params.patience=10'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(outcomes(r)).toMatchObject({ left: 'failed', join: 'skipped' });
    expect(r.stderr).toContain('gave up waiting for right.started');
  });
});

describe('cache', () => {
  const yaml = (greetCmd = 'sed "s/^/${params.greeting} /" name.txt > greeting.txt') => `
params:
  greeting: hello
stages:
  greet:
    cmd: ${greetCmd}
    deps: [name.txt]
    outs: [greeting.txt]
  shout:
    cmd: tr a-z A-Z < greeting.txt > shout.txt
    deps: [greeting.txt]
    outs: [shout.txt]
`;

  test('hits and misses: a param, an input file, the command; outputs restored on a hit', async () => {
    const dir = await ws(yaml());
    await writeFile(join(dir, 'name.txt'), 'world\n');
    const first = await ok(['run'], dir);
    expect(outcomes(first)).toEqual({ greet: 'ran', shout: 'ran' });
    expect(await read(dir, 'shout.txt')).toBe('HELLO WORLD\n');

    // Fully cached: nothing is rehashed (the stat cache knows every dep and out).
    const cached = await ok(['run', '--verbose'], dir);
    expect(outcomes(cached)).toEqual({ greet: 'cached', shout: 'cached' });
    expect(cached.stderr).toContain('stat cache: 0 files hashed');

    // A param used in a cmd changes the command: both rerun.
    const hi = await ok(['run', '--set', 'params.greeting=hi'], dir);
    expect(outcomes(hi)).toEqual({ greet: 'ran', shout: 'ran' });
    expect(await read(dir, 'shout.txt')).toBe('HI WORLD\n');

    // Back to the first value: both results are still in the store; the workspace copies are restored.
    const back = await ok(['run'], dir);
    expect(outcomes(back)).toEqual({ greet: 'cached', shout: 'cached' });
    expect(back.stdout).toMatch(/cached\s+greet\s+\S+\s+\(restored greeting.txt from the store\)/);
    expect(await read(dir, 'shout.txt')).toBe('HELLO WORLD\n');

    // An input file changes.
    await writeFile(join(dir, 'name.txt'), 'there\n');
    const changed = await ok(['run', '--verbose'], dir);
    expect(outcomes(changed)).toEqual({ greet: 'ran', shout: 'ran' });
    expect(changed.stderr).toContain('stat cache: 1 file hashed'); // name.txt, nothing else
    expect(changed.stdout).toMatch(/ran\s+greet\s+\S+\s+\(input changed: name.txt/);
    expect(await read(dir, 'shout.txt')).toBe('HELLO THERE\n');

    // The command changes but produces the same output: greet reruns, shout stays cached.
    await writeFile(join(dir, 'pipeline.yaml'), yaml('true && sed "s/^/${params.greeting} /" name.txt > greeting.txt'));
    const same = await ok(['run'], dir);
    expect(outcomes(same)).toEqual({ greet: 'ran', shout: 'cached' });
    expect(same.stdout).toMatch(/ran\s+greet\s+\S+\s+\(code changed: cmd/);

    // A command that produces different output reruns its downstream.
    await writeFile(join(dir, 'pipeline.yaml'), yaml('sed "s/^/${params.greeting}, /" name.txt > greeting.txt'));
    const other = await ok(['run'], dir);
    expect(outcomes(other)).toEqual({ greet: 'ran', shout: 'ran' });
    expect(await read(dir, 'shout.txt')).toBe('HELLO, THERE\n');
  });

  test('--force reruns the named stages; downstream follows their new outputs', async () => {
    const dir = await ws(`
stages:
  stamp:
    cmd: cat seed.txt > stamp.txt
    deps: [seed.txt]
    outs: [stamp.txt]
  copy:
    cmd: cp stamp.txt copy.txt
    deps: [stamp.txt]
    outs: [copy.txt]
  clock:
    cmd: date +%s%N > clock.txt
    outs: [clock.txt]
  late:
    cmd: cp clock.txt late.txt
    deps: [clock.txt]
    outs: [late.txt]
`);
    await writeFile(join(dir, 'seed.txt'), '1');
    await ok(['run'], dir);
    // Same outputs after a forced rerun: downstream stays cached.
    const forced = await ok(['run', '--force', 'stamp', 'copy'], dir);
    expect(outcomes(forced)).toEqual({ stamp: 'ran', copy: 'ran' });
    expect(forced.stdout).toContain('forced (--force)');
    const onlyStamp = await ok(['run', '--force', 'stamp'], dir);
    expect(outcomes(onlyStamp)).toEqual({ stamp: 'ran' });
    expect(outcomes(await ok(['run'], dir))).toEqual({ stamp: 'cached', copy: 'cached', clock: 'cached', late: 'cached' });
    // Different outputs after a forced rerun: downstream reruns too.
    const clock = await ok(['run', '--force', 'clock', 'late'], dir);
    expect(outcomes(clock)).toEqual({ clock: 'ran', late: 'ran' });
    const all = await ok(['run', '--force'], dir);
    expect(outcomes(all)).toEqual({ stamp: 'ran', copy: 'ran', clock: 'ran', late: 'ran' });
  });

  test('--dry-run prints each stage with its reason and writes nothing', async () => {
    const dir = await ws(yaml());
    await writeFile(join(dir, 'name.txt'), 'world\n');
    const fresh = await ok(['run', '--dry-run'], dir);
    expect(fresh.stdout).toMatch(/^run\s+greet\s+never run$/m);
    expect(fresh.stdout).toMatch(/^run\s+shout\s+never run; upstream stale: greet$/m);
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
    expect(existsSync(join(dir, 'greeting.txt'))).toBe(false);

    await ok(['run'], dir);
    await writeFile(join(dir, 'name.txt'), 'moon\n');
    const dry = await ok(['run', '--dry-run'], dir);
    expect(dry.stdout).toMatch(/^run\s+greet\s+input changed: name.txt \([0-9a-f]{8} → [0-9a-f]{8}\)$/m);
    expect(dry.stdout).toMatch(/^run\s+shout\s+upstream stale: greet$/m);
    const set = await ok(['run', '--dry-run', '--set', 'params.greeting=yo', 'greet'], dir);
    expect(set.stdout).toMatch(/^run\s+greet\s+code changed: cmd `sed "s\/\^\/hello [^`]*` → `sed "s\/\^\/yo [^`]*`; input changed: name.txt/m);
    expect(outcomes(set)).toEqual({ greet: 'run' });
    expect(await read(dir, 'greeting.txt')).toBe('hello world\n');
  });

  test('a config error exits 2 before anything is written', async () => {
    const dir = await ws('stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n    colour: blue\n');
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/pipeline\.yaml:5:5: /);
    expect(existsSync(join(dir, 'artifacts'))).toBe(false);
    expect(existsSync(join(dir, 'a.txt'))).toBe(false);
  });
});

describe('failures', () => {
  const yaml = `
stages:
  bad:
    cmd: echo "about to fail" >&2; exit 3
    outs: [bad.txt]
  after_bad:
    cmd: cp bad.txt after.txt
    deps: [bad.txt]
    outs: [after.txt]
  fine:
    cmd: echo ok > fine.txt
    outs: [fine.txt]
`;

  test('a failing stage exits 1, nothing downstream runs, nothing is committed for it', async () => {
    const dir = await ws(yaml);
    const r = await runCli(['run', 'bad', 'after_bad', '--jobs', '1'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(outcomes(r)).toEqual({ bad: 'failed', after_bad: 'skipped' });
    expect(r.stderr).toContain('[bad] about to fail');
    expect(r.stderr).toContain('error: stage bad: command exited with code 3');
    expect(r.stderr).toMatch(/error: 1 stage failed: bad$/m);
    expect(await manifests(dir)).toEqual([]);
    expect(existsSync(join(dir, 'after.txt'))).toBe(false);
  });

  test('--keep-going finishes independent stages', async () => {
    const dir = await ws(yaml);
    const r = await runCli(['run', '--keep-going', '--jobs', '1'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(outcomes(r)).toEqual({ bad: 'failed', after_bad: 'skipped', fine: 'ran' });
    expect(await read(dir, 'fine.txt')).toBe('ok\n');
  });

  test('a stage failing on data that a reused source stage brought in names itself, and the hint names that stage and how to rerun it', async () => {
    const dir = await ws('stages:\n  fetch:\n    uses: fetch\n    with:\n      url: images\n  decode:\n    uses: decode\n    needs: [fetch]\n');
    for (const split of ['train', 'test']) {
      for (const cls of ['cat', 'dog']) {
        await mkdir(join(dir, 'images', split, cls), { recursive: true });
        await writeFile(join(dir, 'images', split, cls, '0.jpg'), 'not an image');
      }
    }
    const first = await runCli(['run'], { cwd: dir });
    expect(first.code).toBe(1);
    expect(outcomes(first)).toEqual({ fetch: 'ran', decode: 'failed' });
    expect(first.stderr).toMatch(/^error: stage decode: corrupt or unreadable image /m);
    expect(first.stderr).not.toMatch(/^hint:/m); // fetch ran in this very run: its line says so
    const [fetched] = JSON.parse((await ok(['runs', '--json'], dir)).stdout) as { id: string }[];

    // The next run reuses what fetch brought in, and fails the same way: which stage to look at?
    const again = await runCli(['run'], { cwd: dir });
    expect(again.code).toBe(1);
    expect(outcomes(again)).toEqual({ fetch: 'cached', decode: 'failed' });
    const hint =
      `decode read the data of fetch, which this run reused from the store (fetch: computed by run ${fetched!.id}): ` +
      'if that data is at fault, fix it at its source and run `pipeline run fetch --force` to compute it again';
    expect(again.stderr).toContain(`\nhint: ${hint}\n`);
    const [record] = JSON.parse((await ok(['runs', '--json'], dir)).stdout) as { stages: { stage: string; hint?: string }[] }[];
    expect(record!.stages.find((st) => st.stage === 'decode')!.hint).toBe(hint);
    expect((await ok(['runs'], dir)).stdout).toContain(`      hint: ${hint}\n`);

    // Following it: fetch runs again (still the same bad bytes here, so decode still fails, with no hint).
    const forced = await runCli(['run', 'fetch', 'decode', '--force'], { cwd: dir });
    expect(outcomes(forced)).toEqual({ fetch: 'ran', decode: 'failed' });
    expect(forced.stderr).not.toMatch(/^hint:/m);

    // A command failing is the command's to explain: no hint, even after a reused source stage.
    const cmds = await ws('stages:\n  gen:\n    cmd: echo 1 > n.txt\n    outs: [n.txt]\n  bad:\n    cmd: exit 4\n    deps: [n.txt]\n    outs: [b.txt]\n');
    await runCli(['run'], { cwd: cmds });
    const cmdFail = await runCli(['run'], { cwd: cmds });
    expect(outcomes(cmdFail)).toEqual({ gen: 'cached', bad: 'failed' });
    expect(cmdFail.stderr).not.toMatch(/^hint:/m);
  });

  test('a stage killed with SIGKILL mid-write leaves a valid store and reruns', async () => {
    const dir = await ws(`
stages:
  slow:
    cmd: |
      echo $$ > slow.pid
      head -c 300000 /dev/zero > big.bin
      if [ -f hang ]; then echo MARKER-WRITING; exec sleep 60; fi
      echo end >> big.bin
    outs: [big.bin]
  after:
    cmd: wc -c < big.bin > size.txt
    deps: [big.bin]
    outs: [size.txt]
`);
    await writeFile(join(dir, 'hang'), '');
    let cli: ChildProcess | undefined;
    const killed = await runCli(['run'], {
      cwd: dir,
      onOutput: (chunk, child) => {
        if (chunk.includes('MARKER-WRITING') && !cli) {
          cli = child;
          child.kill('SIGKILL');
        }
      },
    });
    expect(killed.signal).toBe('SIGKILL');
    // The command runs in its own process group; the dead CLI could not stop it, so we do.
    const stagePid = Number(await read(dir, 'slow.pid'));
    try {
      process.kill(-stagePid, 'SIGKILL');
    } catch {
      // already gone
    }
    expect(await manifests(dir)).toEqual([]);
    expect(existsSync(join(dir, 'artifacts', 'lock'))).toBe(true); // left behind by the killed run

    const status = await ok(['status'], dir);
    expect(status.stdout).toMatch(/^slow\s+stale: never run$/m);

    await rm(join(dir, 'hang'));
    const again = await ok(['run'], dir);
    expect(again.stderr).toContain(`broke the store lock left by pid ${cli!.pid} (pipeline run), which is no longer running`);
    expect(outcomes(again)).toEqual({ slow: 'ran', after: 'ran' });
    expect(await read(dir, 'size.txt')).toBe('300004\n');

    const verify = await ok(['verify'], dir);
    expect(verify.stdout).toMatch(/checked 2 objects .*: 0 corrupt, 0 missing/);
    const runs = await ok(['runs'], dir);
    expect(runs.stdout).toMatch(/killed\s+pipeline run/);
  });

  test('Ctrl-C stops the running stage, commits nothing, releases the lock, exits 130', async () => {
    const dir = await ws(`
stages:
  long:
    cmd: echo $$ > long.pid; echo partial > long.txt; echo STARTED; exec sleep 60
    outs: [long.txt]
  next:
    cmd: cp long.txt next.txt
    deps: [long.txt]
    outs: [next.txt]
`);
    let sent = false;
    const r = await runCli(['run'], {
      cwd: dir,
      onOutput: (chunk, child) => {
        if (chunk.includes('STARTED') && !sent) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(r).toMatchObject({ code: 130 });
    expect(r.stderr).toContain('interrupted: stopping running stages');
    expect(r.stdout).toMatch(/^aborted\s+long\b/m);
    expect(r.stdout).toMatch(/^skipped\s+next\b/m);
    expect(alive(Number(await read(dir, 'long.pid')))).toBe(false);
    expect(await manifests(dir)).toEqual([]);
    expect(existsSync(join(dir, 'artifacts', 'lock'))).toBe(false);
    expect(existsSync(join(dir, 'artifacts', 'lock.json'))).toBe(false);
    const runs = JSON.parse((await runCli(['runs', '--json'], { cwd: dir })).stdout) as { outcome: string }[];
    expect(runs[0]!.outcome).toBe('interrupted');
  });
});

describe('two concurrent runs', () => {
  test('the second waits for the lock, names the holder, then finds everything cached', async () => {
    const dir = await ws(`
stages:
  hold:
    cmd: |
      echo HOLDING
      ${waitFor('release', '1200')}
      echo held > held.txt
    outs: [held.txt]
`);
    let second: Promise<CliResult> | undefined;
    let firstPid = 0;
    const first = await runCli(['run'], {
      cwd: dir,
      onOutput: (chunk, child) => {
        if (chunk.includes('HOLDING') && !second) {
          firstPid = child.pid!;
          second = runCli(['run'], {
            cwd: dir,
            onOutput: (c) => {
              if (c.includes('waiting for the store lock')) void writeFile(join(dir, 'release'), '');
            },
          });
        }
      },
    });
    expect(first.code).toBe(0);
    expect(outcomes(first)).toEqual({ hold: 'ran' });
    const r2 = await second!;
    expect(r2.code).toBe(0);
    expect(r2.stderr).toMatch(new RegExp(`waiting for the store lock, held by pid ${firstPid} \\(pipeline run\\) since \\d{4}-`));
    expect(r2.stderr.match(/waiting for the store lock/g)).toHaveLength(1);
    expect(outcomes(r2)).toEqual({ hold: 'cached' });
  });

  test('a run gives up after --lock-timeout with a clear error', async () => {
    const dir = await ws(`
stages:
  hold:
    cmd: |
      echo HOLDING
      ${waitFor('release', '1200')}
      echo held > held.txt
    outs: [held.txt]
`);
    // The second run starts once the first holds the lock and is inside its stage.
    let startSecond!: (r: Promise<CliResult>) => void;
    const second = new Promise<CliResult>((resolve) => (startSecond = (r) => void r.then(resolve)));
    let started = false;
    const first = runCli(['run'], {
      cwd: dir,
      onOutput: (chunk) => {
        if (chunk.includes('HOLDING') && !started) {
          started = true;
          startSecond(runCli(['run', '--lock-timeout', '0'], { cwd: dir }));
        }
      },
    });
    const r2 = await second;
    await writeFile(join(dir, 'release'), '');
    expect((await first).code).toBe(0);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/error: the store .*artifacts is locked by pid \d+ \(pipeline run\) since .*; gave up after 0s \(--lock-timeout\)/);
  });
});

describe('offline image folders without editing pipeline.yaml', () => {
  test('--set fetch.url=DIR --unset fetch.md5 copies a local folder; with the md5 left in it is a clear error', async () => {
    const dir = await ws(
      [
        'stages:',
        '  fetch:',
        '    uses: fetch',
        '    with:',
        '      url: https://example.invalid/cifar-10-binary.tar.gz',
        '      md5: c32a1d4ab5d03f1284b67883e8d87530',
      ].join('\n') + '\n',
    );
    const images = join(dir, 'pets');
    await mkdir(join(images, 'train', 'cat'), { recursive: true });
    await writeFile(join(images, 'train', 'cat', '0.jpg'), 'stand-in bytes');
    const kept = await runCli(['run', '--set', `fetch.url=${images}`], { cwd: dir });
    expect(kept).toMatchObject({ code: 1, stderr: expect.stringContaining(`md5/sha256 apply to a file, but ${images} is a directory`) });
    for (const drop of [
      ['--unset', 'fetch.md5'],
      ['--set', 'fetch.md5='],
    ]) {
      await rm(join(dir, 'artifacts'), { recursive: true, force: true });
      const r = await ok(['run', '--set', `fetch.url=${images}`, ...drop], dir);
      expect(outcomes(r)).toEqual({ fetch: 'ran' });
      // A directory is fetched as a pack (layout auto).
      const pack = await PackReader.open(join(dir, 'artifacts/stages/fetch/pack'));
      try {
        expect(pack.read(pack.entry('train/cat/0.jpg')!).toString()).toBe('stand-in bytes');
      } finally {
        pack.close();
      }
    }
  });
});
