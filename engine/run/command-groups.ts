// Records of the process groups a run's commands run in (artifacts/state/commands/<pgid>.json), so
// that the next run, holding the lock, can stop whatever a dead run left running before it runs
// the same stages again. Commands also stop by themselves when their run dies (run/cmd-stage.ts);
// this covers the moment between the death and that, and a watchdog that was itself killed.
import { readdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isErrno, isSyntaxError, writeFileAtomic } from '../store/fs-tree.js';
import { groupAlive, processStartTime } from '../store/processes.js';

interface GroupRecord {
  pgid: number;
  /** Start time of the group leader: a later process reusing the pid is not this group. */
  leaderStart?: string;
  ownerPid: number;
  stage: string;
  hostname: string;
}

export interface CommandGroups {
  started(pgid: number, stage: string): Promise<void>;
  finished(pgid: number): Promise<void>;
}

export function commandGroups(dir: string): CommandGroups {
  return {
    async started(pgid, stage) {
      const record: GroupRecord = { pgid, leaderStart: processStartTime(pgid), ownerPid: process.pid, stage, hostname: hostname() };
      await writeFileAtomic(join(dir, `${pgid}.json`), JSON.stringify(record) + '\n');
    },
    async finished(pgid) {
      await rm(join(dir, `${pgid}.json`), { force: true });
    },
  };
}

/**
 * Kills (SIGKILL) every recorded group of another run on this host that still exists, waits until
 * they are gone, and drops the records. Call only with the store lock held. Returns what it stopped.
 */
export async function stopLeftoverGroups(dir: string, options: { waitMs?: number } = {}): Promise<{ pgid: number; stage: string; ownerPid: number }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
  const stopped: { pgid: number; stage: string; ownerPid: number }[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const file = join(dir, name);
    let record: GroupRecord;
    try {
      record = JSON.parse(await readFile(file, 'utf8')) as GroupRecord;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) continue;
      if (!isSyntaxError(err)) throw err;
      await rm(file, { force: true });
      continue;
    }
    if (record.hostname !== hostname() || record.ownerPid === process.pid) continue;
    // A live leader with another start time is a new process that reused the pid: our group is gone
    // (a pid still in use as a group id is never reused).
    const leaderNow = processStartTime(record.pgid);
    const same = record.leaderStart === undefined || leaderNow === undefined || leaderNow === record.leaderStart;
    if (same && groupAlive(record.pgid)) {
      try {
        process.kill(-record.pgid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
      const deadline = Date.now() + (options.waitMs ?? 10_000);
      while (groupAlive(record.pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      stopped.push({ pgid: record.pgid, stage: record.stage, ownerPid: record.ownerPid });
    }
    await rm(file, { force: true });
  }
  return stopped;
}
