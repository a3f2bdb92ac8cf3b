// Builds the StageContext (engine/contract.ts) a kind stage runs with: inputs read from upstream
// views, an OutputWriter into a temporary directory, logger/progress, AbortSignal, shared pools.
import { mkdirSync, type BigIntStats } from 'node:fs';
import { copyFile, link, mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Piscina } from 'piscina';
import type {
  InputArtifacts,
  RunHistory,
  Logger,
  OutputWriter,
  ProgressReporter,
  StageContext,
  TensorStream,
  UpstreamArtifacts,
  WorkerPools,
} from '../contract.js';
import { StageError } from '../errors.js';
import type { Manifest } from '../store/manifest.js';
import { provenanceOf } from './run-history.js';
import { createNpyWriter, readNpy, writeNpy, type DType } from '../../lib/npy.js';

export interface Upstream {
  stage: string;
  manifest: Manifest;
  /** views/<key> of the manifest (a readable tree of its outputs). */
  view: string;
}

function sidecarOf(name: string): string {
  return name.replace(/\.npy$/, '') + '.json';
}

/** Resolves `name` under `dir`, refusing names that escape it. */
function inside(dir: string, name: string, what: string): string {
  const p = resolve(dir, name);
  const rel = relative(dir, p);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new StageError(`${what}: invalid output name ${JSON.stringify(name)}`);
  return p;
}

export function upstreamArtifacts(u: Upstream): UpstreamArtifacts {
  const entries = u.manifest.entries;
  const has = (name: string) => entries.includes(name) || name in u.manifest.files || u.manifest.dirs.includes(name);
  const path = (name: string) => {
    if (!has(name)) throw new StageError(`input ${u.stage} has no output ${name} (it has: ${entries.join(', ') || 'nothing'})`);
    return join(u.view, name);
  };
  return {
    stage: u.stage,
    kind: u.manifest.kind,
    params: u.manifest.params,
    provenance: provenanceOf(u.manifest),
    list: () => [...entries],
    has,
    path,
    async readJson<T>(name: string): Promise<T> {
      const p = path(name);
      try {
        return JSON.parse(await readFile(p, 'utf8')) as T;
      } catch (err) {
        throw new StageError(`input ${u.stage}/${name}: ${(err as Error).message}`, { cause: err });
      }
    },
    async readTensor(name) {
      const p = path(name);
      const array = await readNpy(p);
      const side = sidecarOf(name);
      if (side in u.manifest.files) array.meta = JSON.parse(await readFile(join(u.view, side), 'utf8')) as Record<string, unknown>;
      return array;
    },
    digest: (name) => u.manifest.files[name]?.digest,
  };
}

export function inputArtifacts(stage: string, upstreams: Upstream[]): InputArtifacts {
  const all = upstreams.map(upstreamArtifacts);
  return {
    all,
    stage(name) {
      const found = all.find((a) => a.stage === name);
      if (!found) throw new StageError(`stage ${stage}: ${name} is not one of its inputs (${all.map((a) => a.stage).join(', ') || 'none'})`);
      return found;
    },
    ofKind: (kind) => all.filter((a) => a.kind === kind),
    oneOfKind(kind) {
      const found = all.filter((a) => a.kind === kind);
      if (found.length !== 1) {
        throw new StageError(
          `stage ${stage}: needs exactly one ${kind} input, found ${found.length}${found.length ? ` (${found.map((a) => a.stage).join(', ')})` : ''}`,
        );
      }
      return found[0]!;
    },
  };
}

/**
 * Writes into `dir`; files taken from committed results with `reuse` are hard links to their
 * objects, listed in `reused` (output path → digest) so the commit need not hash them again.
 */
export function outputWriter(stage: string, dir: string, reused = new Map<string, string>()): OutputWriter {
  const what = `stage ${stage}`;
  const target = async (name: string) => {
    const p = inside(dir, name, what);
    await mkdir(dirname(p), { recursive: true });
    return p;
  };
  return {
    dir,
    path(name) {
      const p = inside(dir, name, what);
      mkdirSync(dirname(p), { recursive: true });
      return p;
    },
    async json(name, value) {
      await writeFile(await target(name), JSON.stringify(value, null, 2) + '\n');
    },
    async tensor(name, array, meta) {
      await writeNpy(await target(name), array);
      if (meta) await writeFile(await target(sidecarOf(name)), JSON.stringify(meta, null, 2) + '\n');
    },
    async tensorStream(name: string, dtype: DType, shape: number[], meta?: Record<string, unknown>): Promise<TensorStream> {
      const p = await target(name);
      if (meta) await writeFile(await target(sidecarOf(name)), JSON.stringify(meta, null, 2) + '\n');
      return createNpyWriter(p, dtype, shape);
    },
    async reuse(name, from, fromName) {
      const digest = from.digest(fromName);
      if (!digest) throw new StageError(`${what}: cannot reuse ${from.stage}/${fromName}: not a file of that result`);
      const p = await target(name);
      try {
        await link(from.path(fromName), p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        await copyFile(from.path(fromName), p); // hashed at commit like any other file
        return;
      }
      reused.set(relative(dir, p).split(/[\\/]/).join('/'), digest);
    },
  };
}

/** Piscina pools shared by all stages of a run, one per (worker file, threads); destroyed at the end. */
export class SharedPools implements WorkerPools {
  private readonly pools = new Map<string, Piscina>();
  constructor(private readonly PiscinaClass: typeof Piscina) {}

  /** Loads piscina only when a kind stage runs (a cached run never pays for it). */
  static async create(): Promise<SharedPools> {
    const { Piscina } = await import('piscina');
    return new SharedPools(Piscina);
  }

  get(filename: string, options?: { threads?: number }): Piscina {
    const threads = Math.max(1, options?.threads ?? availableParallelism());
    const key = `${filename}#${threads}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new this.PiscinaClass({ filename, minThreads: threads, maxThreads: threads });
      this.pools.set(key, pool);
    }
    return pool;
  }

  async destroy(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }
}

export interface ContextParts {
  stage: string;
  params: unknown;
  root: string;
  upstreams: Upstream[];
  outDir: string;
  resumeDir: string;
  log: Logger;
  progress: ProgressReporter;
  signal: AbortSignal;
  workers: WorkerPools;
  fingerprint: Record<string, unknown>;
  /** Digest of a local file through the stat cache. */
  digestFile(path: string, stat?: BigIntStats): Promise<{ digest: string; size: number }>;
  runs: RunHistory;
  /** The stage's latest committed result of the same kind, for incremental kinds. */
  previous?: Upstream;
  /** Filled by `out.reuse`: output path → digest of a file taken from a committed result. */
  reused?: Map<string, string>;
}

export function stageContext(parts: ContextParts): StageContext<unknown> {
  return {
    stage: parts.stage,
    params: parts.params,
    root: parts.root,
    inputs: inputArtifacts(parts.stage, parts.upstreams),
    out: outputWriter(parts.stage, parts.outDir, parts.reused),
    resumeDir: parts.resumeDir,
    log: parts.log,
    progress: parts.progress,
    signal: parts.signal,
    workers: parts.workers,
    fingerprint: Object.freeze({ ...parts.fingerprint }),
    digestFile: (path, stat) => parts.digestFile(path, stat),
    runs: parts.runs,
    ...(parts.previous ? { previous: upstreamArtifacts(parts.previous) } : {}),
  };
}
