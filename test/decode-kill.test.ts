// Issue 24, "SIGKILL while shards are written": decode is killed (with its process group) while
// its dataset's shards are being written into the store's tmp/ area. The store it leaves must be
// one `verify` trusts, and the rerun must finish with exactly the dataset an uninterrupted run makes.
// Coordination: the test waits until shard files exist in the store's tmp/ area, then kills.
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, runCli, workspace, type CliResult } from './helpers/cli.js';
import { cifarSource } from './helpers/dataset.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Shard files being written under the store's tmp/ area (any depth). */
async function shardsInTmp(dir: string): Promise<number> {
  const tmp = join(dir, 'artifacts', 'tmp');
  if (!existsSync(tmp)) return 0;
  const entries = await readdir(tmp, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((e) => /(^|\/)shards\/[^/]+\.npy/.test(e)).length;
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 4000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function ok(args: string[], cwd: string): Promise<CliResult> {
  const r = await runCli(args, { cwd });
  expect(r).toMatchObject({ code: 0 });
  return r;
}

/** decode's outputs as the store records them: every file's path and digest. */
async function outputsOf(dir: string): Promise<Array<{ path: string; digest: string }>> {
  const shown = JSON.parse((await ok(['show', 'decode', '--json'], dir)).stdout) as { outputs: Array<{ path: string; digest: string }> };
  return shown.outputs.map(({ path, digest }) => ({ path, digest }));
}

describe('decode killed while writing shards', () => {
  test('leaves a store verify trusts, and the rerun makes the dataset an uninterrupted run makes', async () => {
    // The generated stand-in has 5,000 images (5 MiB of pixels = several 1 MiB shards), enough
    // for the kill to land while shards are being written; the real archive has 60,000.
    const source = await cifarSource({ perClassTrain: 400, perClassTest: 100 });
    const yaml = `
stages:
  fetch:
    uses: fetch
    with: { url: ${JSON.stringify(source.archive)} }
  decode:
    uses: decode
    needs: [fetch]
    with: { shard_mb: 1 }
`;
    const killed = await workspace(yaml, 'decode-kill-');
    const clean = await workspace(yaml, 'decode-kill-clean-');
    dirs.push(killed, clean);
    await ok(['run', 'fetch'], killed);

    const child = spawn(process.execPath, [CLI, 'run', 'decode'], {
      cwd: killed,
      env: { ...process.env, NO_COLOR: '1', CI: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    await waitFor(async () => (await shardsInTmp(killed)) >= 1 || child.exitCode !== null, 'a shard in the store tmp/ area');
    process.kill(-child.pid!, 'SIGKILL');
    const end = await exited;
    // The kill landed mid-write: decode never finished (no "ran decode" line, killed by the signal).
    expect({ signal: end.signal, ranDecode: /^ran\s+decode/m.test(output) }).toEqual({ signal: 'SIGKILL', ranDecode: false });

    const verified = await runCli(['verify'], { cwd: killed });
    expect(verified).toMatchObject({ code: 0 });
    expect((await runCli(['status'], { cwd: killed })).stdout).toMatch(/decode/);

    const rerun = await ok(['run', 'decode'], killed);
    expect(rerun.stdout).toMatch(/^ran\s+decode/m);
    await ok(['run', 'decode'], clean);
    expect(await outputsOf(killed)).toEqual(await outputsOf(clean));
    await ok(['verify'], killed);
    // Nothing of the killed run is left behind once a run has cleaned tmp/.
    expect(await shardsInTmp(killed)).toBe(0);
  });
});
