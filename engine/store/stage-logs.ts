// What the terminal showed for each stage (its log lines, not progress redraws), kept per run and
// attempt in the run area: artifacts/runs/<run-id>/logs/<stage>[.attemptN].log. Retention deletes
// a run's folder with its record (engine/schedule/apply-retention.ts). A log is bounded: its head
// is written as it comes, and past HEAD_BYTES only the last TAIL_BYTES are kept, written when the
// stage's log closes. Writing a log never fails a run: a write error (a full disk) ends that log.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const LOG_HEAD_BYTES = 256 * 1024;
export const LOG_TAIL_BYTES = 256 * 1024;

/** The folder of run `runId`'s stage logs. */
export function stageLogDir(runsDir: string, runId: string): string {
  return join(runsDir, runId, 'logs');
}

/** The log file of one attempt of a stage (the first attempt's has no suffix). */
export function stageLogFile(runsDir: string, runId: string, stage: string, attempt = 1): string {
  return join(stageLogDir(runsDir, runId), attempt > 1 ? `${stage}.attempt${attempt}.log` : `${stage}.log`);
}

/** One log file: the head written at once, the tail kept in memory until close. */
export class BoundedLog {
  private fd: number | undefined;
  private failed = false;
  private written = 0;
  private readonly tail: string[] = [];
  private tailBytes = 0;
  private omitted = 0;

  constructor(
    readonly file: string,
    private readonly limits = { head: LOG_HEAD_BYTES, tail: LOG_TAIL_BYTES },
  ) {}

  /** Creates the file (so a stage that printed nothing still has its, empty, log). */
  open(): void {
    if (this.fd !== undefined || this.failed) return;
    try {
      mkdirSync(join(this.file, '..'), { recursive: true });
      this.fd = openSync(this.file, 'a');
    } catch {
      this.failed = true;
    }
  }

  line(text: string): void {
    const data = text.endsWith('\n') ? text : `${text}\n`;
    const bytes = Buffer.byteLength(data);
    if (this.written + bytes <= this.limits.head) {
      this.write(data);
      this.written += bytes;
      return;
    }
    this.written = this.limits.head; // the head is closed: later lines go to the tail
    this.tail.push(data);
    this.tailBytes += bytes;
    while (this.tailBytes > this.limits.tail && this.tail.length > 0) {
      this.tailBytes -= Buffer.byteLength(this.tail.shift()!);
      this.omitted++;
    }
  }

  close(): void {
    if (this.omitted > 0) this.write(`[... ${this.omitted} line${this.omitted === 1 ? '' : 's'} not kept (logs keep their first and last lines) ...]\n`);
    for (const data of this.tail.splice(0)) this.write(data);
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // nothing more to keep
      }
      this.fd = undefined;
    }
  }

  private write(data: string): void {
    this.open();
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, data);
    } catch {
      this.failed = true;
      try {
        closeSync(this.fd);
      } catch {
        // already unusable
      }
      this.fd = undefined;
    }
  }
}

/** The logs of one run's stages: lines go to the stage's current attempt's file. */
export class RunStageLogs {
  private readonly current = new Map<string, BoundedLog>();
  /** A run id is one path component (never a way out of the run area). */
  private readonly keeps: boolean;

  constructor(
    private readonly runsDir: string,
    private readonly runId: string,
  ) {
    this.keeps = runId !== '' && !/[/\\]|^\.\.?$/.test(runId);
  }

  line(stage: string, text: string): void {
    if (!this.keeps) return;
    this.of(stage).line(text);
  }

  /** Attempt `n` of `stage` starts: its lines go to a file of their own from now on. */
  attempt(stage: string, n: number): void {
    if (!this.keeps) return;
    if (n > 1) {
      this.current.get(stage)?.close();
      this.current.set(stage, new BoundedLog(stageLogFile(this.runsDir, this.runId, stage, n)));
    }
    this.of(stage).open();
  }

  /** The stage is done: its log is complete (the tail written). */
  finish(stage: string): void {
    this.current.get(stage)?.close();
    this.current.delete(stage);
  }

  close(): void {
    for (const log of this.current.values()) log.close();
    this.current.clear();
  }

  private of(stage: string): BoundedLog {
    let log = this.current.get(stage);
    if (!log) {
      log = new BoundedLog(stageLogFile(this.runsDir, this.runId, stage));
      this.current.set(stage, log);
    }
    return log;
  }
}
