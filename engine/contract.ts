// The stage contract: what a stage kind is, and what the engine hands it when it runs.
// Stage kinds (stages/<kind>/) depend on this file and engine/errors.ts only, never on engine
// internals (a layer rule: npm run lint).
import type { BigIntStats } from 'node:fs';
import type { z } from 'zod';
import type { Piscina } from 'piscina';
import type { NdArray, DType } from '../lib/npy.js';
import type { Logger, ProgressReporter } from '../lib/progress.js';

// How a stage logs and shows progress: defined in lib/ (lib code takes them as parameters), part of
// the contract stages implement against.
export type { Logger, ProgressReporter };

/** One declared output of a kind: a top-level entry in the stage's output tree. */
export interface OutputDecl {
  /** File or directory name inside the stage output, e.g. `train_images.npy`, `model/`, `metrics.json`. */
  name: string;
  type: 'tensor' | 'json' | 'file' | 'dir';
  description: string;
  /** Absent optional outputs are not an error. */
  optional?: boolean;
}

/** Cheap facts gathered at plan time that change a stage's results but are not params. */
export interface FingerprintEnv {
  /** Directory of pipeline.yaml: relative paths in params resolve against it. */
  root: string;
  /** Content digest of a local file or directory through the engine's stat cache (no rehash if unchanged). */
  digestPath(path: string): Promise<string>;
  /**
   * The key of the latest result of stage `name` in this store (refs.json), whichever pipeline
   * made it; undefined when there is none. For stages that show other pipelines' results (report).
   */
  latestKey?(name: string): Promise<string | undefined>;
  signal: AbortSignal;
}

export interface StageKind<S extends z.ZodType = z.ZodType> {
  /** The `uses:` name. */
  name: string;
  /** Implementation version: bump when the same inputs and params would give different outputs. */
  version: number;
  description: string;
  /** What it reads from the stages it needs (for docs/kinds.md); absent: nothing (a source). */
  inputs?: string;
  /** Typed params schema (`with:`); also generates the JSON Schema for pipeline.yaml. */
  params: S;
  outputs: OutputDecl[];
  /** Stage names that params refer to (e.g. `init_from: train`): they become implicit `needs`. */
  stageRefs?(params: z.output<S>): string[];
  /**
   * The params as they enter the cache key (default: all of them). E.g. fetch with a declared
   * checksum keys on the checksum alone, so pointing `url` at a mirror is still a cache hit.
   */
  cacheParams?(params: z.output<S>): unknown;
  /**
   * Extra cache-key material that is not in params, e.g. a remote's ETag, or the tfjs backend
   * and package versions. Called at plan time (also by `status` and `--dry-run`): keep it cheap.
   * Undefined: nothing to add (the key has no fingerprint member, as for a kind without one).
   */
  fingerprint?(params: z.output<S>, env: FingerprintEnv): Promise<Record<string, unknown> | undefined>;
  run(ctx: StageContext<z.output<S>>): Promise<void>;
}

/** Type helper so a kind's `run` sees its own params type. */
export function defineStage<S extends z.ZodType>(kind: StageKind<S>): StageKind<S> {
  return kind;
}

/** Where a committed result came from: enough to trace a figure back to its exact inputs. */
export interface Provenance {
  /** Cache key of the result. */
  key: string;
  /** Digest of its output listing (what downstream keys are built from). */
  outputsDigest: string;
  /** Kind implementation version (kind stages). */
  version?: number;
  /** Runtime facts in its key (backend, package versions...). */
  fingerprint?: Readonly<Record<string, unknown>>;
  /** When it was computed, how long that took, and by which run. */
  createdAt: string;
  durationMs: number;
  runId: string;
}

/** Read-only view of one upstream stage's committed outputs. */
export interface UpstreamArtifacts {
  /** Instance name, e.g. `train_aug`. */
  stage: string;
  /** Kind name, or `cmd` for shell stages. */
  kind: string;
  /** Params the upstream stage ran with (resolved). */
  params: Readonly<Record<string, unknown>>;
  provenance: Provenance;
  /** Top-level output entries (names as declared, e.g. `train_images.npy`, `model`). */
  list(): string[];
  has(name: string): boolean;
  /** Absolute path of an output entry (file or directory). Read-only: never write there. */
  path(name: string): string;
  readJson<T = unknown>(name: string): Promise<T>;
  /** Reads `<name>` (a `.npy` file) fully into memory, with its JSON sidecar if present. */
  readTensor(name: string): Promise<NdArray>;
  /** sha256 of an output file (a path inside the output tree), or undefined for directories / absent files. */
  digest(name: string): string | undefined;
}

export interface InputArtifacts {
  /** All upstream stages (from `needs`, explicit or implied), in declaration order. */
  all: UpstreamArtifacts[];
  /** The upstream stage with this instance name; throws a StageError if it is not an input. */
  stage(name: string): UpstreamArtifacts;
  /** Upstream stages of a given kind (e.g. the `decode` stage feeding `normalize`). */
  ofKind(kind: string): UpstreamArtifacts[];
  /** Exactly one upstream stage of this kind, else a StageError naming what was found. */
  oneOfKind(kind: string): UpstreamArtifacts;
}

