// `pipeline status [--json]`: for each stage, up to date or stale and why. Reads only; no lock.
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { collect, collectUnset, nameWidth, overrideArgs, UNSET_HELP } from '../stage-lines.js';
import type { Reason } from '../../engine/plan/reasons.js';
import { openSession } from '../session.js';
import { selectStages } from '../../engine/config/graph.js';
import { gatherFacts, resolvePlan } from '../../engine/plan/facts.js';
import { describeReason } from '../../engine/plan/reasons.js';
import { staleByOverrides, waitingCheckpoint } from '../../engine/experiments/made-with.js';
import { paint } from '../output.js';

interface StatusOptions {
  json?: boolean;
  set: string[];
  unset: string[];
}

export interface StageStatus {
  stage: string;
  state: 'up-to-date' | 'stale';
  /** Current key, when it can be computed (not while an upstream is stale). */
  key?: string;
  /** Key of the latest result. */
  latestKey?: string;
  reasons: (Reason & { message: string })[];
}

export function register(program: Command): void {
  program
    .command('status')
    .description('show which stages are up to date and why the others are stale (runs nothing)')
    .argument('[stages...]', 'only these stages and what they need')
    .option('--json', 'machine-readable output')
    .option('--set <stage.param=value>', 'override a param (repeatable)', collect, [])
    .option('--unset <stage.param>', UNSET_HELP, collectUnset, [])
    .action(async (targets: string[], options: StatusOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const current = { set: options.set, unset: options.unset, ...(globals.backend !== undefined ? { backend: globals.backend } : {}) };
      const session = await openSession(globals.config, { sets: overrideArgs(options), backend: globals.backend });
      const selection = selectStages(session.pipeline, targets);
      const planOf = async (s: typeof session) => {
        const env = s.env(new AbortController().signal);
        return { facts: await gatherFacts(env, selection), env };
      };
      const { facts, env } = await planOf(session);
      const plan = await resolvePlan(env, facts, selection);
      // A result made with other --set/--unset/--backend: say which, rather than every key difference.
      const byOverrides = await staleByOverrides(session.store, plan, facts.refs, current, async (o) => {
        const other = await openSession(globals.config, { sets: overrideArgs(o), backend: o.backend, reuse: session });
        const { facts: otherFacts, env: otherEnv } = await planOf(other);
        return resolvePlan(otherEnv, otherFacts, selection);
      });
      const statuses: StageStatus[] = [];
      for (const p of plan.stages) {
        const reasons: Reason[] = byOverrides.has(p.stage) ? [byOverrides.get(p.stage)!] : [...p.reasons];
        const checkpoint = p.action === 'run' ? await waitingCheckpoint(session.store, p.stage, p.key) : undefined;
        if (checkpoint) reasons.push(checkpoint);
        statuses.push({
          stage: p.stage,
          state: p.action === 'cached' && p.reasons.length === 0 ? 'up-to-date' : 'stale',
          key: p.key,
          latestKey: facts.refs.get(p.stage),
          reasons: reasons.map((r) => ({ ...r, message: describeReason(r) })),
        });
      }
      if (options.json) {
        process.stdout.write(JSON.stringify({ pipeline: session.pipeline.file, stages: statuses }, null, 2) + '\n');
        return;
      }
      const width = nameWidth(selection);
      for (const s of statuses) {
        const state = s.state === 'up-to-date' ? paint.green('up to date') : paint.yellow('stale');
        const why = s.reasons.map((r) => r.message).join('; ');
        process.stdout.write(`${s.stage.padEnd(width)}  ${state}${why ? `: ${why}` : ''}\n`);
      }
    });
}
