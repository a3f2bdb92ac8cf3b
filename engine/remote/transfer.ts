// Moving stage results between the local store and a remote, keeping content addresses:
//   <remote>/objects/ab/cdef…      the objects, named by sha256 as in artifacts/objects/
//   <remote>/manifests/<key>.json  one per cache key, uploaded after all its objects
// so a manifest on the remote always has its objects. Pulled objects are hashed while they
// download and committed only when the digest matches; a pulled manifest is committed last.
// Transfers skip what the other side already has, so an interrupted push or pull resumes where it
// stopped (object by object; a pulled object also from its last byte, where the remote serves
// ranges) and repeating one is a no-op.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import { cacheKey } from '../store/cache-key.js';
import type { ProgressReporter } from '../contract.js';
import { isErrno } from '../store/fs-tree.js';
import { isManifest, outputsDigestOf, type Manifest } from '../store/manifest.js';
import type { Store } from '../store/store.js';
import { RemoteError } from '../errors.js';
import type { RemoteBackend } from './backend.js';

export const remoteObjectPath = (digest: string): string => `objects/${digest.slice(0, 2)}/${digest.slice(2)}`;
export const remoteManifestPath = (key: string): string => `manifests/${key}.json`;

const DIGEST = /^[0-9a-f]{64}$/;
/** Manifests are small; anything bigger is not one of ours. */
const MAX_MANIFEST_BYTES = 64 << 20;

export interface TransferOptions {
  /** Parallel object transfers. */
  jobs: number;
  signal?: AbortSignal;
  /** Bytes moved (started with the total to move). */
  progress?: ProgressReporter;
  progressLabel?: string;
  /** Push: digests to upload even if the remote has an object of that size (found corrupt earlier). */
  reupload?: ReadonlySet<string>;
}

export interface TransferResult {
  manifest: Manifest;
  /** Objects moved in this call, and their bytes. */
  moved: number;
  movedBytes: number;
  /** Objects the receiving side already had. */
  present: number;
  /** Whether the manifest itself was already there. */
  manifestPresent: boolean;
  /** Pull: bytes of partial downloads that were resumed rather than fetched again. */
  resumedBytes?: number;
}

/** Objects of a manifest, once each (several paths may share an object). */
function objectsOf(m: Manifest): { digest: string; size: number }[] {
  const seen = new Map<string, number>();
  for (const f of Object.values(m.files)) seen.set(f.digest, f.size);
  return [...seen].sort(([a], [b]) => (a < b ? -1 : 1)).map(([digest, size]) => ({ digest, size }));
}

/** Uploads a committed result: the objects the remote lacks, then the manifest. */
export async function pushResult(store: Store, remote: RemoteBackend, m: Manifest, options: TransferOptions): Promise<TransferResult> {
  const { signal } = options;
  const objects = objectsOf(m);
  const limit = pLimit(Math.max(1, options.jobs));
  const sizes = await Promise.all(objects.map((o) => limit(() => remote.stat(remoteObjectPath(o.digest), signal))));
  // A remote object of another size is a partial upload from an earlier, interrupted push: redo it.
  const todo = objects.filter((o, i) => sizes[i]?.size !== o.size || options.reupload?.has(o.digest));
  const total = todo.reduce((n, o) => n + o.size, 0);
  const progress = total > 0 ? options.progress : undefined;
  progress?.start(options.progressLabel ?? `push ${m.stage}`, total, 'B');
  await Promise.all(
    todo.map((o) =>
      limit(async () => {
        signal?.throwIfAborted();
        await remote.putFile(remoteObjectPath(o.digest), store.objects.path(o.digest), o.size, signal);
        progress?.tick(o.size);
      }),
    ),
  );
  // Last: once the manifest is there, every object it names is too.
  const manifestPresent = (await remote.stat(remoteManifestPath(m.key), signal)) !== null;
  if (!manifestPresent) await remote.putBytes(remoteManifestPath(m.key), Buffer.from(JSON.stringify(m, null, 2) + '\n'), signal);
  progress?.done();
  return { manifest: m, moved: todo.length, movedBytes: total, present: objects.length - todo.length, manifestPresent };
}

/**
 * Downloads the result for `key` if the remote has it: its manifest (checked), the objects the
 * store lacks (each verified against its digest), then commits view and manifest locally.
 * Null when the remote has no manifest for the key. A corrupt or partial object throws a
 * RemoteError('corrupt') and nothing of that result is committed (verified objects already placed
 * are harmless: content-addressed, unreferenced until a manifest names them).
 */
export async function pullResult(store: Store, remote: RemoteBackend, key: string, options: TransferOptions): Promise<TransferResult | null> {
  const { signal } = options;
  const m = await fetchManifest(remote, key, signal);
  if (!m) return null;
  const objects = objectsOf(m);
  const local = await Promise.all(objects.map((o) => store.objects.has(o.digest)));
  const todo = objects.filter((_, i) => !local[i]);
  const total = todo.reduce((n, o) => n + o.size, 0);
  const progress = total > 0 ? options.progress : undefined;
  progress?.start(options.progressLabel ?? `pull ${m.stage}`, total, 'B');
  const limit = pLimit(Math.max(1, options.jobs));
  const pulls = todo.map((o) => limit(() => downloadObject(store, remote, o.digest, o.size, { ...options, progress })));
  // Let every transfer finish (or fail) before reporting, so no download writes after we return.
  const settled = await Promise.allSettled(pulls);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  const resumedBytes = settled.reduce((n, s) => n + (s.status === 'fulfilled' ? s.value : 0), 0);
  await store.rebuildView(m);
  await store.writeManifest(m);
  progress?.done();
  return { manifest: m, moved: todo.length, movedBytes: total, present: objects.length - todo.length, manifestPresent: false, resumedBytes };
}

