// Runs a `cmd:` stage: the command in bash with cwd = the pipeline root, its output lines
// forwarded to the logger. The command runs in its own process group so that aborting the stage
// (Ctrl-C, another stage failing) stops everything it started, not just the shell; and a watchdog
// in that group stops it when the pipeline process dies (see WRAPPER).
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname } from 'node:path';
import type { Logger } from '../contract.js';
import { AbortedError, StageError } from '../errors.js';
import { ownedOutPath } from './owned-paths.js';
import { commandDiskFull, commandOutOfSpace, DiskFullWatch } from './disk-full.js';
import type { CommandGroups } from './command-groups.js';

export interface CmdOptions {
  stage: string;
  cmd: string;
  /** Extra environment (params referenced by the command, see config/interpolate.ts). */
  env?: Record<string, string>;
  root: string;
  outs: readonly string[];
  signal: AbortSignal;
  log: Logger;
  /** Where the command's process group is recorded while it runs (see run/command-groups.ts). */
  groups?: CommandGroups;
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

/**
 * Runs in the command's session (as its leader, so its pid is the group id). Fd 3 is a pipe whose
 * other end only the pipeline process holds: a watchdog reads it, and when that process dies —
 * even by SIGKILL, which no handler sees — the read ends and the watchdog kills the whole group.
 * The command itself runs as a child without fd 3, so its own `wait` never waits for the watchdog.
 * Nothing starts before the first line on fd 3, which the pipeline writes once the group is
 * recorded (command-groups.ts): a pipeline killed in between leaves no command the next run
 * cannot see (bash reads a pipe a byte at a time, so the watchdog gets the rest).
 */
const WRAPPER = `read -r _ <&3 || exit 1
( exec <&3 3<&- >/dev/null 2>&1; while read -r _; do :; done; kill -KILL 0 ) &
exec 3<&-
bash -c "$1"`;

export async function runCmd(opts: CmdOptions): Promise<void> {
  opts.signal.throwIfAborted();
  await prepareOuts(opts.root, opts.outs, opts.stage);
  const diskFull = new DiskFullWatch();
  const forward = (l: string) => {
    diskFull.see(l);
    opts.log.info(l);
  };
  const out = lineSplitter(forward);
  const err = lineSplitter(forward);
  await opts.groups?.prepare?.(); // before the command can fill the disk
  const proc = spawn('bash', ['-c', WRAPPER, 'pipeline-cmd', SHELL_PREFIX + opts.cmd], {
    cwd: opts.root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env, PIPELINE_STAGE: opts.stage, PIPELINE_ROOT: opts.root },
  });
  // Not 'close': the watchdog holds fd 3 open until the group is killed below. The command's own
  // output streams are waited for, as before.
  const streamClosed = (s: NodeJS.ReadableStream) => new Promise<void>((resolve) => s.once('close', () => resolve()));
  const drained = Promise.all([streamClosed(proc.stdout!), streamClosed(proc.stderr!)]);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  proc.stdout!.on('data', (d: Buffer) => out.push(d));
  proc.stderr!.on('data', (d: Buffer) => err.push(d));
  // The go line may meet a wrapper that is already gone (killed from outside): not an error here.
  (proc.stdio[3] as NodeJS.EventEmitter | null)?.on('error', () => {});
  const pgid = proc.pid;
  if (pgid !== undefined) runningGroups.add(pgid);

  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (sig: NodeJS.Signals) => {
    if (pgid === undefined) return;
    try {
      process.kill(-pgid, sig);
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
    if (pgid !== undefined) await opts.groups?.started(pgid, opts.stage);
    (proc.stdio[3] as NodeJS.WritableStream | null)?.write('\n'); // recorded: the command may start
    const result = await exited;
    await drained;
    out.flush();
    err.flush();
    if (opts.signal.aborted) throw new AbortedError(`stage ${opts.stage} interrupted`);
    if (result.code !== 0) {
      const exit = describeExit(result.code, result.signal);
      const killed = result.code === null || result.code > 128;
      const outOfSpace = await commandOutOfSpace(opts.root, opts.outs, diskFull.line, killed);
      if (outOfSpace) throw commandDiskFull(opts.stage, exit, outOfSpace);
      throw new StageError(`stage ${opts.stage}: command ${exit}`);
    }
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    if (killTimer) clearTimeout(killTimer);
    // Whatever the command left running in its group goes too (the watchdog included).
    killGroup('SIGKILL');
    (proc.stdio[3] as { destroy?: () => void } | null)?.destroy?.();
    if (pgid !== undefined) {
      runningGroups.delete(pgid);
      await opts.groups?.finished(pgid);
    }
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (code === null) return `was killed by ${signal ?? 'a signal'}`;
  // The command runs under a wrapper shell, which reports a signal death as 128 + the signal.
  const name = code > 128 ? Object.entries(osConstants.signals).find(([, n]) => n === code - 128)?.[0] : undefined;
  return name ? `was killed by ${name}` : `exited with code ${code}`;
}
