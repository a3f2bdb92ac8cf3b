// `fetch`: brings a dataset into the store — an http(s) download (resumable, retried, verified),
// or a local file or directory — and unpacks archives safely. Outputs `pack/` (archives and
// directories as packs: a few large files and an index, lib/fetch/pack.ts) or `data/` (the files
// themselves), and `fetch.json`. A local directory is packed incrementally against this stage's
// previous result: unchanged files stay in their packs (the same objects), only new and changed
// files are read.
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineStage, type FingerprintEnv } from '../../engine/contract.js';
import { StageError } from '../../engine/errors.js';
import { offlineHint, withEngineErrors } from '../lib-errors.js';
import type { DeclaredChecksums } from '../../lib/fetch/digest.js';
import { archiveFormatFromName, type ArchiveFormat } from '../../lib/fetch/extract.js';
import type { RemoteValidators } from '../../lib/fetch/http.js';
import { SUPPORTED_SOURCE, isHttpUrl, localSourcePath, localSourceType } from '../../lib/fetch/local.js';
import { PACK_DIR } from '../../lib/fetch/pack.js';
import type { DirectoryChanges } from '../../lib/fetch/pack-directory.js';

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

export type Layout = 'packed' | 'files';

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

  // The implementation is loaded only when the stage runs: a cached run never imports it.
  run: (ctx) => withEngineErrors(async () => (await import('./run.js')).runFetch(ctx), { unreachable: offlineHint(ctx.stage) }),
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
    // http(s) is loaded only for a remote source (a local or declared one never needs it).
    const { headValidators } = await import('../../lib/fetch/http.js');
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
export function layoutFor(layout: FetchParams['layout'], many: boolean): Layout {
  return layout === 'auto' ? (many ? 'packed' : 'files') : layout;
}

export function declaredChecksums(p: FetchParams): DeclaredChecksums | null {
  if (!p.md5 && !p.sha256) return null;
  const declared: DeclaredChecksums = {};
  if (p.md5) declared.md5 = p.md5.toLowerCase();
  if (p.sha256) declared.sha256 = p.sha256.toLowerCase();
  return declared;
}

/** How the fetched file becomes data/: an archive format, `sniff` (extract: true, unknown name), or `file`. */
export type UnpackPlan = ArchiveFormat | 'sniff' | 'file';

export function unpackPlan(extract: FetchParams['extract'], name: string): UnpackPlan {
  if (extract === false) return 'file';
  return archiveFormatFromName(name) ?? (extract === true ? 'sniff' : 'file');
}

/** The file name a source announces (the last URL path segment, or the local base name). */
export function sourceFileName(url: string): string {
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
