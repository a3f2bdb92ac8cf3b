// `pipeline push [STAGE...]`: upload the current results of the pipeline (or of the named stages
// and what they need) to the remote cache — objects the remote lacks, then each manifest.
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { nameWidth, nonNegativeNumber, positiveInt } from '../stage-lines.js';
import { openSession } from '../session.js';
import { selectStages } from '../../engine/config/graph.js';
import { formatBytes, stageProgress } from '../output.js';
import { chosenRemote, withRemoteTransfer } from '../remote.js';
import { UsageError } from '../../engine/errors.js';
import { gatherFacts, resolvePlan } from '../../engine/plan/facts.js';
import { pushResult } from '../../engine/remote/transfer.js';
import { describeReasons } from '../../engine/plan/reasons.js';

interface PushOptions {
  remote?: string;
  jobs?: number;
  lockTimeout: number;
}

export function register(program: Command): void {
  program
    .command('push')
    .description('upload the current results of the pipeline, or of the named stages and what they need, to the remote cache')
    .argument('[stages...]', 'stages to push (default: all)')
    .option('--remote <url>', 'remote cache (default: remote: in pipeline.yaml)')
    .option('-j, --jobs <n>', 'parallel transfers (default: remote.jobs, 8)', positiveInt)
    .option('--lock-timeout <seconds>', 'how long to wait for a running pipeline to release the store', nonNegativeNumber, 600)
    .action(async (targets: string[], options: PushOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const selection = selectStages(session.pipeline, targets);
      const config = chosenRemote(session.pipeline, options.remote);
      if (!config) throw new UsageError('no remote: add a remote: section to pipeline.yaml or pass --remote URL');
      if (!(await session.store.exists())) {
        process.stdout.write('nothing to push: no store yet\n');
        return;
      }
      const jobs = options.jobs ?? config.jobs;
      const width = nameWidth(selection);
      const line = (word: string, stage: string, note: string) => process.stdout.write(`${word.padEnd(7)}  ${stage.padEnd(width)}  ${note}\n`);
      await withRemoteTransfer(config, session.store.dir, options.lockTimeout, async (remote, signal) => {
        const env = session.env(signal);
        const facts = await gatherFacts(env, selection);
        const plan = await resolvePlan(env, facts, selection);
        let pushed = 0;
        let objects = 0;
        let bytes = 0;
        const notComputed: string[] = [];
        for (const p of plan.stages) {
          if (p.action !== 'cached') {
            notComputed.push(p.stage);
            line('skipped', p.stage, `(no current result here: ${describeReasons(p.reasons) || 'not run'})`);
            continue;
          }
          const r = await pushResult(session.store, remote, p.stored.manifest, { jobs, signal, progress: stageProgress(p.stage), progressLabel: 'push' });
          pushed++;
          objects += r.moved;
          bytes += r.movedBytes;
          const note =
            r.moved === 0 && r.manifestPresent
              ? 'already on the remote'
              : `${r.moved} object${r.moved === 1 ? '' : 's'} (${formatBytes(r.movedBytes)}) uploaded, ${r.present} already there`;
          line('pushed', p.stage, note);
        }
        process.stdout.write(
          `pushed ${pushed} result${pushed === 1 ? '' : 's'} to ${remote.url}: ${objects} object${objects === 1 ? '' : 's'} (${formatBytes(bytes)}) uploaded` +
            (notComputed.length
              ? `; ${notComputed.length} stage${notComputed.length === 1 ? '' : 's'} without a current result (pipeline run first): ${notComputed.join(', ')}`
              : '') +
            '\n',
        );
      });
    });
}
