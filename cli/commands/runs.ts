// `pipeline runs [--json]`: the history of `pipeline run` (id, start, duration, per-stage outcome).
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { nonNegativeInt } from '../stage-lines.js';
import { openSession } from '../session.js';
import { formatDuration } from '../output.js';
import { overrideText } from '../../engine/plan/reasons.js';

interface RunsOptions {
  json?: boolean;
  limit: number;
}

export function register(program: Command): void {
  program
    .command('runs')
    .description('list past runs, newest first: id, start, duration, outcome of each stage')
    .option('--json', 'machine-readable output')
    .option('--limit <n>', 'how many runs to show (0: all)', nonNegativeInt, 20)
    .action(async (options: RunsOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config);
      const all = (await session.store.runs.list()).reverse();
      const records = options.limit > 0 ? all.slice(0, options.limit) : all;
      if (options.json) {
        process.stdout.write(JSON.stringify(records, null, 2) + '\n');
        return;
      }
      if (records.length === 0) {
        process.stdout.write('no runs yet\n');
        return;
      }
      for (const r of records) {
        // A record still `running` whose process is gone was killed before it could finish.
        const outcome = r.outcome === 'running' && !alive(r.pid) ? 'killed' : r.outcome;
        const duration = r.durationMs !== undefined ? formatDuration(r.durationMs) : '-';
        process.stdout.write(`${r.id}  ${r.startedAt}  ${duration.padStart(6)}  ${outcome.padEnd(11)} pipeline ${r.command.join(' ')}\n`);
        if (r.experiment)
          process.stdout.write(
            `    experiment ${r.experiment.index}/${r.experiment.of} of sweep ${r.experiment.sweep}: ${Object.entries(r.experiment.assignments)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}\n`,
          );
        if (r.overrides) process.stdout.write(`    overrides ${overrideText(r.overrides)}\n`);
        if (r.queue) process.stdout.write(`    queue ${r.queue}\n`);
        if (r.trigger)
          process.stdout.write(
            `    schedule ${r.trigger.entry} (fired ${r.trigger.firedAt}): ${r.trigger.result ?? 'running'}${r.trigger.note ? ` (${r.trigger.note})` : ''}\n`,
          );
        if (r.error) process.stdout.write(`    error: ${r.error}\n`);
        if (r.promotion) process.stdout.write(`    promotion: ${r.promotion.decision} (${r.promotion.reason})\n`);
        if (r.push) {
          const complete = r.push.pushed === r.push.of ? '' : ' (incomplete)';
          process.stdout.write(`    push: ${r.push.pushed} of ${r.push.of} computed results to ${r.push.remote}${complete}\n`);
        }
        for (const n of r.notifications ?? []) process.stdout.write(`    notified ${n.event} ${n.target}: ${n.ok ? 'ok' : n.error}\n`);
        const width = Math.max(0, ...r.stages.map((s) => s.stage.length));
        for (const s of r.stages) {
          const note = s.error ?? (s.outcome === 'ran' || s.outcome === 'skipped' ? s.reason : undefined);
          const where = s.worker ? `  on ${s.worker}` : '';
          process.stdout.write(
            `    ${s.outcome.padEnd(7)}  ${s.stage.padEnd(width)}  ${formatDuration(s.durationMs).padStart(6)}${where}${note ? `  (${note})` : ''}\n`,
          );
          if (s.hint) process.stdout.write(`      hint: ${s.hint}\n`);
          // One attempt that ended as the stage did says nothing new; a retry or a timeout does.
          if (s.attempts && (s.attempts.length > 1 || s.attempts.some((a) => a.outcome === 'timed-out')))
            process.stdout.write(`      attempts: ${s.attempts.map((a) => `${a.attempt} ${a.outcome} (${formatDuration(a.durationMs)})`).join(', ')}\n`);
        }
      }
    });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
