// `pipeline gc [--dry-run] [--keep-runs N] [--keep-days D]`: delete stored results that neither the
// current pipeline nor the last N runs refer to; report what was (or would be) freed. Given
// explicitly, --keep-runs / --keep-days also prune the run records themselves (promoted runs stay).
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { nonNegativeInt, nonNegativeNumber, positiveNumber } from '../stage-lines.js';

interface GcCliOptions {
  dryRun?: boolean;
  keepRuns: number;
  keepDays?: number;
  lockTimeout: number;
}

export function register(program: Command): void {
  program
    .command('gc')
    .description('delete stored outputs not referenced by the current pipeline or the last N runs')
    .option('-n, --dry-run', 'report what would be deleted, delete nothing')
    .option('--keep-runs <n>', 'also keep the results of the last N runs; given explicitly, also prune older run records', nonNegativeInt, 5)
    .option('--keep-days <d>', 'prune run records (and their logs) older than D days (runs of promoted models are kept)', positiveNumber)
    .option('--lock-timeout <seconds>', 'how long to wait for a running pipeline to release the store', nonNegativeNumber, 600)
    .action(async (options: GcCliOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const { openSession } = await import('../session.js');
      const { collectGarbage } = await import('../../engine/store/gc.js');
      const { withStoreLock } = await import('../store-lock.js');
      const { formatBytes } = await import('../output.js');
      const { promotedKeys } = await import('../../engine/promote/promote.js');
      const session = await openSession(globals.config);
      if (!(await session.store.exists())) {
        process.stdout.write('nothing to collect: no store yet\n');
        return;
      }
      const { applyRetention, describePrune } = await import('../../engine/schedule/apply-retention.js');
      // Only an explicit --keep-runs N (N >= 1) prunes records by count: plain gc, or --keep-runs 0 (results only), keep the history.
      const explicitRuns = command.getOptionValueSource('keepRuns') === 'cli' && options.keepRuns > 0;
      const policy = { ...(explicitRuns ? { keepRuns: options.keepRuns } : {}), ...(options.keepDays !== undefined ? { keepDays: options.keepDays } : {}) };
      const dryRun = options.dryRun ?? false;
      const [pruned, report] = await withStoreLock(session.store.dir, options.lockTimeout, async () => [
        await applyRetention(session.store, session.pipeline.root, policy, { dryRun }),
        await collectGarbage(session.store, session.statCache, {
          stages: session.pipeline.stages.keys(),
          keepRuns: options.keepRuns,
          dryRun: options.dryRun ?? false,
          // Promoted models (models/history/) stay reproducible and promotable: keep their results.
          keepKeys: await promotedKeys(session.pipeline.root),
        }),
      ]);
      const prunedLine = describePrune(pruned, dryRun);
      if (prunedLine) process.stdout.write(`${prunedLine}\n`);
      const verb = options.dryRun ? 'would remove' : 'removed';
      const parts = [
        `${report.removedObjects} object${report.removedObjects === 1 ? '' : 's'} (${formatBytes(report.freedBytes)})`,
        `${report.removedManifests} manifest${report.removedManifests === 1 ? '' : 's'}`,
        `${report.removedViews} view${report.removedViews === 1 ? '' : 's'}`,
      ];
      if (report.removedResumeDirs) parts.push(`${report.removedResumeDirs} resume dir${report.removedResumeDirs === 1 ? '' : 's'}`);
      if (report.removedRefs.length) parts.push(`refs of removed stages ${report.removedRefs.join(', ')}`);
      process.stdout.write(`${verb} ${parts.join(', ')}; kept ${report.keptKeys} result${report.keptKeys === 1 ? '' : 's'}\n`);
    });
}