/** The remote manifest for `key`, or null. One that is not a well-formed manifest of that key is 'corrupt'. */
export async function fetchManifest(remote: RemoteBackend, key: string, signal?: AbortSignal): Promise<Manifest | null> {
  const path = remoteManifestPath(key);
  const stream = await remote.get(path, signal);
  if (!stream) return null;
  const text = (await readAll(stream, MAX_MANIFEST_BYTES, `${remote.url}${path}`)).toString('utf8');
  const bad = (why: string) => new RemoteError('corrupt', `remote manifest ${remote.url}${path} is not usable: ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad('not JSON (truncated or damaged)');
  }
  if (!isManifest(parsed) || parsed.key !== key) throw bad('not a manifest of this key');
  if (cacheKey(parsed.material) !== key) throw bad('its key material does not hash to its key');
  const problem = unsafeTree(parsed);
  if (problem) throw bad(problem);
  if (outputsDigestOf(parsed.files) !== parsed.outputsDigest) throw bad('its outputs digest does not match its file list');
  return parsed;
}

/** Why a manifest's paths or digests could not be used safely (paths end up as local file names). */
function unsafeTree(m: Manifest): string | undefined {
  const safe = (p: unknown) =>
    typeof p === 'string' &&
    p !== '' &&
    !p.startsWith('/') &&
    !p.split('/').some((s) => s === '' || s === '.' || s === '..') &&
    !p.includes('\\') &&
    !p.includes('\0');
  for (const [path, f] of Object.entries(m.files)) {
    if (!safe(path)) return `unsafe output path ${JSON.stringify(path)}`;
    if (typeof f !== 'object' || f === null || !DIGEST.test(String(f.digest)) || !Number.isSafeInteger(f.size) || f.size < 0)
      return `bad object entry for ${path}`;
  }
  if (!Array.isArray(m.dirs)) return 'no directory list';
  for (const d of [...m.dirs, ...m.entries]) if (!safe(d)) return `unsafe output path ${JSON.stringify(d)}`;
  return undefined;
}

async function readAll(stream: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) {
      stream.destroy();
      throw new RemoteError('corrupt', `${what}: larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Partial downloads, kept across interrupted pulls (under resume/, which gc may clear). */
export const PARTIAL_DIR = 'remote-objects';

/** Downloads in flight, by partial file: two stages sharing an object download it once. */
const inFlight = new Map<string, Promise<number>>();

/**
 * Downloads one object, hashing as it arrives, into resume/remote-objects/<digest>.part; placed in
 * objects/ only if size and digest match. A transfer cut short (network, Ctrl-C) leaves the part
 * file, and the next pull asks only for the rest (HTTP Range) where the server supports it; a
 * corrupt one is deleted. Returns the bytes that were already there (resumed).
 */
function downloadObject(store: Store, remote: RemoteBackend, digest: string, size: number, options: TransferOptions): Promise<number> {
  const part = join(store.resumeRoot, PARTIAL_DIR, `${digest}.part`);
  let running = inFlight.get(part);
  if (!running) {
    running = downloadInto(part, store, remote, digest, size, options).finally(() => inFlight.delete(part));
    inFlight.set(part, running);
  }
  return running;
}

async function downloadInto(part: string, store: Store, remote: RemoteBackend, digest: string, size: number, options: TransferOptions): Promise<number> {
  const { signal } = options;
  signal?.throwIfAborted();
  const path = remoteObjectPath(digest);
  await mkdir(dirname(part), { recursive: true });
  let have = await fileSize(part);
  if (have >= size) {
    await rm(part, { force: true });
    have = 0;
  }
  let hash = createHash('sha256');
  let body: Readable | null;
  if (have > 0 && remote.getFrom) {
    const res = await remote.getFrom(path, have, signal);
    body = res?.body ?? null;
    if (res && res.from === have) {
      // Hash the prefix we hold, then continue with what the server sends after it.
      for await (const chunk of createReadStream(part, { highWaterMark: 1 << 20, signal }) as AsyncIterable<Buffer>) hash.update(chunk);
      options.progress?.tick(have);
    } else have = 0;
  } else {
    have = 0;
    body = await remote.get(path, signal);
  }
  if (!body) throw new RemoteError('corrupt', `remote object ${remote.url}${path} is missing (its manifest lists it); not used`, { digest });
  if (have === 0) hash = createHash('sha256');
  let got = have;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      got += chunk.length;
      options.progress?.tick(chunk.length);
      done(null, chunk);
    },
  });
  try {
    await pipeline(body, tap, createWriteStream(part, { flags: have > 0 ? 'a' : 'w' }), { signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    // A body cut short by the server or the network: kept to resume, never committed.
    throw new RemoteError('unreachable', `downloading ${remote.url}${path}: ${(err as Error).message}; not stored (the next pull resumes it)`, {
      cause: err,
      digest,
    });
  }
  const actual = hash.digest('hex');
  if (got !== size || actual !== digest) {
    await rm(part, { force: true });
    throw new RemoteError(
      'corrupt',
      `remote object ${remote.url}${path} is corrupt: ${got !== size ? `${got} bytes instead of ${size}` : `its content hashes to ${actual.slice(0, 16)}…`}; not stored`,
      { digest },
    );
  }
  // adopt() hashes again: the bytes on disk are the bytes placed, whatever happened in between.
  const placed = await store.objects.adopt(part, signal);
  if (placed.digest !== digest) throw new RemoteError('corrupt', `object ${digest.slice(0, 16)}… changed on local disk while being stored`);
  return have;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
}