/** Writes into the stage's temporary output tree; committed to the store only if `run` resolves. */
export interface OutputWriter {
  /** Temporary output directory (absolute). */
  dir: string;
  /** Absolute path for an output entry; parent directories are created. */
  path(name: string): string;
  json(name: string, value: unknown): Promise<void>;
  /** Writes `<name>` as .npy; `meta` (if given) goes to the sidecar `<name without .npy>.json`. */
  tensor(name: string, array: NdArray, meta?: Record<string, unknown>): Promise<void>;
  /** Streaming .npy writer for tensors too large to hold twice in memory. */
  tensorStream(name: string, dtype: DType, shape: number[], meta?: Record<string, unknown>): Promise<TensorStream>;
  /**
   * Takes file `fromName` of a committed result (an input, or `previous`) into this output as
   * `name`: the same stored object, not copied and not hashed again (a dataset's unchanged shards).
   */
  reuse(name: string, from: UpstreamArtifacts, fromName: string): Promise<void>;
}

export interface TensorStream {
  /** Appends raw elements in C order; the total must match the declared shape. */
  write(chunk: ArrayBufferView): Promise<void>;
  close(): Promise<void>;
}

export interface WorkerPools {
  /**
   * A shared Piscina pool for a worker module (absolute path or file URL of compiled JS).
   * Pools are created once per (file, threads) and destroyed by the engine when the run ends;
   * `threads` defaults to the available cores.
   */
  get(filename: string, options?: { threads?: number }): Piscina;
}

export type RunStageOutcome = 'cached' | 'ran' | 'failed' | 'skipped' | 'aborted';

/** One stage's line in a run record. */
export interface RunStageSummary {
  stage: string;
  outcome: RunStageOutcome;
  key?: string;
  durationMs: number;
}

/** One `pipeline run`, as its record tells it. */
export interface RunSummary {
  id: string;
  command: readonly string[];
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  /** `running` for the current run, or a record left by a run that was killed; `skipped`: a scheduled tick that did not run. */
  outcome: 'running' | 'ok' | 'failed' | 'interrupted' | 'cancelled' | 'skipped';
  stages: readonly RunStageSummary[];
  /** The `schedule:` entry that started it, for scheduled runs. */
  scheduled?: string;
  /** For an experiment of a sweep (`run --matrix`): its values, e.g. `train.batch_size=128`. */
  experiment?: string;
  /** The champion/challenger decision after it (`promote:`), e.g. `promoted: 0.7712 beats 0.7617`. */
  promotion?: { decision: string; reason: string };
}

/** A committed result looked up by key (e.g. an earlier run's metrics); read-only. */
export interface StoredStageResult {
  stage: string;
  kind: string;
  params: Readonly<Record<string, unknown>>;
  provenance: Provenance;
  has(name: string): boolean;
  readJson<T = unknown>(name: string): Promise<T>;
}

/**
 * The run history, for stages that describe runs (report). It is read, not hashed: it is not part
 * of the cache key, so a stage using it must say which runs it covers.
 */
export interface RunHistory {
  /** This run: its id, start, command, and the stages finished so far (a stage's needs are finished before it starts). */
  current(): RunSummary;
  /** Earlier runs of this pipeline's store, oldest first (the current run excluded). */
  earlier(): Promise<RunSummary[]>;
  /** The committed result of a key, or undefined if it is gone (gc) or unreadable. */
  result(key: string): Promise<StoredStageResult | undefined>;
  /** Why result `newKey` differs from `oldKey`, one entry per reason (empty if either is gone). */
  changes(oldKey: string, newKey: string): Promise<KeyChange[]>;
}

/** One reason two results of a stage differ; `text` reads like `status` (`params changed: lr 0.001 → 0.0003`). */
export interface KeyChange {
  what: 'code' | 'params' | 'inputs' | 'runtime';
  text: string;
}

export interface StageContext<P> {
  /** Instance name from pipeline.yaml. */
  stage: string;
  params: P;
  /** Directory of pipeline.yaml (resolve relative paths in params against it). */
  root: string;
  inputs: InputArtifacts;
  out: OutputWriter;
  /**
   * Directory that survives a failed or killed run of the same cache key, for checkpoints and
   * partial downloads; the engine deletes it after a successful commit.
   */
  resumeDir: string;
  log: Logger;
  progress: ProgressReporter;
  /** Aborted on Ctrl-C / SIGTERM or when another stage fails without --keep-going. */
  signal: AbortSignal;
  workers: WorkerPools;
  /** Cache-key facts from `fingerprint()` (e.g. the resolved tfjs backend). */
  fingerprint: Readonly<Record<string, unknown>>;
  /**
   * sha256 (hex) and size of a local file (absolute, or relative to `root`) through the engine's
   * stat cache: a file unchanged since it was last hashed (e.g. by this stage's `digestPath`
   * fingerprint) is not read again. For a stage that takes in many local files (fetch of a folder).
   * `stat`: the file's stat (followed, bigint) the stage's own walk just took, so it is not taken twice.
   */
  digestFile(path: string, stat?: BigIntStats): Promise<{ digest: string; size: number }>;
  runs: RunHistory;
  /**
   * This stage's latest committed result in this store (what `status` compares against), if it
   * has one of the same kind: what an incremental stage builds on (decode keeps the shards of
   * files that did not change). Not part of the cache key: a stage must give equal results with or
   * without it.
   */
  previous?: UpstreamArtifacts;
}
