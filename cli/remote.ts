// Which remote a command uses: `--remote URL` over pipeline.yaml's `remote:`; `--no-remote` none.
import { AbortedError, UsageError } from '../engine/errors.js';
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

/**
 * An abort signal for a transfer command's Ctrl-C / SIGTERM: transfers stop, temporary files are
 * removed, and nothing partial is committed. `dispose` removes the handlers.
 */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const onSignal = () => stop.abort(new AbortedError('interrupted: transfers were stopped; nothing partial was committed'));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: stop.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
