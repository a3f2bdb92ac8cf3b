// The fetch stage kind over a local HTTP server and local files: download + checksum + extraction
// of the real CIFAR-10 archive, resume with Range after a dropped or killed transfer, cache-key
// validators, and every way an archive or a download can be bad — in both layouts (packs, the
// default for archives and directories, and files), which must hold the same files and bytes.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { AbortedError, StageError } from '../engine/errors.js';
import { InterruptedError } from '../lib/errors.js';
import type { FingerprintEnv } from '../engine/contract.js';
import { download } from '../lib/fetch/download.js';
import { extractArchive, packArchive } from '../lib/fetch/extract.js';
import { PACK_DIR, PackReader, readPackIndex } from '../lib/fetch/pack.js';
import { fetchStage, type FetchParams, type FetchRecord } from '../stages/fetch/fetch.js';
import { CLASSES, cifarSource, type CifarSource } from './helpers/dataset.js';
import { TestFileServer } from './helpers/http-server.js';
import { paxRecords, tarBytes, writeTar, writeZip } from './helpers/archive-builders.js';
import { runStage } from './helpers/stage-context.js';
import { runCli, workspace } from './helpers/cli.js';
import { encodeJpeg } from './helpers/jpeg-encode.js';
import { syntheticImage } from './helpers/dataset.js';

let server: TestFileServer;
let cifar: CifarSource;
let cifarUrl: string;
let cifarSize: number;
let cifarMd5: string;
let cifarSha256: string;
let work: string;
const leftovers: string[] = [];
const tmpBefore = new Set<string>();

async function digestOf(path: string, algorithm: 'md5' | 'sha256'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function countFiles(dir: string, predicate: (rel: string) => boolean = () => true): Promise<number> {
  let n = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && predicate(relative(dir, join(entry.parentPath, entry.name)))) n++;
  }
  return n;
}

async function fresh(name: string): Promise<string> {
  return mkdtemp(join(work, `${name}-`));
}

async function run(params: Record<string, unknown>, options: Parameters<typeof runStage>[3] = {}) {
  const result = await runStage(fetchStage, params, {}, { root: work, ...options });
  leftovers.push(result.outDir);
  if (!options.resumeDir) leftovers.push(result.resumeDir);
  const record = JSON.parse(await readFile(join(result.outDir, 'fetch.json'), 'utf8')) as FetchRecord;
  return { ...result, data: join(result.outDir, 'data'), record, files: () => fetchedFiles(result.outDir) };
}

/**
 * The files a fetch output holds, path → bytes, whichever its layout: a pack's entries, or the
 * regular files of data/ (symlinks read through, as decode reads them; dangling ones left out).
 */
async function fetchedFiles(outDir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  if (existsSync(join(outDir, PACK_DIR))) {
    expect(existsSync(join(outDir, 'data'))).toBe(false);
    const reader = await PackReader.open(join(outDir, PACK_DIR));
    try {
      for (const e of reader.index.entries) out.set(e.path, reader.read(e));
    } finally {
      reader.close();
    }
    return out;
  }
  const data = join(outDir, 'data');
  for (const name of (await readdir(data, { recursive: true })).map(String).sort()) {
    const bytes = await readFile(join(data, name)).catch(() => undefined); // directories, dangling links
    if (bytes) out.set(name, bytes);
  }
  return out;
}

/** Directories of a fetch output, whichever its layout. */
async function fetchedDirs(outDir: string): Promise<string[]> {
  if (existsSync(join(outDir, PACK_DIR))) return (await readPackIndex(join(outDir, PACK_DIR))).dirs;
  const data = join(outDir, 'data');
  const out: string[] = [];
  for (const e of await readdir(data, { recursive: true, withFileTypes: true })) if (e.isDirectory()) out.push(relative(data, join(e.parentPath, e.name)));
  return out.sort();
}

const LAYOUTS = ['packed', 'files'] as const;

/** A served file of `size` random bytes (changeable by the test). */
async function servedRandomFile(name: string, size: number): Promise<{ path: string; url: string }> {
  const dir = await fresh('served');
  const path = join(dir, name);
  await writeFile(path, randomBytes(size));
  return { path, url: server.serve(`/${relative(work, dir)}/${name}`, path) };
}

function env(root = work): FingerprintEnv & { digested: string[] } {
  const digested: string[] = [];
  return {
    root,
    digested,
    digestPath: async (path: string) => {
      digested.push(path);
      return `digest-of:${path}`;
    },
    signal: new AbortController().signal,
  };
}

/** Downloads into workDir until at least `bytes` are on disk, then aborts (a killed run); returns the partial size. */
async function interruptedDownload(url: string, workDir: string, bytes: number): Promise<number> {
  const controller = new AbortController();
  // The server stops sending after `bytes`, so the download cannot finish before the abort lands.
  void server.stallNextAfter(bytes);
  const attempt = download({
    url,
    workDir,
    retries: 0,
    timeoutMs: 60_000,
    signal: controller.signal,
    onProgress: (done) => {
      if (done >= bytes) controller.abort();
    },
  });
  await expect(attempt).rejects.toBeInstanceOf(InterruptedError);
  const partial = (await readFile(join(workDir, 'download.part'))).length;
  expect(partial).toBeGreaterThanOrEqual(bytes);
  return partial;
}

beforeAll(async () => {
  for (const name of await readdir(tmpdir())) tmpBefore.add(name);
  work = await mkdtemp(join(tmpdir(), 'fetch-test-'));
  server = await TestFileServer.start();
  cifar = await cifarSource();
  cifarUrl = server.serve('/datasets/cifar10-jpeg.tar.gz', cifar.archive);
  cifarSize = (await readFile(cifar.archive)).length;
  cifarMd5 = await digestOf(cifar.archive, 'md5');
  cifarSha256 = await digestOf(cifar.archive, 'sha256');
});

afterAll(async () => {
  await server?.close();
  for (const dir of leftovers) await rm(dir, { recursive: true, force: true });
  if (work) await rm(work, { recursive: true, force: true });
  // runStage makes its own temp dirs; those of failed runs are not returned to us.
  for (const name of await readdir(tmpdir())) {
    if (!tmpBefore.has(name) && /^(stage|resume)-fetch-/.test(name)) await rm(join(tmpdir(), name), { recursive: true, force: true });
  }
});

