// `pipeline cancel [RUN]`: stops a running run (default: the newest running one) from another
// terminal, and waits until it recorded itself as cancelled. The run stops its stages as on Ctrl-C
// (commands killed with their process groups, nothing partial committed); a run with
// `--executor queue` also removes its queued jobs and has its workers stop the running ones
// (engine/runner/cancel.ts, engine/queue/cancel.ts).
import type { Command } from 'commander';
import { StageError, UsageError } from '../../engine/errors.js';
import { cancelRun } from '../../engine/runner/cancel.js';
import type { GlobalOptions } from '../global-options.js';
import { formatDuration } from '../output.js';
import { findRun } from '../run-ref.js';
import { openSession } from '../session.js';
import { nonNegativeNumber } from '../stage-lines.js';

interface CancelOptions {
  wait: number;
}

export function register(program: Command): void {
  program
    .command('cancel')
    .description("stop a running run (default: the newest running one) and record it as cancelled; a queue run's jobs are removed or stopped")
    .argument('[run]', 'run id or a unique prefix of it (default: the newest running run)')
    .option('--wait <seconds>', 'how long to wait for the run to stop and record itself cancelled', nonNegativeNumber, 60)
    .addHelpText(
      'after',
      `
The run stops as on Ctrl-C: running commands are killed with their process groups, nothing
partial is committed, and what finished stays reused by the next run. A run started with
--executor queue also removes its queued jobs, and the workers running its jobs stop them.
A scheduled run is cancelled without stopping the scheduler. Exit 0 once the run recorded
itself as cancelled; 2 when there is no such run or it is not running.`,
    )
    .action(async (runText: string | undefined, options: CancelOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const id = runText === undefined ? undefined : findRun(await session.store.runs.list(), runText).id;
      const started = Date.now();
      const { record, stopped } = await cancelRun(session.store, { id, waitMs: options.wait * 1000 });
      if (!stopped)
        throw new StageError(
          `asked run ${record.id} to cancel; it has not stopped within ${options.wait}s (it stops at its next check; pipeline runs shows when it did)`,
        );
      if (record.outcome === 'running') throw new UsageError(`run ${record.id} ended without recording an end (its process was killed meanwhile)`);
      if (record.outcome !== 'cancelled') {
        process.stdout.write(`run ${record.id} ended ${record.outcome} before it could be cancelled\n`);
        return;
      }
      const stopped_ = record.stages.filter((s) => s.outcome === 'aborted').map((s) => s.stage);
      const kept = record.stages.filter((s) => s.outcome === 'ran' || s.outcome === 'cached').length;
      process.stdout.write(
        `cancelled run ${record.id} in ${formatDuration(Date.now() - started)}` +
          `${stopped_.length ? `: stopped ${stopped_.join(', ')}` : ''}` +
          `${kept ? `; ${kept} finished stage${kept === 1 ? '' : 's'} kept for the next run` : ''}\n`,
      );
    });
}
