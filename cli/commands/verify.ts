// `pipeline verify [--fix]`: rehash every stored object; report corrupt and missing ones (exit 1).
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import type { ProgressReporter } from '../../engine/contract.js';
import type { VerifyReport } from '../../engine/store/verify.js';
import { nonNegativeNumber, shown } from '../stage-lines.js';
import { openSession } from '../session.js';
import { verifyStore } from '../../engine/store/verify.js';
import { withStoreLock } from '../store-lock.js';
import { formatBytes, stageProgress } from '../output.js';
import { StageError } from '../../engine/errors.js';

interface VerifyOptions {
  fix?: boolean;
  json?: boolean;
  lockTimeout: number;
}

/** Progress only for stores big enough to take a while. */
function quietBelow(bytes: number, progress: ProgressReporter): ProgressReporter {
  let show = false;
  return {
    start(label, total, unit) {
      show = total >= bytes;
      if (show) progress.start(label, total, unit);
    },
    tick(n, status) {
      if (show) progress.tick(n, status);
    },
    update(v, status) {
      if (show) progress.update(v, status);
    },
    done(status) {
      if (show) progress.done(status);
    },
  };
}

/** `a, b and 3 more`: paths of one result, not thousands of them. */
function listed(paths: readonly string[], max = 3): string {
  return paths.length <= max ? paths.join(', ') : `${paths.slice(0, max).join(', ')} and ${paths.length - max} more`;
}

/** What `--fix` did, in one clause. */
function fixedText(report: VerifyReport): string {
  const deleted = [...report.incomplete, ...report.invalidated].map((r) => r.stage);
  const parts = [
    report.removed ? `removed ${report.removed} corrupt object${report.removed > 1 ? 's' : ''}` : '',
    deleted.length
      ? `deleted ${deleted.length} result${deleted.length > 1 ? 's' : ''} (${[...new Set(deleted)].join(', ')}: they run again on the next \`pipeline run\`)`
      : '',
    report.badManifests.length ? `removed ${report.badManifests.length} unreadable manifest${report.badManifests.length > 1 ? 's' : ''}` : '',
    report.badViews.length + report.badLinks.length ? `rebuilt ${report.badViews.length + report.badLinks.length} views or links` : '',
  ];
  return parts.filter(Boolean).join(', ');
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('rehash every stored object and report corrupt or missing ones (exit 1 if any)')
    .option('--fix', 'delete corrupt objects and the results that lack an object, so their stages run again; rebuild views')
    .option('--json', 'machine-readable output')
    .option('--lock-timeout <seconds>', 'how long to wait for a running pipeline to release the store', nonNegativeNumber, 600)
    .action(async (options: VerifyOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const { store } = session;
      if (!(await store.exists())) {
        process.stdout.write('nothing to verify: no store yet\n');
        return;
      }
      // Under the lock: a concurrent gc could otherwise make objects look missing.
      const report = await withStoreLock(store.dir, options.lockTimeout, () =>
        verifyStore(store, { fix: options.fix, progress: options.json ? undefined : quietBelow(64e6, stageProgress('verify')) }),
      );
      if (options.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else {
        for (const c of report.corrupt) {
          process.stdout.write(
            `corrupt  ${shown(store.objects.path(c.digest))}: content hashes to ${c.actual.slice(0, 16)}…, used by ${c.usedBy.join(', ') || 'nothing'}${options.fix ? ' (removed)' : ''}\n`,
          );
        }
        for (const m of report.missing) process.stdout.write(`missing  object ${m.digest.slice(0, 16)}…, used by ${m.usedBy.join(', ')}\n`);
        for (const b of report.badManifests) process.stdout.write(`unreadable manifest  ${shown(b)}${options.fix ? ' (removed)' : ''}\n`);
        for (const i of report.incomplete) {
          const lacks = [
            ...(i.corrupt.length ? [`${listed(i.corrupt)} corrupt`] : []),
            ...(i.missing.length ? [`${listed(i.missing)} gone from the store`] : []),
          ].join(', ');
          process.stdout.write(
            options.fix
              ? `deleted  result of ${i.stage} (${i.key.slice(0, 16)}…): ${lacks}; ${i.stage} runs again\n`
              : `incomplete result of ${i.stage} (${i.key.slice(0, 16)}…): ${lacks} (the next run recomputes it; --fix deletes it now)\n`,
          );
        }
        for (const i of report.invalidated) {
          process.stdout.write(
            `invalidated ${i.stage} (${i.key.slice(0, 16)}…): computed from a corrupt object${options.fix ? '; it runs again' : ' (--fix deletes its result)'}\n`,
          );
        }
        for (const v of report.badViews) {
          process.stdout.write(
            `view     ${shown(store.viewPath(v.key))}: ${v.paths.join(', ')} does not match the stored objects of ${v.stage}${options.fix ? ' (rebuilt)' : ''}\n`,
          );
        }
        for (const l of report.badLinks)
          process.stdout.write(
            `link     ${shown(store.stageLinkPath(l.stage))} does not point at the latest result of ${l.stage}${options.fix ? ' (relinked)' : ''}\n`,
          );
        process.stdout.write(
          `checked ${report.checkedObjects} objects (${formatBytes(report.checkedBytes)}): ${report.corrupt.length} corrupt, ${report.missing.length} missing\n`,
        );
      }
      const problems = report.corrupt.length + report.missing.length + report.badManifests.length + report.badViews.length + report.badLinks.length;
      if (problems > 0) {
        const views = report.badViews.length + report.badLinks.length ? `, ${report.badViews.length + report.badLinks.length} bad views or links` : '';
        const found = `${report.corrupt.length} corrupt, ${report.missing.length} missing, ${report.badManifests.length} unreadable manifests${views}`;
        if (options.fix) throw new StageError(`store verification found ${found}; fixed: ${fixedText(report)}; \`pipeline verify\` now finds nothing wrong`);
        throw new StageError(
          `store verification failed: ${found} (pipeline verify --fix deletes corrupt objects and the results that lack an object or were computed from a corrupt one, so their stages rerun, and rebuilds views)`,
        );
      }
    });
}
