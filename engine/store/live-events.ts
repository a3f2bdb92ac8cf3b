// A run's live state for readers in other processes (`pipeline ui`): an append-only JSON-lines file
// in the run area, artifacts/runs/<run-id>/events.jsonl, with the stages planned, each stage's state
// changes, its log lines and its progress (throttled: at most PROGRESS_INTERVAL_MS apart per stage,
// so a fast loop does not write a line per batch). Writing it never fails a run: the first write
// error (a full disk) ends the file, and past MAX_BYTES only state changes are written.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const LIVE_EVENTS_FILE = 'events.jsonl';
export const PROGRESS_INTERVAL_MS = 500;
const MAX_BYTES = 8 * 1024 * 1024;

/** One line of events.jsonl. `at` is milliseconds since the epoch. */
export type LiveEvent =
  | { at: number; type: 'plan'; stages: { name: string; kind: string; needs: string[] }[] }
  | { at: number; type: 'stage'; stage: string; state: 'running' | 'cached' | 'ran' | 'failed' | 'skipped' | 'aborted'; durationMs?: number; reason?: string }
  | {
      at: number;
      type: 'progress';
      stage: string;
      label: string;
      value: number;
      total: number;
      unit?: string;
      status?: string;
      rate?: number;
      etaSeconds?: number;
    }
  | { at: number; type: 'log'; stage: string; line: string };

/** The events file of run `runId`. */
export function liveEventsFile(runsDir: string, runId: string): string {
  return join(runsDir, runId, LIVE_EVENTS_FILE);
}

interface ProgressState {
  label: string;
  total: number;
  unit?: string;
  value: number;
  status?: string;
  startedAt: number;
  lastWritten: number;
}

export class RunLiveEvents {
  private fd: number | undefined;
  private failed: boolean;
  private written = 0;
  private readonly progressOf = new Map<string, ProgressState>();

  constructor(
    private readonly runsDir: string,
    private readonly runId: string,
    private readonly now: () => number = Date.now,
  ) {
    // A run id is one path component (never a way out of the run area).
    this.failed = runId === '' || /[/\\]|^\.\.?$/.test(runId);
  }

  plan(stages: { name: string; kind: string; needs: string[] }[]): void {
    this.write({ at: this.now(), type: 'plan', stages }, true);
  }

  stage(stage: string, state: Extract<LiveEvent, { type: 'stage' }>['state'], extra: { durationMs?: number; reason?: string } = {}): void {
    if (state !== 'running') this.progressOf.delete(stage);
    this.write({ at: this.now(), type: 'stage', stage, state, ...extra }, true);
  }

  line(stage: string, line: string): void {
    this.write({ at: this.now(), type: 'log', stage, line }, false);
  }

  progressStart(stage: string, label: string, total: number, unit?: string): void {
    const at = this.now();
    this.progressOf.set(stage, { label, total, unit, value: 0, startedAt: at, lastWritten: 0 });
    this.flushProgress(stage, true);
  }

  progressAt(stage: string, value: number | ((v: number) => number), status?: string, force = false): void {
    const p = this.progressOf.get(stage);
    if (!p) return;
    p.value = typeof value === 'number' ? value : value(p.value);
    if (status !== undefined) p.status = status;
    this.flushProgress(stage, force);
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // nothing more to write
    }
    this.fd = undefined;
  }

  private flushProgress(stage: string, force: boolean): void {
    const p = this.progressOf.get(stage)!;
    const at = this.now();
    if (!force && at - p.lastWritten < PROGRESS_INTERVAL_MS) return;
    p.lastWritten = at;
    const seconds = (at - p.startedAt) / 1000;
    const rate = seconds > 0 ? p.value / seconds : undefined;
    const etaSeconds = rate && rate > 0 && p.total > 0 ? Math.max(0, (p.total - p.value) / rate) : undefined;
    this.write(
      {
        at,
        type: 'progress',
        stage,
        label: p.label,
        value: p.value,
        total: p.total,
        ...(p.unit ? { unit: p.unit } : {}),
        ...(p.status ? { status: p.status } : {}),
        ...(rate !== undefined ? { rate } : {}),
        ...(etaSeconds !== undefined ? { etaSeconds } : {}),
      },
      false,
    );
  }

  private write(event: LiveEvent, essential: boolean): void {
    if (this.failed) return;
    const data = JSON.stringify(event) + '\n';
    if (!essential && this.written + data.length > MAX_BYTES) return;
    try {
      if (this.fd === undefined) {
        mkdirSync(join(this.runsDir, this.runId), { recursive: true });
        this.fd = openSync(liveEventsFile(this.runsDir, this.runId), 'a');
      }
      writeSync(this.fd, data);
      this.written += data.length;
    } catch {
      this.failed = true;
      this.close();
    }
  }
}
