// Runs the built CLI (dist/cli/main.js) as a child process, as users do.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CLI = resolve(new URL('../../cli/main.js', import.meta.url).pathname);

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string>;
  /** Called with the child as soon as it starts (to signal or kill it). */
  onSpawn?: (child: ChildProcess) => void;
  /** Called with each stdout/stderr chunk (to react to progress, e.g. kill at a marker). */
  onOutput?: (chunk: string, child: ChildProcess) => void;
}

export function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd,
      env: { ...process.env, NO_COLOR: '1', CI: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      options.onOutput?.(d, child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      options.onOutput?.(d, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
    options.onSpawn?.(child);
  });
}

/** A fresh temp workspace holding `pipeline.yaml` with the given text. */
export async function workspace(pipelineYaml: string, prefix = 'ws-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, 'pipeline.yaml'), pipelineYaml);
  return dir;
}
