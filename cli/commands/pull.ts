// `pipeline pull [STAGE...]`: download from the remote cache the results the pipeline (or the
// named stages and what they need) would otherwise compute. Stages are resolved in DAG order, since
// a stage's key depends on its upstreams' outputs. Every object is verified against its digest
// before it enters the store; a corrupt or partial one is reported and that result not committed.
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { errorText, nameWidth, nonNegativeNumber, positiveInt } from '../stage-lines.js';
import { openSession } from '../session.js';
import { selectStages } from '../../engine/config/graph.js';
import { formatBytes, stageProgress } from '../output.js';
import { chosenRemote, withRemoteTransfer } from '../remote.js';
import { StageError, UsageError } from '../../engine/errors.js';
import { gatherFacts, loadStored, resolveStage } from '../../engine/plan/facts.js';
import { pullResult } from '../../engine/remote/transfer.js';
import { remoteIsDown } from '../../engine/remote/backend.js';

interface PullOptions {
  remote?: string;
  jobs?: number;
  lockTimeout: number;
}

export function register(program: Command): void {
  program
    .command('pull')
    .description('download from the remote cache the results of the pipeline, or of the named stages and what they need, that the store lacks')
    .argument('[stages...]', 'stages to pull (default: all)')
    .option('--remote <url>', 'remote cache (default: remote: in pipeline.yaml)')
    .option('-j, --jobs <n>', 'parallel transfers (default: remote.jobs, 8)', positiveInt)
    .option('--lock-timeout <seconds>', 'how long to wait for a running pipeline to release the store', nonNegativeNumber, 600)
    .action(async (targets: string[], options: PullOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const selection = selectStages(session.pipeline, targets);
      const config = chosenRemote(session.pipeline, options.remote);
      if (!config) throw new UsageError('no remote: add a remote: section to pipeline.yaml or pass --remote URL');
      const { store } = session;
      const jobs = options.jobs ?? config.jobs;
      const width = nameWidth(selection);
      const line = (word: string, stage: string, note: string) => process.stdout.write(`${word.padEnd(7)}  ${stage.padEnd(width)}  ${note}`.trimEnd() + '\n');
      const failed: string[] = [];
      await store.init();
      await withRemoteTransfer(config, store.dir, options.lockTimeout, async (remote, signal) => {
        await store.cleanTmp();
        const env = session.env(signal);
        const refs = await store.readRefs();
        const facts = await gatherFacts(env, selection, refs);
        const outputs = new Map<string, string | undefined>();
        let pulled = 0;
        let objects = 0;
        let bytes = 0;
        const absent: string[] = [];
        for (const name of selection) {
          const d = await resolveStage(env, facts, name, outputs);
          if (d.action === 'cached') {
            outputs.set(name, d.stored.manifest.outputsDigest);
            line('present', name, '');
            continue;
          }
          const missingUp = session.pipeline.stages.get(name)!.needs.filter((n) => outputs.get(n) === undefined);
          if (!d.key || missingUp.length) {
            absent.push(name);
            line('missing', name, `(needs ${missingUp.join(', ') || 'a computable key'}, not available)`);
            continue;
          }
          try {
            const r = await pullResult(store, remote, d.key, { jobs, signal, progress: stageProgress(name), progressLabel: 'pull' });
            if (!r) {
              absent.push(name);
              line('missing', name, '(not on the remote)');
              continue;
            }
            facts.stored.set(d.key, await loadStored(env, d.key));
            outputs.set(name, r.manifest.outputsDigest);
            await store.linkStage(name, d.key);
            refs.set(name, { key: d.key, at: new Date().toISOString() });
            await store.writeRefs(refs);
            pulled++;
            objects += r.moved;
            bytes += r.movedBytes;
            line(
              'pulled',
              name,
              `${r.moved} object${r.moved === 1 ? '' : 's'} (${formatBytes(r.movedBytes)}) downloaded and verified, ${r.present} already here${r.resumedBytes ? ` (${formatBytes(r.resumedBytes)} resumed from an interrupted pull)` : ''}`,
            );
          } catch (err) {
            if (remoteIsDown(err) || signal.aborted) throw err;
            failed.push(name);
            line('failed', name, '');
            process.stderr.write(`error: ${errorText(err)}\n`);
          }
        }
        process.stdout.write(
          `pulled ${pulled} result${pulled === 1 ? '' : 's'} from ${remote.url}: ${objects} object${objects === 1 ? '' : 's'} (${formatBytes(bytes)})` +
            (absent.length ? `; not on the remote: ${absent.join(', ')}` : '') +
            (failed.length ? `; failed: ${failed.join(', ')}` : '') +
            '\n',
        );
      });
      if (failed.length)
        throw new StageError(
          `${failed.length} result${failed.length === 1 ? '' : 's'} could not be pulled (nothing of them was committed): ${failed.join(', ')}`,
        );
    });
}
