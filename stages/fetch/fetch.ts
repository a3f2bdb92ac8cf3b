// `fetch`: brings a dataset into the store — an http(s) download (resumable, retried, verified),
// or a local file or directory — and unpacks archives safely. Outputs `pack/` (archives and
// directories as packs: a few large files and an index, lib/fetch/pack.ts) or `data/` (the files
// themselves), and `fetch.json`. A local directory is packed incrementally against this stage's
// previous result: unchanged files stay in their packs (the same objects), only new and changed
// files are read.
import { copyFile, mkdir, rename, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineStage, type FingerprintEnv, type StageContext } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { offlineHint, withEngineErrors } from '../lib-errors.js';
import { digestFile, verifyChecksums, type DeclaredChecksums, type FileDigests } from '../../lib/fetch/digest.js';
import { discardDownload, download, type DownloadResult } from '../../lib/fetch/download.js';
import { archiveFormatFromName, extractArchive, packArchive, sniffArchiveFormat, type ArchiveFormat, type ExtractStats } from '../../lib/fetch/extract.js';
import { headValidators, type RemoteValidators } from '../../lib/fetch/http.js';
import { SUPPORTED_SOURCE, copyDirectory, isHttpUrl, localSourcePath, localSourceType } from '../../lib/fetch/local.js';
import { PACK_DIR, PackReader, PackWriter } from '../../lib/fetch/pack.js';
import { addLocalFile, packDirectory, type DirectoryChanges } from '../../lib/fetch/pack-directory.js';

export const fetchParams = z.strictObject({
  url: z
    .string()
    .min(1)
    .regex(SUPPORTED_SOURCE, 'expected an http(s):// or file:// URL, or a local path')
    .describe(
      'http(s):// (resumable with HTTP Range) or file:// URL, or a path (file or directory) relative to the workspace. With a declared md5/sha256 the url is not in the cache key (a mirror with the same checksum is a cache hit).',
    ),
  md5: z
    .string()
    .regex(/^[0-9a-fA-F]{32}$/, 'md5 must be 32 hex digits')
    .optional()
    .describe(
      "Expected md5 of the file; a mismatch fails naming both digests. A declared checksum is the cache key; without one the key is the remote's ETag / Last-Modified / Content-Length (a HEAD request) or a local source's content digest.",
    ),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'sha256 must be 64 hex digits')
    .optional()
    .describe('Expected sha256 of the file (as md5).'),
  extract: z
    .union([z.literal('auto'), z.boolean()])
    .default('auto')
    .describe('Unpack archives: auto = by extension (.tar.gz, .tgz, .tar, .zip); true = also sniff the content; false = keep the file.'),
  layout: z
    .enum(['auto', 'packed', 'files'])
    .default('auto')
    .describe(
      'How the files are stored: packed = pack/ (index.json and packs of up to 64 MB: an archive or a folder of 60,000 files is a few objects, taken in without writing each file; a folder is packed incrementally); files = data/, one file each (for cmd stages that read files); auto = packed for archives and directories, files for a single other file.',
    ),
  retries: z
    .number()
    .int()
    .min(0)
    .default(5)
    .describe('Failed download attempts allowed in a row without progress (exponential backoff; a dropped transfer resumes with HTTP Range).'),
  timeout: z.number().positive().default(60).describe('Seconds without data before a download attempt fails.'),
});

export type FetchParams = z.output<typeof fetchParams>;

/** `fetch.json`: where the data came from and what it is. */
export interface FetchRecord {
  source: string;
  type: 'http' | 'file' | 'directory';
  /** File name of the fetched file (null for a directory). */
  name: string | null;
  bytes: number | null;
  md5: string | null;
  sha256: string | null;
  /** Content digest of a local directory (from the engine's stat cache), else null. */
  digest: string | null;
  /** ETag / Last-Modified / Content-Length of the response the file came from (http only). */
  validators: RemoteValidators | null;
  /** The archive format that was unpacked, or null for a plain file or a directory. */
  archive: ArchiveFormat | null;
  /** `packed`: the files are in pack/ (index.json + packs); `files`: in data/. */
  layout: Layout;
  /** Regular files fetched. */
  files: number;
  /** Packs in pack/ (null for layout files). */
  packs: number | null;
  /** A packed local directory: what changed since this stage's previous result (null otherwise). */
  changes: ({ since: string } & DirectoryChanges) | null;
}

type Layout = 'packed' | 'files';

