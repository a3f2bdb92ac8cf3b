// Which remote a command uses: `--remote URL` over pipeline.yaml's `remote:`; `--no-remote` none.
import { AbortedError, UsageError } from '../engine/errors.js';
import type { Pipeline } from '../engine/config/pipeline.js';
import type { RemoteBackend } from '../engine/remote/backend.js';
import { effectiveRemote, remoteUrlProblem, type RemoteConfig } from '../engine/config/remote.js';
import { withStoreLock } from './store-lock.js';
import { openRemote } from '../engine/remote/open.js';

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
 * An abort signal for a transfer command's Ctrl-C / SIGTERM / SIGHUP: transfers stop, temporary files are
 * removed, and nothing partial is committed. `dispose` removes the handlers.
 */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const onSignal = () => stop.abort(new AbortedError('interrupted: transfers were stopped; nothing partial was committed'));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal); // a closed terminal stops a transfer as a `run` is stopped
  return {
    signal: stop.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    },
  };
}

/**
 * A transfer command's body (push, pull) with the remote open, under the store lock (a concurrent
 * gc must not remove objects while they move), stoppable by Ctrl-C: an interrupt surfaces as the
 * AbortedError it is, and the handlers and the remote are released whatever happens.
 */
export async function withRemoteTransfer<T>(
  config: RemoteConfig,
  storeDir: string,
  lockTimeoutSeconds: number,
  body: (remote: RemoteBackend, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const remote = await openRemote(config);
  const interrupt = interruptSignal();
  const { signal } = interrupt;
  try {
    return await withStoreLock(storeDir, lockTimeoutSeconds, () => body(remote, signal));
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw err;
  } finally {
    interrupt.dispose();
    remote.close?.();
  }
}
