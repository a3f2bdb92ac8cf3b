// Where to look when a stage fails on the data it read. A source stage (one with no upstream: a
// fetch, a command that brings data in) whose result was reused from the store keeps handing the
// same bytes to the stages after it, run after run: the failing stage's own error names the bad
// file, this says which stage brought it in, from which run, and how to make that stage run again.
// Given for kind stages (whose errors are mostly about their input data), not for a command's exit code.
import { DiskFullError } from '../errors.js';
import { failedForSpace } from './disk-full.js';

/** What the hint needs of an upstream's report (execute.ts's StageReport). */
export interface ReusedUpstream {
  stage: string;
  outcome: string;
  pulled?: boolean;
  manifest?: { runId: string };
}

/**
 * A line naming the reused source stages `stage` read, or undefined when there are none or the
 * failure cannot be about its input data (a full disk).
 */
export function reusedSourceHint(stage: string, ups: readonly ReusedUpstream[], isSource: (stage: string) => boolean, err: unknown): string | undefined {
  if (err instanceof DiskFullError || failedForSpace(err)) return undefined;
  const reused = ups.filter((u) => u.outcome === 'cached' && u.manifest && isSource(u.stage));
  if (reused.length === 0) return undefined;
  const names = reused.map((u) => u.stage);
  const origin = reused.map((u) => `${u.stage}: ${u.pulled ? 'pulled from the remote, ' : ''}computed by run ${u.manifest!.runId}`).join('; ');
  const them = reused.length > 1 ? 'them' : 'it';
  return (
    `${stage} read the data of ${listed(names)}, which this run reused from the store (${origin}): ` +
    `if that data is at fault, fix it at its source and run \`pipeline run ${names.join(' ')} --force\` to compute ${them} again`
  );
}

function listed(names: readonly string[]): string {
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : names[0]!;
}