export const fetchStage = defineStage({
  name: 'fetch',
  version: 1,
  description: 'Download (http/https, resumable, checksum-verified) or copy a dataset, unpacking archives safely.',
  params: fetchParams,
  outputs: [
    {
      name: PACK_DIR,
      type: 'dir',
      optional: true,
      description: 'layout packed: the files as packs, index.json (path, size, pack, offset, sha256, crc32 of each) and <id>.bin packs of up to 64 MB.',
    },
    {
      name: 'data',
      type: 'dir',
      optional: true,
      description: 'layout files: the unpacked archive, the fetched file itself, or a copy of a local directory.',
    },
    {
      name: 'fetch.json',
      type: 'json',
      description: 'Source, size, md5/sha256, remote validators, archive format, layout, file count, changes since the previous result.',
    },
  ],

  // A declared checksum pins the content: key on it (and on how it is unpacked), not on the URL, so
  // a mirror is still a cache hit. retries/timeout never change the result.
  cacheParams(p) {
    const declared = declaredChecksums(p);
    if (!declared) return { url: p.url, extract: p.extract, layout: p.layout };
    const name = sourceFileName(p.url);
    const plan = unpackPlan(p.extract, name);
    return { ...declared, unpack: plan === 'file' ? { file: name } : plan, layout: layoutFor(p.layout, plan !== 'file') };
  },

  // lib/fetch raises its own errors: translated into what the user sees (stages/lib-errors.ts).
  // A host that cannot be reached (offline, a firewall): the error says how to use a local copy.
  fingerprint: (p, env) => withEngineErrors(() => fetchFingerprint(p, env), { unreachable: offlineHint() }),

  run: (ctx) => withEngineErrors(() => runFetch(ctx), { unreachable: offlineHint(ctx.stage) }),
});

/** Keys an undeclared source: a local one on its content digest, a remote one on its validators (HEAD). */
async function fetchFingerprint(p: FetchParams, env: FingerprintEnv): Promise<Record<string, unknown>> {
  if (declaredChecksums(p)) return {};
  const local = localSourcePath(p.url, env.root);
  if (local) {
    await localSourceType(local);
    return { digest: await env.digestPath(local) };
  }
  try {
    const v = await headValidators(p.url, { timeoutMs: p.timeout * 1000, signal: env.signal });
    return { etag: v.etag, lastModified: v.lastModified, contentLength: v.contentLength };
  } catch (err) {
    if (env.signal.aborted) throw err;
    throw new StageError(`cannot read the validators of ${p.url} (${(err as Error).message}); declare md5 or sha256 to key the cache on the checksum instead`, {
      cause: err,
    });
  }
}

/** The layout a source gets: `auto` packs archives and directories, and keeps a single other file as it is. */
function layoutFor(layout: FetchParams['layout'], many: boolean): Layout {
  return layout === 'auto' ? (many ? 'packed' : 'files') : layout;
}

async function runFetch(ctx: StageContext<FetchParams>): Promise<void> {
  const p = ctx.params;
  const declared = declaredChecksums(p) ?? {};
  const local = localSourcePath(p.url, ctx.root);
  let record: FetchRecord;
  if (local && (await localSourceType(local)) === 'directory') {
    if (declared.md5 || declared.sha256) throw new StageError(`md5/sha256 apply to a file, but ${p.url} is a directory`);
    record = await fetchDirectory(ctx, local, layoutFor(p.layout, true));
  } else {
    const name = local ? basename(local) : sourceFileName(p.url);
    const fetched = local ? await hashLocalFile(ctx, local, name, declared) : await downloadRemote(ctx, name, declared);
    const format = await archiveFormatFor(unpackPlan(p.extract, name), fetched.path, name);
    const layout = layoutFor(p.layout, format !== null);
    const stored = format ? await unpack(ctx, fetched, name, format, layout) : await keepFile(ctx, fetched, name, local !== null, layout);
    record = {
      source: p.url,
      type: local ? 'file' : 'http',
      name,
      bytes: fetched.digests.bytes,
      md5: fetched.digests.md5,
      sha256: fetched.digests.sha256,
      digest: null,
      validators: fetched.validators,
      archive: format,
      layout,
      ...stored,
      changes: null,
    };
  }
  await ctx.out.json('fetch.json', record);
}

