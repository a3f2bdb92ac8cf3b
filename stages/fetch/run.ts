// `fetch`'s work (stages/fetch/fetch.ts declares the kind and its cache key): download or copy the
// source, unpack or pack it, and write fetch.json.
import { copyFile, mkdir, rename, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { StageContext } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { digestFile, verifyChecksums, type DeclaredChecksums, type FileDigests } from '../../lib/fetch/digest.js';
import { discardDownload, download, type DownloadResult } from '../../lib/fetch/download.js';
import type { RemoteValidators } from '../../lib/fetch/http.js';
import { extractArchive, packArchive, sniffArchiveFormat, type ArchiveFormat, type ExtractStats } from '../../lib/fetch/extract.js';
import { copyDirectory, localSourcePath, localSourceType } from '../../lib/fetch/local.js';
import { PACK_DIR, PackReader, PackWriter } from '../../lib/fetch/pack.js';
import { addLocalFile, packDirectory } from '../../lib/fetch/pack-directory.js';
import { declaredChecksums, layoutFor, sourceFileName, unpackPlan, type FetchParams, type FetchRecord, type Layout, type UnpackPlan } from './fetch.js';

export async function runFetch(ctx: StageContext<FetchParams>): Promise<void> {
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

async function archiveFormatFor(plan: UnpackPlan, path: string, name: string): Promise<ArchiveFormat | null> {
  if (plan === 'file') return null;
  if (plan !== 'sniff') return plan;
  const sniffed = await sniffArchiveFormat(path);
  if (!sniffed) throw new StageError(`extract: true, but ${name} is not a .tar, .tar.gz or .zip archive`);
  return sniffed;
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
  }
}
