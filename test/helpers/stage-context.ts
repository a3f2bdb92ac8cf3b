// A minimal StageContext over plain directories, for unit-testing a stage kind's `run` without
// the engine (no store, no cache). End-to-end tests go through the real CLI instead.
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Piscina } from 'piscina';
import type {
  InputArtifacts,
  Logger,
  RunHistory,
  OutputWriter,
  ProgressReporter,
  StageContext,
  StageKind,
  UpstreamArtifacts,
  WorkerPools,
} from '../../engine/contract.js';
import { hashFile } from '../../engine/store/hash.js';
import { createNpyWriter, readNpy, writeNpy } from '../../lib/npy.js';

export interface FakeUpstream {
  kind: string;
  /** Directory holding that stage's outputs. */
  dir: string;
  params?: Record<string, unknown>;
  provenance?: UpstreamArtifacts['provenance'];
}

/** A run history with no earlier runs (or the given ones), for stages that read it. */
export function fakeRunHistory(parts: Partial<RunHistory> = {}): RunHistory {
  return {
    current: () => ({ id: 'test-run', command: ['run'], startedAt: '2026-01-01T00:00:00.000Z', outcome: 'running', stages: [] }),
    earlier: async () => [],
    result: async () => undefined,
    changes: async () => [],
    ...parts,
  };
}

function sidecarOf(name: string): string {
  return name.replace(/\.npy$/, '') + '.json';
}

function upstream(stage: string, u: FakeUpstream): UpstreamArtifacts {
  return {
    stage,
    kind: u.kind,
    params: u.params ?? {},
    provenance: u.provenance ?? {
      key: `key-of-${stage}`,
      outputsDigest: `digest-of-${stage}`,
      createdAt: '2026-01-01T00:00:00.000Z',
      durationMs: 0,
      runId: 'test-run',
    },
    list: () => [],
    has: (name) => existsSync(join(u.dir, name)),
    path: (name) => join(u.dir, name),
    readJson: async <T>(name: string) => JSON.parse(await readFile(join(u.dir, name), 'utf8')) as T,
    readTensor: async (name) => {
      const array = await readNpy(join(u.dir, name));
      const side = join(u.dir, sidecarOf(name));
      if (existsSync(side)) array.meta = JSON.parse(await readFile(side, 'utf8')) as Record<string, unknown>;
      return array;
    },
    digest: (name) => (existsSync(join(u.dir, name)) ? `sha256-of-${stage}/${name}` : undefined),
  };
}

export function fakeInputs(inputs: Record<string, FakeUpstream>): InputArtifacts {
  const all = Object.entries(inputs).map(([name, u]) => upstream(name, u));
  return {
    all,
    stage: (name) => {
      const found = all.find((a) => a.stage === name);
      if (!found) throw new Error(`no input stage ${name}`);
      return found;
    },
    ofKind: (kind) => all.filter((a) => a.kind === kind),
    oneOfKind: (kind) => {
      const found = all.filter((a) => a.kind === kind);
      if (found.length !== 1) throw new Error(`expected one ${kind} input, found ${found.length}`);
      return found[0]!;
    },
  };
}

export function dirWriter(dir: string): OutputWriter {
  const path = (name: string) => join(dir, name);
  const ensure = async (p: string) => mkdir(dirname(p), { recursive: true });
  return {
    dir,
    path: (name) => {
      mkdirSync(dirname(path(name)), { recursive: true });
      return path(name);
    },
    json: async (name, value) => {
      await ensure(path(name));
      await writeFile(path(name), JSON.stringify(value, null, 2) + '\n');
    },
    tensor: async (name, array, meta) => {
      await ensure(path(name));
      await writeNpy(path(name), array);
      if (meta) await writeFile(path(sidecarOf(name)), JSON.stringify(meta, null, 2) + '\n');
    },
    tensorStream: async (name, dtype, shape, meta) => {
      await ensure(path(name));
      if (meta) await writeFile(path(sidecarOf(name)), JSON.stringify(meta, null, 2) + '\n');
      return createNpyWriter(path(name), dtype, shape);
    },
    reuse: async (name, from, fromName) => {
      await ensure(path(name));
      await copyFile(from.path(fromName), path(name));
    },
  };
}

/** A stage's digestFile without a stat cache: every call reads and hashes the file. */
export function hashingDigestFile(root = process.cwd()): StageContext<unknown>['digestFile'] {
  return (path) => hashFile(resolve(root, path));
}

export const quietLogger: Logger = { info: () => {}, warn: () => {}, debug: () => {} };
export const quietProgress: ProgressReporter = { start: () => {}, tick: () => {}, update: () => {}, done: () => {} };

export function testPools(): WorkerPools & { destroy(): Promise<void> } {
  const pools = new Map<string, Piscina>();
  return {
    get(filename, options) {
      const key = `${filename}#${options?.threads ?? 0}`;
      let pool = pools.get(key);
      if (!pool) {
        const threads = options?.threads ?? 2;
        pool = new Piscina({ filename, minThreads: threads, maxThreads: threads });
        pools.set(key, pool);
      }
      return pool;
    },
    async destroy() {
      await Promise.all([...pools.values()].map((p) => p.destroy()));
    },
  };
}

export interface FakeRun {
  outDir: string;
  resumeDir: string;
  destroy(): Promise<void>;
}

/** Runs `kind` with parsed `params` over fake inputs; outputs land in a fresh temp dir. */
export async function runStage<P>(
  kind: StageKind,
  rawParams: unknown,
  inputs: Record<string, FakeUpstream> = {},
  options: {
    signal?: AbortSignal;
    root?: string;
    resumeDir?: string;
    fingerprint?: Record<string, unknown>;
    log?: Logger;
    progress?: ProgressReporter;
    runs?: RunHistory;
    /** The stage's previous result (for incremental kinds). */
    previous?: FakeUpstream;
    /** Default: hashes the file every time (no stat cache). */
    digestFile?: StageContext<P>['digestFile'];
  } = {},
): Promise<FakeRun> {
  const outDir = await mkdtemp(join(tmpdir(), `stage-${kind.name}-`));
  // A resume dir made here is the test's only if it passed one: no one can resume from this one.
  const ownResumeDir = options.resumeDir === undefined;
  const resumeDir = options.resumeDir ?? (await mkdtemp(join(tmpdir(), `resume-${kind.name}-`)));
  const pools = testPools();
  const root = options.root ?? process.cwd();
  const ctx: StageContext<P> = {
    stage: kind.name,
    params: kind.params.parse(rawParams) as P,
    root,
    inputs: fakeInputs(inputs),
    out: dirWriter(outDir),
    resumeDir,
    log: options.log ?? quietLogger,
    progress: options.progress ?? quietProgress,
    signal: options.signal ?? new AbortController().signal,
    workers: pools,
    fingerprint: options.fingerprint ?? {},
    digestFile: options.digestFile ?? hashingDigestFile(root),
    runs: options.runs ?? fakeRunHistory(),
    ...(options.previous ? { previous: upstream(kind.name, options.previous) } : {}),
  };
  try {
    await kind.run(ctx as StageContext<unknown>);
  } catch (err) {
    // Like the engine: a failed stage leaves no outputs behind (the resume dir is kept on purpose).
    // Retries: a failing stage's last in-flight writes (e.g. an aborted unpack) may still land.
    await rm(outDir, { recursive: true, force: true, maxRetries: 5 });
    throw err;
  } finally {
    await pools.destroy();
    if (ownResumeDir) await rm(resumeDir, { recursive: true, force: true, maxRetries: 5 });
  }
  return { outDir, resumeDir, destroy: pools.destroy };
}

export async function listTree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}