/** A local directory: packed against the previous result (unchanged files are neither read nor hashed), or copied. */
async function fetchDirectory(ctx: StageContext<FetchParams>, dir: string, layout: Layout): Promise<FetchRecord> {
  const digest = typeof ctx.fingerprint.digest === 'string' ? ctx.fingerprint.digest : null;
  const base = { source: ctx.params.url, type: 'directory' as const, name: null, md5: null, sha256: null, digest, validators: null, archive: null, layout };
  if (layout === 'files') {
    ctx.log.info(`copying directory ${dir}`);
    const files = await copyDirectory(dir, ctx.out.path('data'), ctx.signal);
    return { ...base, bytes: null, files, packs: null, changes: null };
  }
  const previous = await previousPack(ctx);
  const phases = { digest: 'check files', pack: 'pack files' };
  let phase: keyof typeof phases | undefined;
  try {
    const result = await packDirectory({
      src: dir,
      dest: ctx.out.path(PACK_DIR),
      digest: (path, stat) => ctx.digestFile(path, stat),
      ...(previous ? { previous: { reader: previous, carry: (file) => ctx.out.reuse(`${PACK_DIR}/${file}`, ctx.previous!, `${PACK_DIR}/${file}`) } } : {}),
      signal: ctx.signal,
      onProgress: (now, done, total) => {
        if (now !== phase) {
          if (phase) ctx.progress.done();
          phase = now;
          ctx.progress.start(phases[now], total, 'file');
        }
        ctx.progress.update(done);
      },
      warn: (message) => ctx.log.warn(message),
    });
    if (phase) ctx.progress.done(previous ? `${result.changes.added} added, ${result.changes.changed} changed, ${result.changes.removed} removed` : undefined);
    const changes = previous ? { since: ctx.previous!.provenance.key, ...result.changes } : null;
    return { ...base, bytes: result.bytes, files: result.files, packs: result.index.packs.length, changes };
  } finally {
    previous?.close();
  }
}

/** This stage's previous pack, when it has one this run can read (else every file is read). */
async function previousPack(ctx: StageContext<FetchParams>): Promise<PackReader | undefined> {
  if (!ctx.previous?.has(PACK_DIR)) return undefined;
  try {
    return await PackReader.open(ctx.previous.path(PACK_DIR));
  } catch (err) {
    ctx.log.warn(`previous result's pack is unreadable, reading every file: ${(err as Error).message}`);
    return undefined;
  }
}

/** An archive's entries into data/ or straight into packs, with the same safety rules either way. */
async function unpack(
  ctx: StageContext<FetchParams>,
  fetched: FetchedFile,
  name: string,
  format: ArchiveFormat,
  layout: Layout,
): Promise<Pick<FetchRecord, 'files' | 'packs'>> {
  ctx.progress.start(`${layout === 'packed' ? 'pack' : 'extract'} ${name}`, fetched.digests.bytes, 'B');
  const options = { label: name, signal: ctx.signal, onProgress: (done: number) => ctx.progress.update(done) };
  const empty = (stats: ExtractStats) => {
    const only = stats.dirs + stats.symlinks > 0 ? ' (only directories or symlinks)' : '';
    return new StageError(`${name} contains no files${only}: a valid ${format} archive, but nothing to fetch`);
  };
  if (layout === 'files') {
    const stats = await extractArchive(fetched.path, format, ctx.out.path('data'), options);
    if (stats.files === 0) throw empty(stats);
    ctx.progress.done(`${stats.files} files`);
    return { files: stats.files, packs: null };
  }
  const stats = await packArchive(fetched.path, format, ctx.out.path(PACK_DIR), options);
  if (stats.files === 0) throw empty(stats);
  ctx.progress.done(`${stats.index.entries.length} files in ${stats.index.packs.length} pack${stats.index.packs.length === 1 ? '' : 's'}`);
  for (const link of stats.dangling.slice(0, 10)) ctx.log.warn(`skipped symlink "${link}" in ${name}: it leads to no file of the archive`);
  if (stats.dangling.length > 10) ctx.log.warn(`skipped ${stats.dangling.length - 10} more symlinks that lead to no file of ${name}`);
  return { files: stats.index.entries.length, packs: stats.index.packs.length };
}

/** A fetched file that is not unpacked: data/<name>, or a pack of that one file. */
async function keepFile(
  ctx: StageContext<FetchParams>,
  fetched: FetchedFile,
  name: string,
  local: boolean,
  layout: Layout,
): Promise<Pick<FetchRecord, 'files' | 'packs'>> {
  if (layout === 'packed') {
    const writer = new PackWriter(ctx.out.path(PACK_DIR));
    try {
      addLocalFile(writer, name, fetched.path);
      return { files: 1, packs: (await writer.finish()).packs.length };
    } catch (err) {
      writer.abort();
      throw err;
    }
  }
  const dataDir = ctx.out.path('data');
  await mkdir(dataDir, { recursive: true });
  if (local) await copyFile(fetched.path, join(dataDir, name));
  else await moveFile(fetched.path, join(dataDir, name));
  return { files: 1, packs: null };
}

