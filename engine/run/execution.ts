// The state one execute() call shares among its stages and their result sources: the run's stop
// signal, the worker pools, the run history stages read, and how a result becomes the stage's
// (known to the plan, linked, referenced).
import type { Pipeline } from '../config/pipeline.js';
import type { RunStageSummary } from '../contract.js';
import type { FactsEnv } from '../plan/facts.js';
import type { Manifest } from '../store/manifest.js';
import { RunLiveEvents } from '../store/live-events.js';
import { RunStageLogs } from '../store/stage-logs.js';
import type { Store } from '../store/store.js';
import { SharedPools } from './context.js';
import type { ExecuteOptions, StageUi } from './execute-options.js';
import { restoreOuts } from './restore-outs.js';
import { runHistory } from './run-history.js';

export class Execution {
  readonly pipeline: Pipeline;
  readonly store: Store;
  /** The environment stages are decided and run in: its signal stops this run's stages. */
  readonly stageEnv: FactsEnv;
  /** Stages finished so far (what `runs` in a stage's context shows of the current run). */
  readonly finished: RunStageSummary[] = [];
  readonly history: ReturnType<typeof runHistory>;
  /** Each stage's log lines, kept in the run area (store/stage-logs.ts). */
  readonly logs: RunStageLogs;
  /** The run's live state for `pipeline ui` (store/live-events.ts). */
  readonly live: RunLiveEvents;
  /** The options, with a ui whose stage loggers also write to the stage's kept log. */
  readonly opts: ExecuteOptions;
  private sharedPools: Promise<SharedPools> | undefined;

  constructor(
    opts: ExecuteOptions,
    readonly signal: AbortSignal,
  ) {
    this.logs = new RunStageLogs(opts.env.store.runs.dir, opts.runId);
    this.live = new RunLiveEvents(opts.env.store.runs.dir, opts.runId);
    this.opts = {
      ...opts,
      ui: keptUi(opts.ui, this.logs, this.live),
      onStageStart: (stage) => {
        this.live.stage(stage, 'running');
        opts.onStageStart?.(stage);
      },
    };
    this.pipeline = opts.env.pipeline;
    this.live.plan(opts.stages.map((name) => ({ name, kind: this.pipeline.stages.get(name)!.kind, needs: [...this.pipeline.stages.get(name)!.needs] })));
    this.store = opts.env.store;
    this.stageEnv = { ...opts.env, signal };
    this.history = runHistory(
      this.store,
      {
        id: opts.runId,
        startedAt: opts.run?.startedAt ?? new Date().toISOString(),
        command: opts.run?.command ?? [],
        ...(opts.run?.scheduled ? { scheduled: opts.run.scheduled } : {}),
        ...(opts.run?.experiment ? { experiment: opts.run.experiment } : {}),
      },
      () => this.finished,
    );
  }

  get env(): FactsEnv {
    return this.opts.env;
  }

  /** A sweep's experiment: stage links, refs and workspace outs are left alone (results stay in the store). */
  get experiment(): boolean {
    return this.opts.sweep !== undefined;
  }

  /** A worker's run: the worker's name, recorded in the manifests of the results it computes. */
  get producer(): string | undefined {
    return this.opts.workerJob?.producer;
  }

  /** Worker thread pools, started by the first stage that needs them. */
  pools(): Promise<SharedPools> {
    return (this.sharedPools ??= SharedPools.create());
  }

  async close(): Promise<void> {
    this.logs.close();
    this.live.close();
    if (this.sharedPools) await (await this.sharedPools).destroy();
  }

  /** A result produced (or pulled) for the stage: known to the plan, then linked and referenced. */
  async adopt(stage: string, m: Manifest): Promise<void> {
    this.opts.facts.stored.set(m.key, { manifest: m, missingObjects: [], workspaceMissing: [] });
    await this.finishRef(stage, m);
  }

  async finishRef(stage: string, m: Manifest): Promise<void> {
    await this.store.ensureView(m);
    if (this.experiment) return;
    await this.store.linkStage(stage, m.key);
    if (this.opts.refs.get(stage)?.key !== m.key) {
      this.opts.refs.set(stage, { key: m.key, at: new Date().toISOString() });
      await this.store.writeRefs(this.opts.refs);
    }
  }

  /** Puts a cmd stage's committed outs back into the workspace. */
  restore(m: Manifest, outs: readonly string[]): Promise<void> {
    return restoreOuts(this.store, this.env.statCache, this.pipeline.root, m, outs, this.signal);
  }
}

/** The ui with each stage's info and warning lines (what the terminal shows of it) also kept in its log, and lines and progress in the live events. */
function keptUi(ui: StageUi, logs: RunStageLogs, live: RunLiveEvents): StageUi {
  return {
    progress(stage) {
      const shown = ui.progress(stage);
      return {
        start(label: string, total: number, unit?: string) {
          live.progressStart(stage, label, total, unit);
          shown.start(label, total, unit);
        },
        tick(n = 1, status?: string) {
          live.progressAt(stage, (v) => v + n, status);
          shown.tick(n, status);
        },
        update(value: number, status?: string) {
          live.progressAt(stage, value, status);
          shown.update(value, status);
        },
        done(status?: string) {
          live.progressAt(stage, (v) => v, status, true);
          shown.done(status);
        },
      };
    },
    logger(stage) {
      const shown = ui.logger(stage);
      return {
        info(line: string) {
          logs.line(stage, line);
          live.line(stage, line);
          shown.info(line);
        },
        warn(line: string) {
          logs.line(stage, `warning: ${line}`);
          live.line(stage, `warning: ${line}`);
          shown.warn(line);
        },
        debug: (line: string) => shown.debug(line),
      };
    },
  };
}
