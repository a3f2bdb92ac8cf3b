// The remote as `pipeline run` uses it: on a local miss, download a matching result instead of
// computing it; after the run (`--push`), upload what was computed. Any remote failure is a
// warning and the stage is computed locally; once the remote is unreachable, refuses access or
// times out, it is not asked again in this run (every stage would wait for the same timeout).
import type { Logger, ProgressReporter } from '../contract.js';
import { errorMessage } from '../store/fs-tree.js';
import type { Manifest } from '../store/manifest.js';
import type { Store } from '../store/store.js';
import { RemoteError } from '../errors.js';
import { remoteIsDown, type RemoteBackend } from './backend.js';
import { pullResult, pushResult, remoteManifestPath } from './transfer.js';

export interface RemoteCacheUi {
  logger(stage: string): Logger;
  progress(stage: string): ProgressReporter;
}

/** What `push` uploaded: how many results, and which stages' results it could not (with why). */
export interface PushOutcome {
  pushed: number;
  notPushed: { stage: string; reason: string }[];
}

export class RemoteCache {
  /** Set once the remote is unusable for the rest of this run. */
  private down: string | undefined;
  /** Objects found corrupt or partial on the remote: `--push` uploads them again. */
  private readonly damaged = new Set<string>();
  /** Results known to be complete on the remote (ensure). */
  private readonly present = new Set<string>();

  constructor(
    private readonly store: Store,
    readonly backend: RemoteBackend,
    private readonly jobs: number,
    private readonly ui: RemoteCacheUi,
  ) {}

  /** The result for `key` from the remote, committed to the local store; null on a miss or a failure (warned). */
  async fetch(stage: string, key: string, signal: AbortSignal): Promise<Manifest | null> {
    if (this.down !== undefined) return null;
    try {
      const pulled = await pullResult(this.store, this.backend, key, {
        jobs: this.jobs,
        signal,
        progress: this.ui.progress(stage),
        progressLabel: 'pull from remote',
      });
      return pulled?.manifest ?? null;
    } catch (err) {
      if (signal.aborted) throw err;
      this.warn(stage, err);
      return null;
    }
  }

  /** Uploads committed results; says which did not make it and why (each also warned). */
  async push(results: readonly { stage: string; manifest: Manifest }[], signal: AbortSignal): Promise<PushOutcome> {
    const outcome: PushOutcome = { pushed: 0, notPushed: [] };
    for (const { stage, manifest } of results) {
      if (this.down !== undefined) {
        // Said once; the stages after it are only counted.
        if (!outcome.notPushed.some((n) => n.reason === this.down)) {
          this.ui.logger(stage).warn(`remote ${this.backend.url} is not usable in this run (${this.down}); not pushed`);
        }
        outcome.notPushed.push({ stage, reason: this.down });
        continue;
      }
      try {
        await pushResult(this.store, this.backend, manifest, {
          jobs: this.jobs,
          signal,
          progress: this.ui.progress(stage),
          progressLabel: 'push to remote',
          reupload: this.damaged,
        });
        outcome.pushed++;
      } catch (err) {
        if (signal.aborted) throw err;
        this.ui.logger(stage).warn(`remote ${this.backend.url}: ${errorMessage(err)}; not pushed`);
        outcome.notPushed.push({ stage, reason: errorMessage(err) });
        if (remoteIsDown(err)) this.down = errorMessage(err);
      }
    }
    return outcome;
  }

  /**
   * Makes sure the remote has these results before a queue worker looks for them (a manifest on
   * the remote means all its objects are there, so that is all it checks). Unlike `push`, a
   * failure throws: the worker could not run without them.
   */
  async ensure(results: readonly Manifest[], signal: AbortSignal): Promise<void> {
    for (const m of results) {
      if (this.present.has(m.key)) continue;
      if ((await this.backend.stat(remoteManifestPath(m.key), signal)) === null) {
        await pushResult(this.store, this.backend, m, { jobs: this.jobs, signal, progress: this.ui.progress(m.stage), progressLabel: 'push to remote' });
      }
      this.present.add(m.key);
    }
  }

  private warn(stage: string, err: unknown): void {
    if (err instanceof RemoteError && err.digest) this.damaged.add(err.digest);
    const down = remoteIsDown(err);
    this.ui
      .logger(stage)
      .warn(`remote ${this.backend.url}: ${errorMessage(err)}; computing ${stage} locally${down ? ' (remote not used for the rest of this run)' : ''}`);
    if (down) this.down = errorMessage(err);
  }
}