describe('fetch over http', () => {
  test('downloads the CIFAR-10 archive, verifies its md5 and packs its entries (no file written per entry)', async () => {
    server.reset();
    const { outDir, record, files } = await run({ url: cifarUrl, md5: cifarMd5 });
    const perClass = cifar.real ? { train: 5000, test: 1000 } : { train: 60, test: 20 };
    const paths = [...(await files()).keys()];
    const index = await readPackIndex(join(outDir, PACK_DIR));
    for (const split of ['train', 'test'] as const) {
      expect(index.dirs.filter((d) => d.startsWith(`${split}/`))).toEqual(CLASSES.map((c) => `${split}/${c}`));
      for (const cls of CLASSES) expect(paths.filter((p) => p.startsWith(`${split}/${cls}/`) && p.endsWith('.jpg'))).toHaveLength(perClass[split]);
    }
    if (cifar.real) expect(paths.filter((p) => p.endsWith('.jpg'))).toHaveLength(60_000);
    // A few large files instead of one per image.
    expect((await readdir(join(outDir, PACK_DIR))).length).toBe(index.packs.length + 1);
    expect(index.packs.length).toBeLessThanOrEqual(cifar.real ? 4 : 1);
    expect(record).toMatchObject({
      source: cifarUrl,
      type: 'http',
      name: 'cifar10-jpeg.tar.gz',
      bytes: cifarSize,
      md5: cifarMd5,
      sha256: cifarSha256,
      archive: 'tar.gz',
      layout: 'packed',
      packs: index.packs.length,
    });
    expect(record.files).toBe(paths.length);
    expect(record.validators?.contentLength).toBe(cifarSize);
    expect(record.validators?.etag).toMatch(/^"/);
    expect(server.requests.map((r) => [r.method, r.range])).toEqual([['GET', null]]);
    expect(server.bytesSent).toBe(cifarSize);
  });

  test('a connection dropped mid-transfer is resumed with Range + If-Range', async () => {
    server.reset();
    const dropAt = Math.floor(cifarSize * 0.4);
    const dropped = server.dropNextAfter(dropAt);
    const { data, record } = await run({ url: cifarUrl, sha256: cifarSha256, extract: false });
    await dropped;
    const gets = server.requestsFor('GET');
    expect(gets).toHaveLength(2);
    expect(gets[0]).toMatchObject({ range: null, status: 200, bytesSent: dropAt });
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(dropAt);
    expect(gets[1]).toMatchObject({ status: 206, ifRange: record.validators?.etag, bytesSent: cifarSize - resumedAt });
    expect(server.bytesSent).toBeLessThan(2 * cifarSize);
    expect(await digestOf(join(data, 'cifar10-jpeg.tar.gz'), 'sha256')).toBe(cifarSha256);
    expect(record).toMatchObject({ archive: null, files: 1, bytes: cifarSize, sha256: cifarSha256 });
  });

  test('an aborted run stops promptly; the rerun completes the file', async () => {
    server.reset();
    const resumeDir = await fresh('resume');
    const controller = new AbortController();
    const stalled = server.stallNextAfter(Math.floor(cifarSize * 0.3));
    // The timeout is far beyond jest's: only the abort can end this run in time.
    const first = run({ url: cifarUrl, md5: cifarMd5, extract: false, timeout: 3600 }, { resumeDir, signal: controller.signal });
    await stalled;
    controller.abort();
    await expect(first).rejects.toBeInstanceOf(AbortedError);

    const { data } = await run({ url: cifarUrl, md5: cifarMd5, extract: false }, { resumeDir });
    expect(await digestOf(join(data, 'cifar10-jpeg.tar.gz'), 'md5')).toBe(cifarMd5);
    expect(server.bytesSent).toBeLessThan(2 * cifarSize);
  });

  test('a killed run leaves a partial file that the next run resumes with Range', async () => {
    server.reset();
    const resumeDir = await fresh('resume');
    const partial = await interruptedDownload(cifarUrl, join(resumeDir, 'download'), Math.floor(cifarSize * 0.3));
    server.reset();
    const { data, record } = await run({ url: cifarUrl, md5: cifarMd5, extract: false }, { resumeDir });
    expect(server.requestsFor('GET').map((r) => [r.range, r.ifRange, r.status])).toEqual([[`bytes=${partial}-`, record.validators?.etag, 206]]);
    expect(server.bytesSent).toBe(cifarSize - partial);
    expect(await digestOf(join(data, 'cifar10-jpeg.tar.gz'), 'md5')).toBe(cifarMd5);
  });

  test('the partial file of a remote that changed since is discarded (If-Range mismatch)', async () => {
    const served = await servedRandomFile('blob.bin', 300_000);
    const resumeDir = await fresh('resume');
    const partial = await interruptedDownload(served.url, join(resumeDir, 'download'), 100_000);
    await writeFile(served.path, randomBytes(250_000));
    server.reset();
    const { data, record } = await run({ url: served.url }, { resumeDir });
    expect(server.requestsFor('GET')).toMatchObject([{ range: `bytes=${partial}-`, status: 200, bytesSent: 250_000 }]);
    expect(await readFile(join(data, 'blob.bin'))).toEqual(await readFile(served.path));
    expect(record.bytes).toBe(250_000);
  });

  test('a server without Range support restarts a dropped transfer from byte 0', async () => {
    const plain = await TestFileServer.start({ ranges: false });
    try {
      const dir = await fresh('plain');
      const file = join(dir, 'blob.bin');
      await writeFile(file, randomBytes(200_000));
      const url = plain.serve('/blob.bin', file);
      void plain.dropNextAfter(50_000);
      const { data } = await run({ url, sha256: await digestOf(file, 'sha256') });
      expect(plain.requestsFor('GET').map((r) => r.status)).toEqual([200, 200]);
      expect(await readFile(join(data, 'blob.bin'))).toEqual(await readFile(file));
    } finally {
      await plain.close();
    }
  });

  test('a transfer that stalls past the timeout is retried and resumed', async () => {
    const served = await servedRandomFile('slow.bin', 200_000);
    server.reset();
    const stalled = server.stallNextAfter(80_000);
    const { data } = await run({ url: served.url, timeout: 0.5, retries: 0 });
    await stalled;
    const gets = server.requestsFor('GET');
    expect(gets).toHaveLength(2);
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(await readFile(join(data, 'slow.bin'))).toEqual(await readFile(served.path));
  });

  test('redirects are followed, for the download and for the validators', async () => {
    const served = await servedRandomFile('moved.bin', 5_000);
    const url = server.redirect('/old/moved.bin', new URL(served.url).pathname);
    server.reset();
    const { data, record } = await run({ url });
    expect(await readFile(join(data, 'moved.bin'))).toEqual(await readFile(served.path));
    expect(record.source).toBe(url);
    expect(await fetchStage.fingerprint!(fetchStage.params.parse({ url }) as FetchParams, env())).toMatchObject({ contentLength: 5_000 });
    expect(server.requests.map((r) => [r.method, r.status])).toEqual([
      ['GET', 302],
      ['GET', 200],
      ['HEAD', 302],
      ['HEAD', 200],
    ]);
  });

  test('a complete download left in resumeDir is reused when the checksum matches', async () => {
    const dir = await fresh('small');
    const archive = await writeTar(join(dir, 'small.tar.gz'), [{ path: 'a.txt', body: 'alpha' }], { gzip: true });
    const url = server.serve('/small/small.tar.gz', archive);
    const md5 = await digestOf(archive, 'md5');
    const resumeDir = await fresh('resume');
    await run({ url, md5 }, { resumeDir });
    server.reset();
    const { files } = await run({ url, md5 }, { resumeDir });
    expect(server.requests).toEqual([]);
    expect((await files()).get('a.txt')?.toString()).toBe('alpha');
  });

  test('transient errors are retried with backoff; progress is reported in bytes', async () => {
    const served = await servedRandomFile('retry.bin', 150_000);
    server.reset();
    server.failNext(503, 2);
    const progress: number[] = [];
    const result = await download({
      url: served.url,
      workDir: await fresh('dl'),
      retries: 2,
      timeoutMs: 10_000,
      signal: new AbortController().signal,
      backoffMs: 1,
      onProgress: (bytes) => progress.push(bytes),
    });
    expect(server.requestsFor('GET').map((r) => r.status)).toEqual([503, 503, 200]);
    expect(result.attempts).toBe(3);
    expect(result.digests.sha256).toBe(await digestOf(served.path, 'sha256'));
    expect(progress.at(-1)).toBe(150_000);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  test('running out of retries, or a 404, is a StageError naming the URL and status', async () => {
    const served = await servedRandomFile('gone.bin', 1000);
    server.reset();
    server.failNext(503, 1);
    await expect(run({ url: served.url, retries: 0 })).rejects.toThrow(new RegExp(`download ${served.url} failed after 1 attempt\\(s\\): .*HTTP 503`));
    server.reset();
    const missing = served.url.replace('gone.bin', 'missing.bin');
    const err = await run({ url: missing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as Error).message).toContain(`${missing}: HTTP 404`);
    expect(server.requests).toHaveLength(1); // not retried
  });

  test('a checksum mismatch names expected and actual digests, and the download is discarded', async () => {
    const served = await servedRandomFile('data.bin', 20_000);
    const actual = await digestOf(served.path, 'md5');
    const wrong = 'c32a1d4ab5d03f1284b67883e8d87530';
    const resumeDir = await fresh('resume');
    const err = await run({ url: served.url, md5: wrong.toUpperCase() }, { resumeDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as Error).message).toBe(`md5 mismatch for ${served.url}: expected ${wrong}, got ${actual}`);
    expect(await readdir(join(resumeDir, 'download'))).toEqual([]);
  });
});

describe('cache key', () => {
  const params = (raw: Record<string, unknown>): FetchParams => fetchStage.params.parse(raw) as FetchParams;

  test('fingerprint() reads validators with HEAD: unchanged remote → same, changed → different', async () => {
    const served = await servedRandomFile('remote.tar.gz', 10_000);
    server.reset();
    const p = params({ url: served.url });
    const first = await fetchStage.fingerprint!(p, env());
    const again = await fetchStage.fingerprint!(p, env());
    expect(first).toEqual(again);
    expect(first).toMatchObject({ contentLength: 10_000, etag: expect.stringMatching(/^"/), lastModified: expect.any(String) });
    expect(server.requests.map((r) => r.method)).toEqual(['HEAD', 'HEAD']);

    await writeFile(served.path, randomBytes(10_001));
    const changed = await fetchStage.fingerprint!(p, env());
    expect(changed).not.toEqual(first);
    expect(changed?.contentLength).toBe(10_001);
    expect(server.requestsFor('GET')).toEqual([]);
  });

  test('a server that refuses HEAD is asked for one byte instead', async () => {
    const noHead = await TestFileServer.start({ head: false });
    try {
      const dir = await fresh('nohead');
      await writeFile(join(dir, 'f.bin'), randomBytes(4_321));
      const url = noHead.serve('/f.bin', join(dir, 'f.bin'));
      const key = await fetchStage.fingerprint!(params({ url }), env());
      expect(key).toMatchObject({ contentLength: 4_321, etag: expect.stringMatching(/^"/) });
      expect(noHead.requests.map((r) => [r.method, r.range, r.status])).toEqual([
        ['HEAD', null, 405],
        ['GET', 'bytes=0-0', 206],
      ]);
      expect(noHead.bytesSent).toBe(1);
    } finally {
      await noHead.close();
    }
  });

  test('an unreachable remote without a checksum is a StageError suggesting one', async () => {
    const closed = await TestFileServer.start();
    const url = closed.url('/x.tar.gz');
    await closed.close();
    await expect(fetchStage.fingerprint!(params({ url, timeout: 5 }), env())).rejects.toThrow(`cannot read the validators of ${url}`);
  });

  test('with a declared checksum the key ignores the URL and needs no network', async () => {
    server.reset();
    const a = params({ url: 'https://mirror-a.invalid/x/cifar.tar.gz', md5: cifarMd5.toUpperCase(), retries: 1 });
    const b = params({ url: 'https://mirror-b.invalid/y/cifar.tar.gz', md5: cifarMd5, timeout: 5 });
    expect(await fetchStage.fingerprint!(a, env())).toEqual({});
    expect(fetchStage.cacheParams!(a)).toEqual(fetchStage.cacheParams!(b));
    expect(fetchStage.cacheParams!(a)).toEqual({ md5: cifarMd5, unpack: 'tar.gz', layout: 'packed' });
    // How the file is unpacked and stored changes the output, so it stays in the key...
    expect(fetchStage.cacheParams!(params({ url: 'https://m.invalid/cifar.tar.gz', md5: cifarMd5, extract: false }))).not.toEqual(fetchStage.cacheParams!(a));
    expect(fetchStage.cacheParams!(params({ url: 'https://m.invalid/cifar.tar.gz', md5: cifarMd5, layout: 'files' }))).not.toEqual(fetchStage.cacheParams!(a));
    // ...as the layout it resolves to: auto is packed for an archive, files for a plain file.
    expect(fetchStage.cacheParams!(params({ url: 'https://m.invalid/cifar.tar.gz', md5: cifarMd5, layout: 'packed' }))).toEqual(fetchStage.cacheParams!(a));
    expect(fetchStage.cacheParams!(params({ url: 'https://m.invalid/x.bin', md5: cifarMd5 }))).toMatchObject({ layout: 'files' });
    // Without a checksum the URL is the identity; retries/timeout never are.
    expect(fetchStage.cacheParams!(params({ url: 'https://m.invalid/c.tgz', retries: 1 }))).toEqual({
      url: 'https://m.invalid/c.tgz',
      extract: 'auto',
      layout: 'auto',
    });
    expect(server.requests).toEqual([]);
  });

  test('local sources are keyed by their content digest through the stat cache', async () => {
    const dir = await fresh('local');
    await writeFile(join(dir, 'f.txt'), 'x');
    const e = env();
    const key = await fetchStage.fingerprint!(params({ url: `${relative(work, dir)}/f.txt` }), e);
    expect(e.digested).toEqual([join(dir, 'f.txt')]);
    expect(key).toEqual({ digest: `digest-of:${join(dir, 'f.txt')}` });
    await expect(fetchStage.fingerprint!(params({ url: 'no/such/file.tar' }), env())).rejects.toThrow(
      `local source not found: ${join(work, 'no/such/file.tar')}`,
    );
  });

  test('the params schema rejects unsupported URLs, malformed digests and unknown keys', () => {
    expect(fetchStage.params.safeParse({ url: 'ftp://host/x.tar' }).success).toBe(false);
    expect(fetchStage.params.safeParse({ url: 'x.tar', md5: 'abc' }).success).toBe(false);
    expect(fetchStage.params.safeParse({ url: 'x.tar', sha256: cifarMd5 }).success).toBe(false);
    expect(fetchStage.params.safeParse({ url: 'x.tar', checksum: cifarMd5 }).success).toBe(false);
    expect(params({ url: 'data/x.tar' })).toEqual({ url: 'data/x.tar', extract: 'auto', layout: 'auto', retries: 5, timeout: 60 });
    expect(fetchStage.params.safeParse({ url: 'x.tar', layout: 'zipped' }).success).toBe(false);
  });
});

describe('local sources', () => {
  test('a file:// URL of an archive is verified and extracted', async () => {
    const dir = await fresh('local');
    const archive = await writeTar(
      join(dir, 'set.tgz'),
      [
        { path: 'set/', type: 'dir' },
        { path: 'set/a.txt', body: 'A' },
        { path: 'set/b.txt', body: 'B' },
      ],
      { gzip: true },
    );
    const { files, record } = await run({ url: pathToFileURL(archive).href, sha256: await digestOf(archive, 'sha256') });
    expect((await files()).get('set/b.txt')?.toString()).toBe('B');
    expect(record).toMatchObject({ type: 'file', name: 'set.tgz', archive: 'tar.gz', files: 2, validators: null, layout: 'packed', packs: 1 });
  });

  test('a relative path to a plain file lands in data/ as is', async () => {
    const dir = await fresh('local');
    await writeFile(join(dir, 'labels.csv'), 'a,b\n');
    const { data, record } = await run({ url: `${relative(work, dir)}/labels.csv`, md5: createHash('md5').update('a,b\n').digest('hex') });
    expect(await readdir(data)).toEqual(['labels.csv']);
    expect(await readFile(join(data, 'labels.csv'), 'utf8')).toBe('a,b\n');
    expect(record).toMatchObject({ archive: null, files: 1, bytes: 4, layout: 'files', packs: null });
    // layout: packed makes a pack of that one file.
    const one = await run({ url: `${relative(work, dir)}/labels.csv`, layout: 'packed' });
    expect(await one.files()).toEqual(new Map([['labels.csv', Buffer.from('a,b\n')]]));
    expect(one.record).toMatchObject({ archive: null, files: 1, layout: 'packed', packs: 1 });
  });

  test.each(LAYOUTS)('a local directory is fetched (symlinked files become files), layout %s', async (layout) => {
    const dir = await fresh('tree');
    await mkdir(join(dir, 'train/cat'), { recursive: true });
    await writeFile(join(dir, 'train/cat/1.png'), 'png');
    await writeFile(join(dir, 'README'), 'r');
    const outside = join(await fresh('outside'), 'extra.txt');
    await writeFile(outside, 'extra');
    const { symlink } = await import('node:fs/promises');
    await symlink(outside, join(dir, 'extra.txt'));
    await mkdir(join(dir, 'empty'));
    const { outDir, files, record } = await run({ url: dir, layout }, { fingerprint: { digest: 'abc' } });
    expect([...(await files()).keys()]).toEqual(['README', 'extra.txt', 'train/cat/1.png']);
    expect(await fetchedDirs(outDir)).toEqual(['empty', 'train', 'train/cat']);
    expect((await files()).get('extra.txt')?.toString()).toBe('extra');
    expect(record).toMatchObject({ type: 'directory', files: 3, digest: 'abc', archive: null, layout, packs: layout === 'packed' ? 1 : null });
    await expect(run({ url: dir, md5: cifarMd5, layout })).rejects.toThrow('md5/sha256 apply to a file');
  });

  test('extract: true sniffs an archive behind an unhelpful name, and refuses a non-archive', async () => {
    const dir = await fresh('sniff');
    await writeFile(join(dir, 'payload.bin'), gzipSync(tarBytes([{ path: 'inside.txt', body: 'in' }])));
    const { files, record } = await run({ url: join(dir, 'payload.bin'), extract: true });
    expect((await files()).get('inside.txt')?.toString()).toBe('in');
    expect(record.archive).toBe('tar.gz');
    await writeFile(join(dir, 'plain.bin'), 'not an archive at all');
    await expect(run({ url: join(dir, 'plain.bin'), extract: true })).rejects.toThrow('extract: true, but plain.bin is not a .tar, .tar.gz or .zip archive');
  });
});

describe.each(LAYOUTS)('bad archives (layout %s)', (layout) => {
  /** The unpacker of this layout, as the stage calls it. */
  const unpack = (archive: string, format: 'tar' | 'tar.gz' | 'zip', dest: string, options: Parameters<typeof extractArchive>[3] = {}) =>
    layout === 'packed' ? packArchive(archive, format, dest, options) : extractArchive(archive, format, dest, options);

  test('a truncated .tar.gz, .tar or .zip is a clear error', async () => {
    const dir = await fresh('trunc');
    const tarball = tarBytes([
      { path: 'a.bin', body: randomBytes(100_000) },
      { path: 'b.bin', body: randomBytes(100_000) },
    ]);
    const gz = gzipSync(tarball);
    await writeFile(join(dir, 'cut.tar.gz'), gz.subarray(0, Math.floor(gz.length * 0.6)));
    await writeFile(join(dir, 'cut.tar'), tarball.subarray(0, 150_000));
    const zip = join(dir, 'full.zip');
    await writeZip(zip, [{ path: 'a.bin', body: randomBytes(50_000) }]);
    await writeFile(join(dir, 'cut.zip'), (await readFile(zip)).subarray(0, 30_000));
    await expect(run({ url: join(dir, 'cut.tar.gz'), layout })).rejects.toThrow(/^cut\.tar\.gz is corrupt or truncated: .*unexpected end of file/);
    await expect(run({ url: join(dir, 'cut.tar'), layout })).rejects.toThrow(/^cut\.tar is corrupt or truncated \(at "b\.bin"\): Truncated input/);
    await expect(run({ url: join(dir, 'cut.zip'), layout })).rejects.toThrow(/^cut\.zip is corrupt or truncated: End of central directory/);
  });

  test('a valid archive with no files says so, not "corrupt"', async () => {
    const dir = await fresh('empty');
    // What `tar -cf x.tar -T /dev/null` writes: end-of-archive blocks only (tar calls it unrecognized).
    await writeFile(join(dir, 'empty.tar'), Buffer.alloc(10240));
    await writeFile(join(dir, 'empty.tar.gz'), gzipSync(Buffer.alloc(10240)));
    await writeFile(join(dir, 'nothing.tar.gz'), gzipSync(Buffer.alloc(0)));
    await writeFile(join(dir, 'dirs.tar'), tarBytes([{ path: 'train/', type: 'dir' }]));
    await writeZip(join(dir, 'empty.zip'), []);
    await expect(run({ url: join(dir, 'empty.tar'), layout })).rejects.toThrow(/^empty\.tar contains no files: a valid tar archive, but nothing to fetch$/);
    await expect(run({ url: join(dir, 'empty.tar.gz'), layout })).rejects.toThrow(/^empty\.tar\.gz contains no files: a valid tar\.gz archive/);
    await expect(run({ url: join(dir, 'nothing.tar.gz'), layout })).rejects.toThrow(/^nothing\.tar\.gz contains no files/);
    await expect(run({ url: join(dir, 'dirs.tar'), layout })).rejects.toThrow(
      /^dirs\.tar contains no files \(only directories or symlinks\): a valid tar archive/,
    );
    await expect(run({ url: join(dir, 'empty.zip'), layout })).rejects.toThrow(/^empty\.zip contains no files: a valid zip archive/);
    // Garbage is still corrupt, even when short.
    await writeFile(join(dir, 'junk.tar'), 'not a tar at all');
    await writeFile(join(dir, 'junk.tar.gz'), gzipSync(Buffer.concat([Buffer.alloc(1024), Buffer.from('x')])));
    await expect(run({ url: join(dir, 'junk.tar'), layout })).rejects.toThrow(/^junk\.tar is corrupt or truncated/);
    await expect(run({ url: join(dir, 'junk.tar.gz'), layout })).rejects.toThrow(/^junk\.tar\.gz is corrupt or truncated/);
  });

  describe('decompression bombs: one ratio rule for .zip and .tar.gz, refused early, nothing kept', () => {
    // 16 MiB of zeros deflates about 1030:1, past the 1000:1 rule (the 1 GiB entry: 1028:1).
    const zeros = Buffer.alloc(16 << 20);
    const bombMessage = (archive: string, verb: string) =>
      new RegExp(
        `^unsafe entry "zeros\\.bin" in ${archive.replaceAll('.', '\\.')}: by this entry the archive ${verb} [\\d,]+ bytes from [\\d,]+ compressed, more than 1000×: refused as a decompression bomb$`,
      );

    test('a zip bomb is refused from its central directory before anything is written', async () => {
      const dir = await fresh('zip-bomb');
      const archive = await writeZip(join(dir, 'bomb.zip'), [
        { path: 'readme.txt', body: 'hi' },
        { path: 'zeros.bin', body: zeros, deflate: true },
      ]);
      const err = await run({ url: archive, layout }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StageError);
      expect((err as Error).message).toMatch(bombMessage('bomb.zip', 'declares'));
      expect((err as Error).message).toContain('declares 16,777,218 bytes');
      const dest = join(dir, 'out');
      await expect(unpack(archive, 'zip', dest)).rejects.toThrow(bombMessage('bomb.zip', 'declares'));
      expect(existsSync(dest) ? await readdir(dest) : []).toEqual([]);
    });

    test('a zip whose central directory understates the bomb is refused while inflating, past the declared size', async () => {
      const dir = await fresh('zip-lie');
      const archive = await writeZip(join(dir, 'lie.zip'), [{ path: 'zeros.bin', body: zeros, deflate: true, declare: { size: 1000 } }]);
      const dest = join(dir, 'out');
      await expect(unpack(archive, 'zip', dest)).rejects.toThrow(/^unsafe entry "zeros\.bin" in lie\.zip: inflates past the 1,000 bytes its header declares$/);
      // Refused at the first inflated piece: nowhere near the 16 MiB the entry holds.
      // (In a pack the entry's bytes are in the pack being written, which is removed.)
      const partial = await readFile(join(dest, 'zeros.bin')).catch(() => Buffer.alloc(0));
      expect(partial.length).toBeLessThanOrEqual(1000);
      await expect(run({ url: archive, layout })).rejects.toThrow('unsafe entry "zeros.bin" in lie.zip: inflates past the 1,000 bytes its header declares');
    });

    test('a zip entry with fewer bytes than declared, or another CRC-32, is damaged', async () => {
      const dir = await fresh('zip-damaged');
      const short = await writeZip(join(dir, 'short.zip'), [{ path: 'a.txt', body: 'hello', deflate: true, declare: { size: 5000 } }]);
      await expect(run({ url: short, layout })).rejects.toThrow('short.zip is corrupt or truncated (entry "a.txt"): 5 bytes inflated, 5,000 declared');
      const crc = await writeZip(join(dir, 'crc.zip'), [{ path: 'a.txt', body: 'hello', declare: { crc: 1 } }]);
      await expect(run({ url: crc, layout })).rejects.toThrow('crc.zip is corrupt or truncated (entry "a.txt"): CRC-32 mismatch: the data is damaged');
    });

    test('the same content as .tar.gz is refused by the same rule while inflating, naming the entry', async () => {
      const dir = await fresh('tgz-bomb');
      const archive = join(dir, 'bomb.tar.gz');
      await writeFile(
        archive,
        gzipSync(
          tarBytes([
            { path: 'readme.txt', body: 'hi' },
            { path: 'zeros.bin', body: zeros },
          ]),
        ),
      );
      const err = await run({ url: archive, layout }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StageError);
      expect((err as Error).message).toMatch(bombMessage('bomb.tar.gz', 'inflates to'));
      // Refused early: well before the 16 MiB were inflated.
      const inflated = Number(/inflates to ([\d,]+) bytes/.exec((err as Error).message)![1]!.replace(/,/g, ''));
      expect(inflated).toBeLessThan(4 << 20);
      // An honest archive of the same size that compresses normally is fine.
      const ok = join(dir, 'ok.tar.gz');
      await writeFile(ok, gzipSync(tarBytes([{ path: 'noise.bin', body: randomBytes(1 << 20) }])));
      expect((await run({ url: ok, layout })).record.files).toBe(1);
    });
  });

  test('sparse tar entries are refused as such, not as "contains no files" or as wrong contents', async () => {
    const dir = await fresh('sparse');
    // Old GNU format (type S): tar skipped the entry, so the archive looked empty.
    const gnu = await writeTar(join(dir, 'sparse.tar'), [
      { path: 'data/', type: 'dir' },
      { path: 'data/sparse.bin', type: 'sparse', body: 'hello\n' },
    ]);
    await expect(run({ url: gnu, layout })).rejects.toThrow(
      'unsupported entry "data/sparse.bin" in sparse.tar: sparse files are not supported (re-create the archive without --sparse)',
    );
    // Next to a regular file it was silently left out.
    const mixed = await writeTar(join(dir, 'mixed.tar'), [
      { path: 'a.txt', body: 'a' },
      { path: 'sparse.bin', type: 'sparse', body: 'hello\n' },
    ]);
    await expect(run({ url: mixed, layout })).rejects.toThrow('unsupported entry "sparse.bin" in mixed.tar: sparse files are not supported');
    // PAX format 1.0 (GNU tar --format=posix --sparse): tar wrote the condensed data under the real name.
    const pax = await writeTar(
      join(dir, 'pax-sparse.tar.gz'),
      [
        {
          path: 'PaxHeaders/sparse.bin',
          type: 'pax',
          body: paxRecords({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'sparse.bin', 'GNU.sparse.realsize': '1048582' }),
        },
        { path: 'GNUSparseFile.0/sparse.bin', body: `1\n1048576\n6\n${'\0'.repeat(500)}hello\n` },
      ],
      { gzip: true },
    );
    await expect(run({ url: pax, layout })).rejects.toThrow('unsupported entry "sparse.bin" in pax-sparse.tar.gz: sparse files are not supported');
  });

  const gnuTar = spawnSync('tar', ['--version'], { encoding: 'utf8' }).stdout?.includes('GNU tar') === true;
  if (!gnuTar) console.warn('GNU tar not found: skipping the sparse archives it writes');
  (gnuTar ? test : test.skip)('sparse archives written by GNU tar (gnu, posix 0.0, 0.1 and 1.0 formats) are refused', async () => {
    const dir = await fresh('gnu-sparse');
    const file = join(dir, 'holes.bin');
    await writeFile(file, '');
    await truncate(file, 1 << 20); // a hole GNU tar --sparse records as such
    await writeFile(file, 'end\n', { flag: 'a' });
    for (const [name, args] of [
      ['gnu.tar', ['--format=gnu']],
      ['pax00.tar', ['--format=posix', '--sparse-version=0.0']],
      ['pax01.tar', ['--format=posix', '--sparse-version=0.1']],
      ['pax10.tar', ['--format=posix', '--sparse-version=1.0']],
    ] as const) {
      const made = spawnSync('tar', ['--sparse', ...args, '-cf', name, 'holes.bin'], { cwd: dir, encoding: 'utf8' });
      expect([name, made.status, made.stderr]).toEqual([name, 0, '']);
      const err = await run({ url: join(dir, name), layout }).catch((e: unknown) => e);
      expect([name, (err as Error).message]).toEqual([name, expect.stringMatching(/^unsupported entry ".*holes\.bin" in .*: sparse files are not supported/)]);
    }
  });

  const tag = `evil-${process.pid}`;
  const cases: Array<[string, (path: string) => Promise<string>, string]> = [
    [
      'tar with ../ path',
      (p) =>
        writeTar(
          `${p}.tar.gz`,
          [
            { path: 'ok.txt', body: 'ok' },
            { path: `../../${tag}`, body: 'x' },
          ],
          { gzip: true },
        ),
      `unsafe entry "../../${tag}" in ARCHIVE: path contains '..'`,
    ],
    [
      'tar with an absolute path',
      (p) => writeTar(`${p}.tar`, [{ path: join(tmpdir(), tag), body: 'x' }]),
      `unsafe entry "${join(tmpdir(), tag)}" in ARCHIVE: absolute path`,
    ],
    [
      'tar symlink escaping the output',
      (p) =>
        writeTar(`${p}.tar`, [
          { path: 'd/', type: 'dir' },
          { path: 'd/link', type: 'symlink', linkpath: `../../../${tag}` },
        ]),
      `unsafe entry "d/link" in ARCHIVE: symlink target "../../../${tag}" points outside the output`,
    ],
    [
      'tar symlink to an absolute path',
      (p) => writeTar(`${p}.tar`, [{ path: 'etc', type: 'symlink', linkpath: '/etc' }]),
      'unsafe entry "etc" in ARCHIVE: symlink to absolute path "/etc"',
    ],
    [
      'tar hard link escaping the output',
      (p) => writeTar(`${p}.tar`, [{ path: 'h', type: 'hardlink', linkpath: `../${tag}` }]),
      `unsafe entry "h" in ARCHIVE: hard link target "../${tag}" points outside the output`,
    ],
    [
      'tar entry written through its own symlink',
      (p) =>
        writeTar(`${p}.tar`, [
          { path: 'up', type: 'symlink', linkpath: '.' },
          { path: 'up/x', body: 'x' },
        ]),
      `unsafe entry "up/x" in ARCHIVE: path goes through the archive's symlink "up"`,
    ],
    [
      'zip with ../ path',
      (p) =>
        writeZip(`${p}.zip`, [
          { path: 'ok.txt', body: 'ok' },
          { path: `../../${tag}`, body: 'x' },
        ]),
      `unsafe entry "../../${tag}" in ARCHIVE: path contains '..'`,
    ],
    ['zip with an absolute path', (p) => writeZip(`${p}.zip`, [{ path: `/tmp/${tag}`, body: 'x' }]), `unsafe entry "/tmp/${tag}" in ARCHIVE: absolute path`],
    [
      'zip symlink escaping the output',
      (p) => writeZip(`${p}.zip`, [{ path: 'link', symlinkTo: `../../${tag}` }]),
      `unsafe entry "link" in ARCHIVE: symlink target "../../${tag}" points outside the output`,
    ],
  ];

  test.each(cases)('%s is rejected naming the entry', async (_name, build, message) => {
    const archive = await build(join(await fresh('evil'), 'evil'));
    const err = await run({ url: archive, layout }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as Error).message).toBe(message.replace('ARCHIVE', archive.slice(archive.lastIndexOf('/') + 1)));
    expect(existsSync(join(tmpdir(), tag))).toBe(false);
  });

  test('nothing is written outside the destination, even before the bad entry is reached', async () => {
    const sandbox = await fresh('sandbox');
    const archive = await writeTar(join(sandbox, 'mixed.tar'), [
      { path: 'good/1.txt', body: '1' },
      { path: 'good/../../escaped.txt', body: 'x' },
      { path: 'good/2.txt', body: '2' },
    ]);
    const dest = join(sandbox, 'out', 'data');
    await expect(unpack(archive, 'tar', dest)).rejects.toThrow('unsafe entry "good/../../escaped.txt" in mixed.tar');
    // Entries before the bad one may or may not have landed when the error surfaces; what matters
    // is that nothing exists outside the destination.
    const written = (await readdir(sandbox, { recursive: true })).map(String).sort();
    expect(written.filter((p) => p !== 'mixed.tar' && p !== 'out' && !p.startsWith('out/data'))).toEqual([]);
    expect(written).not.toContain('escaped.txt');
  });

  test("a safe archive with inner links extracts them (in a pack: their targets' bytes)", async () => {
    const dir = await fresh('links');
    const archive = await writeTar(join(dir, 'ok.tar'), [
      { path: 'a/', type: 'dir' },
      { path: 'a/x.txt', body: 'X' },
      { path: 'a/b/', type: 'dir' },
      { path: 'a/b/up', type: 'symlink', linkpath: '../x.txt' },
      { path: 'hard', type: 'hardlink', linkpath: 'a/x.txt' },
    ]);
    const zipped = await writeZip(join(dir, 'ok.zip'), [{ path: 'z/' }, { path: 'z/y.txt', body: 'Y' }, { path: 'z/ly', symlinkTo: 'y.txt' }]);
    const tarOut = await run({ url: archive, layout });
    expect(await tarOut.files()).toEqual(
      new Map([
        ['a/b/up', Buffer.from('X')],
        ['a/x.txt', Buffer.from('X')],
        ['hard', Buffer.from('X')],
      ]),
    );
    // Regular files in data/ (the symlink stays a link), or entries of the pack.
    expect(tarOut.record.files).toBe(layout === 'packed' ? 3 : 2);
    const zipOut = await run({ url: zipped, layout });
    expect((await zipOut.files()).get('z/ly')?.toString()).toBe('Y');
    if (layout === 'packed') {
      // A hard link is its target's bytes again, not a copy: the same place in the same pack.
      const index = await readPackIndex(join(tarOut.outDir, PACK_DIR));
      const at = (path: string) => index.entries.filter((e) => e.path === path).map((e) => [e.pack, e.offset]);
      expect(at('hard')).toEqual(at('a/x.txt'));
      expect(at('a/b/up')).toEqual(at('a/x.txt'));
    }
  });

  test('extraction stops promptly on abort', async () => {
    const controller = new AbortController();
    const dest = await fresh('abort-extract');
    const pending = unpack(cifar.archive, 'tar.gz', dest, { signal: controller.signal, onProgress: () => controller.abort() });
    await expect(pending).rejects.toBeInstanceOf(InterruptedError);
    if (layout === 'files') expect(await countFiles(dest)).toBeLessThan(cifar.real ? 50_000 : 600);
    // A pack: no index, and no pack half-written.
    else expect((await readdir(dest)).filter((f) => f === 'index.json' || f.startsWith('.writing'))).toEqual([]);
  });
});

describe('archives into packs', () => {
  test('tar.gz and zip: the same files, bytes and directories as unpacked into data/', async () => {
    const dir = await fresh('same');
    const entries = [
      { path: 'root/', type: 'dir' as const },
      { path: 'root/train/cat/1.jpg', body: randomBytes(3000) },
      { path: 'root/train/cat/2.jpg', body: randomBytes(70_000) },
      { path: 'root/empty/', type: 'dir' as const },
      { path: 'root/test/cat/1.jpg', body: Buffer.alloc(0) },
      { path: 'root/train/cat/1.jpg', body: Buffer.from('a later entry of the same path wins') },
      { path: 'root/test/cat/same.jpg', type: 'hardlink' as const, linkpath: 'root/train/cat/2.jpg' },
    ];
    const tgz = await writeTar(join(dir, 'set.tar.gz'), entries, { gzip: true });
    const zip = await writeZip(
      join(dir, 'set.zip'),
      entries.filter((e) => e.type !== 'hardlink' && e.path !== 'root/train/cat/1.jpg').map((e) => ({ path: e.path, body: e.body })),
    );
    for (const archive of [tgz, zip]) {
      const packed = await run({ url: archive });
      const files = await run({ url: archive, layout: 'files' });
      expect(packed.record.layout).toBe('packed');
      expect(await packed.files()).toEqual(await files.files());
      expect(await fetchedDirs(packed.outDir)).toEqual(await fetchedDirs(files.outDir));
      expect(await fetchedDirs(packed.outDir)).toContain('root/empty');
    }
    expect((await (await run({ url: tgz })).files()).get('root/train/cat/1.jpg')?.toString()).toBe('a later entry of the same path wins');
  });

  test('a path that is both a directory and a file is refused in either layout', async () => {
    const dir = await fresh('clash');
    const archive = await writeTar(join(dir, 'clash.tar'), [
      { path: 'a/x.txt', body: 'x' },
      { path: 'a', body: 'a file where a directory is' },
    ]);
    await expect(run({ url: archive })).rejects.toThrow('cannot pack clash.tar: "a" is both a file and a directory');
    await expect(run({ url: archive, layout: 'files' })).rejects.toThrow(/^cannot extract "a" from clash\.tar: /);
  });

  test('a symlink to a directory is refused; one that leads nowhere is skipped with a warning', async () => {
    const dir = await fresh('links');
    const toDir = await writeTar(join(dir, 'todir.tar'), [
      { path: 'a/x.txt', body: 'x' },
      { path: 'b', type: 'symlink', linkpath: 'a' },
    ]);
    await expect(run({ url: toDir })).rejects.toThrow(
      'unsupported entry "b" in todir.tar: a symlink to a directory ("a"); packs hold files (use layout: files to keep it as a link)',
    );
    expect((await (await run({ url: toDir, layout: 'files' })).files()).get('b/x.txt')?.toString()).toBe('x');

    const dangling = await writeTar(join(dir, 'dangling.tar'), [
      { path: 'a/x.txt', body: 'x' },
      { path: 'a/gone', type: 'symlink', linkpath: 'missing.txt' },
      { path: 'a/chain', type: 'symlink', linkpath: 'gone2' },
      { path: 'a/gone2', type: 'symlink', linkpath: 'x.txt' },
    ]);
    const warnings: string[] = [];
    const out = await run({ url: dangling }, { log: { info: () => {}, debug: () => {}, warn: (m: string) => warnings.push(m) } });
    expect([...(await out.files()).keys()]).toEqual(['a/chain', 'a/gone2', 'a/x.txt']);
    expect(warnings).toEqual(['skipped symlink "a/gone" in dangling.tar: it leads to no file of the archive']);
  });
});

describe('a local directory into packs, incrementally', () => {
  test('added, changed and deleted files: unchanged files stay in the previous packs, the result equals a fresh fetch', async () => {
    const dir = await fresh('grow');
    for (let i = 0; i < 30; i++) {
      await mkdir(join(dir, 'train', i % 2 ? 'cat' : 'dog'), { recursive: true });
      await writeFile(join(dir, 'train', i % 2 ? 'cat' : 'dog', `${i}.jpg`), randomBytes(500));
    }
    const first = await run({ url: dir });
    expect(first.record).toMatchObject({ type: 'directory', layout: 'packed', files: 30, bytes: 15_000, changes: null });
    await writeFile(join(dir, 'train', 'cat', 'new.jpg'), randomBytes(700));
    await writeFile(join(dir, 'train', 'dog', '0.jpg'), randomBytes(600));
    await rm(join(dir, 'train', 'cat', '1.jpg'));
    const hashed: string[] = [];
    const again = await run(
      { url: dir },
      {
        previous: { kind: 'fetch', dir: first.outDir },
        digestFile: async (path) => {
          hashed.push(relative(dir, path));
          const bytes = await readFile(path);
          return { digest: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
        },
      },
    );
    expect(again.record.changes).toMatchObject({ since: 'key-of-fetch', added: 1, changed: 1, removed: 1, reused: 28, bytes_read: 1300 });
    expect(hashed).toHaveLength(30); // through the stat cache in a real run: unchanged files are a stat each
    // The previous pack is carried over under its name; the new and changed files are a new pack.
    const before = await readPackIndex(join(first.outDir, PACK_DIR));
    const after = await readPackIndex(join(again.outDir, PACK_DIR));
    expect(after.packs.map((p) => p.file)).toEqual([...before.packs.map((p) => p.file), expect.any(String)]);
    const scratch = await run({ url: dir });
    expect(await again.files()).toEqual(await scratch.files());
    expect(again.record).toMatchObject({ files: 30, bytes: scratch.record.bytes });
  });
});

describe('end to end (built CLI): a growing local folder', () => {
  test('only new and changed files are hashed and packed; unchanged packs are the same objects; decode follows', async () => {
    const dir = await workspace('stages:\n  fetch:\n    uses: fetch\n    with: {url: images}\n  decode:\n    uses: decode\n    needs: [fetch]\n', 'fetch-e2e-');
    leftovers.push(dir);
    const image = (cls: number, i: number) => encodeJpeg(syntheticImage(cls, i), 32, 32, 90);
    for (const [split, n] of [
      ['train', 12],
      ['test', 4],
    ] as const) {
      for (const [c, cls] of ['cat', 'dog'].entries()) {
        await mkdir(join(dir, 'images', split, cls), { recursive: true });
        for (let i = 0; i < n; i++) await writeFile(join(dir, 'images', split, cls, `${i}.jpg`), image(c, i));
      }
    }
    const ok = async (args: string[]) => {
      const r = await runCli(args, { cwd: dir });
      expect([r.code, r.stderr]).toEqual([0, expect.any(String)]);
      return r;
    };
    const json = async <T>(path: string) => JSON.parse(await readFile(join(dir, 'artifacts', 'stages', path), 'utf8')) as T;
    const manifestOf = async (stage: string) => {
      const { key } = (await json<Record<string, { key: string }>>('../refs.json'))[stage]!;
      return JSON.parse(await readFile(join(dir, 'artifacts', 'manifests', `${key}.json`), 'utf8')) as { files: Record<string, { digest: string }> };
    };

    const first = await ok(['run', '--verbose']);
    expect(first.stdout).toMatch(/^ran\s+fetch\s/m);
    expect(await json<FetchRecord>('fetch/fetch.json')).toMatchObject({ type: 'directory', layout: 'packed', files: 32, changes: null });
    const packsBefore = Object.entries((await manifestOf('fetch')).files).filter(([p]) => p.endsWith('.bin'));
    expect(packsBefore.length).toBeGreaterThan(0);

    await writeFile(join(dir, 'images', 'train', 'cat', 'new.jpg'), image(0, 99)); // added
    await writeFile(join(dir, 'images', 'train', 'dog', '3.jpg'), image(1, 98)); // changed
    await rm(join(dir, 'images', 'test', 'cat', '0.jpg')); // removed
    const second = await ok(['run', '--verbose']);
    expect(second.stdout).toMatch(/^ran\s+fetch\s/m);
    // The fingerprint hashed the two new files; the stage itself took every digest from the stat cache.
    expect(second.stderr).toContain('stat cache: 2 files hashed in this run');
    expect(await json<FetchRecord>('fetch/fetch.json')).toMatchObject({ files: 32, changes: { added: 1, changed: 1, removed: 1, reused: 30 } });
    const packsAfter = new Map(Object.entries((await manifestOf('fetch')).files).filter(([p]) => p.endsWith('.bin')));
    for (const [path, f] of packsBefore) expect(packsAfter.get(path)).toEqual(f); // kept: the same objects
    expect(packsAfter.size).toBe(packsBefore.length + 1);
    expect((await json<{ changes: Record<string, number> }>('decode/decode.json')).changes).toMatchObject({ added: 1, changed: 1, removed: 1, decoded: 2 });

    const third = await ok(['run', '--verbose']);
    expect(third.stdout).toMatch(/^cached\s+fetch\s/m);
    expect(third.stderr).toContain('stat cache: 0 files hashed in this run');
    await ok(['verify']);
  });
});
