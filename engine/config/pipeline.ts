// The validated, resolved pipeline: what config loading (engine/config/) produces and what
// planning (engine/plan/) and execution (engine/run/) consume.
import type { PromoteSpec, RetentionSpec, ScheduleEntry } from './automation.js';
import type { SourceLocation } from '../errors.js';
import type { RemoteConfig } from './remote.js';

export interface StageSpec {
  /** Instance name (the key under `stages:`). */
  name: string;
  /** Kind name from `uses:`, or `cmd` for shell-command stages. */
  kind: string;
  /** Resolved params: `${params.x}` substituted, `--set` applied, schema defaults filled. */
  params: Record<string, unknown>;
  /** Shell command (cmd stages only), after `${params.x}` substitution. */
  cmd?: string;
  /**
   * The command as it is run (cmd stages): `cmd` with each `${params.x}` replaced by a reference to
   * an environment variable in `cmdEnv`, so values never become shell code (see docs/pipeline-yaml.md).
   */
  cmdExec?: string;
  cmdEnv?: Record<string, string>;
  /** Workspace paths the command reads (cmd stages), relative to the pipeline root. */
  deps: string[];
  /** Workspace paths the command writes (cmd stages), relative to the pipeline root. */
  outs: string[];
  /** Upstream stages: explicit `needs`, params that name stages, and deps produced by other stages' outs. */
  needs: string[];
  /** Where the stage is declared, for error messages. */
  loc: SourceLocation;
  /** `timeout:` and `retries:` (absent: one attempt, no time limit). Not part of the cache key. */
  attempts?: AttemptPolicy;
}

/** How a stage computed here is attempted (engine/run/sources/attempts.ts). */
export interface AttemptPolicy {
  /** An attempt running longer is stopped and fails as timed out. */
  timeoutMs?: number;
  /** Attempts after the first failed one. */
  retries: number;
  /** Wait before the first retry, doubled before each next one (0: at once). */
  backoffMs: number;
}

export interface Pipeline {
  /** Absolute path of pipeline.yaml. */
  file: string;
  /** Directory of pipeline.yaml: the workspace root, and where `artifacts/` lives. */
  root: string;
  /** Top-level `params:` after `--set params.x=...` overrides. */
  params: Record<string, unknown>;
  /** Stages in declaration order. */
  stages: Map<string, StageSpec>;
  /** A topological order (dependencies first, ties broken by declaration order). */
  order: string[];
  /** `schedule:` entries, in file order (absent: none). */
  schedule?: ScheduleEntry[];
  /** `promote:` (absent: no promotion after runs). */
  promote?: PromoteSpec;
  /** `retention:` (absent: `pipeline schedule` prunes no run records). */
  retention?: RetentionSpec;
  /** `remote:` (the shared artifact cache), if configured. */
  remote?: RemoteConfig;
}
