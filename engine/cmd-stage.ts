// Runs a `cmd:` stage: the command in bash (via zx) with cwd = the pipeline root, its output lines
// forwarded to the logger. The command runs in its own process group so that aborting the stage
// (Ctrl-C, another stage failing) stops everything it started, not just the shell.
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from './contract.js';
import { AbortedError, StageError } from './errors.js';
import { ownedOutPath } from './owned-paths.js';

export interface CmdOptions {
  stage: string;
  cmd: string;
  /** Extra environment (params referenced by the command, see engine/interpolate.ts). */
  env?: Record<string, string>;
  root: string;
  outs: readonly string[];
  signal: AbortSignal;
  log: Logger;
  /** Grace period between SIGTERM and SIGKILL when aborting. */
  killGraceMs?: number;
}

/** Process groups of the commands running now, so a hard exit can stop them too. */
const runningGroups = new Set<number>();

/** Sends `signal` to every running command's process group (synchronous: usable right before exit). */
export function signalRunningCommands(signal: NodeJS.Signals): void {
  for (const pgid of runningGroups) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** Shell options like CI runners use: stop at the first failing command, including inside pipes. */
const SHELL_PREFIX = 'set -eo pipefail;';

/** Deletes the outs (a command must not see or append to stale outputs) and creates their parent dirs. */
export async function prepareOuts(root: string, outs: readonly string[], stage: string): Promise<void> {
  for (const out of outs) {
    const abs = await ownedOutPath(root, out, stage);
    await rm(abs, { recursive: true, force: true });
    await mkdir(dirname(abs), { recursive: true });
  }
}

/** Splits a byte stream into lines for the logger. */
function lineSplitter(emit: (line: string) => void): { push(data: Buffer): void; flush(): void } {
  let rest = '';
  return {
    push(data) {
      const text = rest + data.toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) emit(l.replace(/\r$/, ''));
    },
    flush() {
      if (rest) emit(rest);
      rest = '';
    },
  };
}

export async function runCmd(opts: CmdOptions): Promise<void> {
  opts.signal.throwIfAborted();
  await prepareOuts(opts.root, opts.outs, opts.stage);
  const { $ } = await import('zx');
  const out = lineSplitter((l) => opts.log.info(l));
  const err = lineSplitter((l) => opts.log.info(l));
  const shell = $({
    cwd: opts.root,
    quiet: true,
    nothrow: true,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    prefix: SHELL_PREFIX,
    postfix: '',
    env: { ...process.env, ...opts.env, PIPELINE_STAGE: opts.stage, PIPELINE_ROOT: opts.root },
    log: (entry) => {
      if (entry.kind === 'stdout') out.push(entry.data);
      else if (entry.kind === 'stderr') err.push(entry.data);
    },
  });
  // The command text is used verbatim (a template with no interpolations, so zx quotes nothing).
  const pieces = Object.assign([opts.cmd], { raw: [opts.cmd] }) as unknown as TemplateStringsArray;
  const proc = shell(pieces);
  const pgid = proc.pid;
  if (pgid !== undefined) runningGroups.add(pgid);

  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (sig: NodeJS.Signals) => {
    const pid = proc.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // Already gone.
    }
  };
  const onAbort = () => {
    killGroup('SIGTERM');
    killTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 3000);
    killTimer.unref();
  };
  opts.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await proc;
    out.flush();
    err.flush();
    if (opts.signal.aborted) throw new AbortedError(`stage ${opts.stage} interrupted`);
    if (result.exitCode !== 0) {
      const how = result.exitCode === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited with code ${result.exitCode}`;
      throw new StageError(`stage ${opts.stage}: command ${how}`);
    }
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    if (killTimer) clearTimeout(killTimer);
    // Whatever the command left running in its group goes too.
    killGroup('SIGKILL');
    if (pgid !== undefined) runningGroups.delete(pgid);
  }
}
