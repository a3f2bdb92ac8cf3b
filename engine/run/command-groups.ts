// Records of the process groups a run's commands run in (artifacts/state/commands/<pgid>.json), so
// that the next run, holding the lock, can stop whatever a dead run left running before it runs
// the same stages again. Commands also stop by themselves when their run dies (run/cmd-stage.ts);
// this covers the moment between the death and that, and a watchdog that was itself killed.
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isErrno, isSyntaxError, randomSuffix, writeFileAtomic } from '../store/fs-tree.js';
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
  /**
   * Before the command starts: reserves the space its record will take. A command may fill the
   * disk before its process group is known and recorded; the record then goes into that space.
   */
  prepare?(): Promise<void>;
  started(pgid: number, stage: string): Promise<void>;
  finished(pgid: number): Promise<void>;
}

/** Bytes reserved for a group record (a record is ~150 bytes). */
const RESERVED_BYTES = 1024;
const RESERVED_PREFIX = '.reserved-';

export function commandGroups(dir: string): CommandGroups {
  let reserved: string | undefined;
  return {
    async prepare() {
      await mkdir(dir, { recursive: true });
      const path = join(dir, `${RESERVED_PREFIX}${process.pid}-${randomSuffix()}`);
      await writeFile(path, ' '.repeat(RESERVED_BYTES));
      reserved = path;
    },
    async started(pgid, stage) {
      const record: GroupRecord = { pgid, leaderStart: processStartTime(pgid), ownerPid: process.pid, stage, hostname: hostname() };
      const text = JSON.stringify(record) + '\n';
      const spare = reserved;
      reserved = undefined;
      if (spare && Buffer.byteLength(text) <= RESERVED_BYTES) {
        // Written over the reserved bytes, then renamed: no new space needed.
        const handle = await open(spare, 'r+');
        try {
          await handle.write(text, 0);
          await handle.truncate(Buffer.byteLength(text));
        } finally {
          await handle.close();
        }
        await rename(spare, join(dir, `${pgid}.json`));
        return;
      }
      if (spare) await rm(spare, { force: true });
      await writeFileAtomic(join(dir, `${pgid}.json`), text);
    },
    async finished(pgid) {
      if (reserved) await rm(reserved, { force: true });
      reserved = undefined;
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
  // Reservations another run left (it died between reserving and starting its command).
  for (const name of names.filter((n) => n.startsWith(RESERVED_PREFIX) && !n.startsWith(`${RESERVED_PREFIX}${process.pid}-`))) {
    await rm(join(dir, name), { force: true });
  }
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
