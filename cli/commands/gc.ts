// `pipeline gc [--dry-run] [--keep-runs N] [--keep-days D]`: delete stored results that neither the
// current pipeline nor the last N runs refer to; report what was (or would be) freed. Given
// explicitly, --keep-runs / --keep-days also prune the run records themselves (promoted runs stay).
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { nonNegativeInt, nonNegativeNumber, positiveNumber } from '../stage-lines.js';
import { openSession } from '../session.js';
import { collectGarbage } from '../../engine/store/gc.js';
import { withStoreLock } from '../store-lock.js';
import { formatBytes } from '../output.js';
import { promotedKeys } from '../../engine/promote/promote.js';
import { applyRetention, describePrune } from '../../engine/schedule/apply-retention.js';

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
      const session = await openSession(globals.config);
      if (!(await session.store.exists())) {
        process.stdout.write('nothing to collect: no store yet\n');
        return;
      }
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
