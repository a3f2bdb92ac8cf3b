// `pipeline logs [RUN] STAGE [--follow]`: a stage's kept output (engine/store/stage-logs.ts) from a
// run, by default the latest run that has it; every attempt in order. --follow prints lines as a
// running run writes them, until it ends.
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { UsageError } from '../../engine/errors.js';
import type { RunLog, RunRecord } from '../../engine/store/runs.js';
import { stageLogFile } from '../../engine/store/stage-logs.js';
import type { GlobalOptions } from '../global-options.js';
import { findRun } from '../run-ref.js';
import { openSession } from '../session.js';

interface LogsOptions {
  follow?: boolean;
}

/** How often --follow looks for new lines (and whether the run ended). */
const FOLLOW_POLL_MS = 250;

export function register(program: Command): void {
  program
    .command('logs')
    .description("print a stage's output kept from a run (default: the latest run that has it), each attempt in order")
    .argument('[run]', 'run id, a unique prefix of it, or latest (default: the latest run that has the stage)')
    .argument('[stage]', 'the stage (required; a single argument is the stage)')
    .option('-f, --follow', 'keep printing lines as the run writes them, until it ends')
    .action(async (first: string | undefined, second: string | undefined, options: LogsOptions, command: Command) => {
      // Commander fills arguments in order: with one, it is the stage (RUN is the optional one).
      const [runText, stage] = second === undefined ? [undefined, first] : [first, second];
      if (stage === undefined) throw new UsageError('logs: name the stage (pipeline logs [RUN] STAGE)');
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const runs = session.store.runs;
      const records = await runs.list();
      const has = (r: RunRecord) => existsSync(stageLogFile(runs.dir, r.id, stage));
      let record: RunRecord;
      if (runText === undefined) {
        const found = [...records].reverse().find(has);
        if (!found) throw new UsageError(`no run has kept output of stage ${stage} (pipeline runs lists the runs)`);
        record = found;
      } else {
        record = findRun(records, runText);
        if (!has(record)) {
          const entry = record.stages.find((s) => s.stage === stage);
          const why = entry ? `it was ${entry.outcome} there` : 'it is not one of its stages';
          throw new UsageError(`run ${record.id} kept no output of stage ${stage} (${why})`);
        }
      }
      await printLogs(runs, record, stage, options.follow === true);
    });
}

/** Prints each attempt's log; following, waits for more until the run is no longer running. */
async function printLogs(runs: RunLog, record: RunRecord, stage: string, follow: boolean): Promise<void> {
  const offsets = new Map<number, number>();
  let shown = 0; // attempts whose header or lines were printed
  for (;;) {
    // Read the record before the files: lines written before it said the run ended are printed below.
    const running = follow && (await stillRunning(runs, record.id));
    for (let attempt = 1; existsSync(stageLogFile(runs.dir, record.id, stage, attempt)); attempt++) {
      const more = attempt > 1 || existsSync(stageLogFile(runs.dir, record.id, stage, 2));
      if (more && attempt > shown) process.stdout.write(`== ${stage}, attempt ${attempt} ==\n`);
      shown = Math.max(shown, attempt);
      offsets.set(attempt, await printFrom(stageLogFile(runs.dir, record.id, stage, attempt), offsets.get(attempt) ?? 0));
    }
    if (!running) return;
    await sleep(FOLLOW_POLL_MS);
  }
}

/** Prints the file's bytes from `offset` on; returns the new offset. */
async function printFrom(file: string, offset: number): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size <= offset) return offset;
    const buffer = Buffer.alloc(size - offset);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    process.stdout.write(buffer.subarray(0, bytesRead));
    return offset + bytesRead;
  } finally {
    await handle.close();
  }
}

async function stillRunning(runs: RunLog, id: string): Promise<boolean> {
  const record = (await runs.list()).find((r) => r.id === id);
  if (!record || record.outcome !== 'running') return false;
  try {
    process.kill(record.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
