// Run records: one JSON file per `pipeline run` under artifacts/runs/, named so they sort by start time.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno, writeFileAtomic } from './fs-tree.js';

export type StageOutcomeKind = 'cached' | 'ran' | 'failed' | 'skipped' | 'aborted';

export interface StageRunRecord {
  stage: string;
  outcome: StageOutcomeKind;
  key?: string;
  durationMs: number;
  /** Why it ran (text), or why it was skipped. */
  reason?: string;
  error?: string;
  /** Workspace outs restored from the store (cmd stages on a cache hit). */
  restored?: string[];
}

export interface RunRecord {
  id: string;
  command: string[];
  pid: number;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  /** `running` while in progress: a record left `running` belongs to a run that was killed. */
  outcome: 'running' | 'ok' | 'failed' | 'interrupted';
  stages: StageRunRecord[];
}

export function newRunId(now = new Date()): string {
  // 20261126T054001123Z-<pid>: sorts by start time, unique per process.
  return `${now.toISOString().replace(/[-:.]/g, '')}-${process.pid}`;
}

export class RunLog {
  constructor(readonly dir: string) {}

  async write(record: RunRecord): Promise<void> {
    await writeFileAtomic(join(this.dir, `${record.id}.json`), JSON.stringify(record, null, 2) + '\n');
  }

  /** All records, oldest first (unreadable files are skipped). */
  async list(): Promise<RunRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const records: RunRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      try {
        records.push(JSON.parse(await readFile(join(this.dir, name), 'utf8')) as RunRecord);
      } catch {
        // A torn or foreign file is not history.
      }
    }
    return records;
  }
}
