// Which remote a command uses: `--remote URL` over pipeline.yaml's `remote:`; `--no-remote` none.
import { UsageError } from '../engine/errors.js';
import type { Pipeline } from '../engine/pipeline.js';
import { effectiveRemote, remoteUrlProblem, type RemoteConfig } from '../engine/remote/config.js';

/** `remote` is commander's value for `--remote URL` / `--no-remote`: a URL, false, or undefined. */
export function chosenRemote(pipeline: Pipeline, remote: string | boolean | undefined): RemoteConfig | undefined {
  if (remote === false) return undefined;
  const fromCli = typeof remote === 'string' ? remote : undefined;
  if (fromCli !== undefined) {
    const problem = remoteUrlProblem(fromCli);
    if (problem) throw new UsageError(`--remote: ${problem}`);
  }
  return effectiveRemote(pipeline.remote, fromCli);
}
