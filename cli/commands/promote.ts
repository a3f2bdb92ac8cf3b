// `pipeline promote [RUN]` and `pipeline rollback`: manual control of models/current. Promote makes
// a past run's model current whatever its metric; rollback goes back to the champion before the
// current one (the same files, byte for byte). Both hold the store lock like `run` does.
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { nonNegativeNumber } from '../stage-lines.js';
import { openSession } from '../session.js';
import { promoteRun, rollbackChampion } from '../../engine/promote/promote.js';
import { withStoreLock } from '../store-lock.js';
import { findRun } from '../run-ref.js';

interface PromoteOptions {
  stage?: string;
  lockTimeout: number;
}

const metricText = (info: { evaluate?: { metric: string; value: number | null } }) =>
  info.evaluate ? `, ${info.evaluate.metric} ${info.evaluate.value ?? 'none'}` : '';

export function register(program: Command): void {
  program
    .command('promote')
    .description("make a run's model the current one (models/current), whatever its metric")
    .argument('[run]', 'run id, a unique prefix of it, or latest', 'latest')
    .option('--stage <train>', 'the train stage whose model to promote (default: promote.train of pipeline.yaml)')
    .option('--lock-timeout <seconds>', 'how long to wait for a running pipeline to release the store', nonNegativeNumber, 600)
    .action(async (run: string, options: PromoteOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const stage = options.stage ?? session.pipeline.promote?.train;
      await session.store.init();
      const info = await withStoreLock(session.store.dir, options.lockTimeout, async () => {
        const record = findRun(await session.store.runs.list(), run, (r) => r.stages.some((s) => s.stage === stage && s.key));
        return promoteRun(session.pipeline, session.store, record, options.stage);
      });
      process.stdout.write(
        `promoted ${info.stage} of run ${info.runId} to models/current (${info.id}${metricText(info)}); previous: ${info.previous ?? 'none'}\n`,
      );
    });

  program
    .command('rollback')
    .description('make the model that was current before the current one current again')
    .option('--lock-timeout <seconds>', 'how long to wait for a running pipeline to release the store', nonNegativeNumber, 600)
    .action(async (options: { lockTimeout: number }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      await session.store.init();
      const { from, to } = await withStoreLock(session.store.dir, options.lockTimeout, () => rollbackChampion(session.pipeline.root));
      process.stdout.write(`rolled back models/current: ${from.id} -> ${to.id} (run ${to.runId}${metricText(to)})\n`);
    });
}