interface FetchedFile {
  path: string;
  digests: FileDigests;
  validators: RemoteValidators | null;
}

async function hashLocalFile(ctx: StageContext<FetchParams>, path: string, name: string, declared: DeclaredChecksums): Promise<FetchedFile> {
  ctx.progress.start(`hash ${name}`, (await stat(path)).size, 'B');
  const digests = await digestFile(path, { signal: ctx.signal, onBytes: (n) => ctx.progress.tick(n) });
  ctx.progress.done();
  verifyChecksums(declared, digests, ctx.params.url);
  return { path, digests, validators: null };
}

async function downloadRemote(ctx: StageContext<FetchParams>, name: string, declared: DeclaredChecksums): Promise<FetchedFile> {
  const p = ctx.params;
  const workDir = join(ctx.resumeDir, 'download');
  const result = await download({
    url: p.url,
    workDir,
    retries: p.retries,
    timeoutMs: p.timeout * 1000,
    signal: ctx.signal,
    reuse: (previous) => reusable(previous, declared, ctx.fingerprint),
    onStart: (total, offset) => {
      ctx.progress.start(`download ${name}`, total ?? 0, 'B');
      ctx.progress.update(offset);
    },
    onProgress: (bytes) => ctx.progress.update(bytes),
    log: (message) => ctx.log.warn(message),
  });
  if (result.reused) ctx.log.info(`reusing ${name} downloaded by an earlier run`);
  else ctx.progress.done(result.resumedAt.length > 0 ? `resumed at ${result.resumedAt.join(', ')}` : undefined);
  try {
    verifyChecksums(declared, result.digests, p.url);
  } catch (err) {
    // A wrong file must not be resumed or reused by the next run.
    await discardDownload(workDir);
    throw err;
  }
  const planned = ctx.fingerprint;
  if ('etag' in planned && (planned.etag !== result.validators.etag || planned.lastModified !== result.validators.lastModified)) {
    ctx.log.warn(
      `${p.url} changed while the pipeline ran (ETag ${String(planned.etag)} → ${String(result.validators.etag)}); the next run will redo this stage`,
    );
  }
  return { path: result.path, digests: result.digests, validators: result.validators };
}

/** A complete download left by a killed run is kept if it is provably the wanted file. */
function reusable(previous: DownloadResult, declared: DeclaredChecksums, planned: Readonly<Record<string, unknown>>): boolean {
  if (declared.md5 || declared.sha256) {
    return (
      (!declared.md5 || declared.md5.toLowerCase() === previous.digests.md5) && (!declared.sha256 || declared.sha256.toLowerCase() === previous.digests.sha256)
    );
  }
  const v = previous.validators;
  return 'etag' in planned && planned.etag === v.etag && planned.lastModified === v.lastModified && planned.contentLength === v.contentLength;
}

function declaredChecksums(p: FetchParams): DeclaredChecksums | null {
  if (!p.md5 && !p.sha256) return null;
  const declared: DeclaredChecksums = {};
  if (p.md5) declared.md5 = p.md5.toLowerCase();
  if (p.sha256) declared.sha256 = p.sha256.toLowerCase();
  return declared;
}

/** How the fetched file becomes data/: an archive format, `sniff` (extract: true, unknown name), or `file`. */
type UnpackPlan = ArchiveFormat | 'sniff' | 'file';

function unpackPlan(extract: FetchParams['extract'], name: string): UnpackPlan {
  if (extract === false) return 'file';
  return archiveFormatFromName(name) ?? (extract === true ? 'sniff' : 'file');
}

async function archiveFormatFor(plan: UnpackPlan, path: string, name: string): Promise<ArchiveFormat | null> {
  if (plan === 'file') return null;
  if (plan !== 'sniff') return plan;
  const sniffed = await sniffArchiveFormat(path);
  if (!sniffed) throw new StageError(`extract: true, but ${name} is not a .tar, .tar.gz or .zip archive`);
  return sniffed;
}

/** The file name a source announces (the last URL path segment, or the local base name). */
function sourceFileName(url: string): string {
  let last: string;
  if (isHttpUrl(url)) {
    const segment = new URL(url).pathname.split('/').pop() ?? '';
    try {
      last = decodeURIComponent(segment);
    } catch {
      last = segment;
    }
  } else {
    last = basename(/^file:\/\//i.test(url) ? fileURLToPath(url) : url);
  }
  const safe = last.replace(/[/\\\0]/g, '_');
  return safe === '' || safe === '.' || safe === '..' ? 'download' : safe;
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
  }
}
