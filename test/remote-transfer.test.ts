// Unit tests of the remote layout and checks that need no server: which remote manifests are
// refused before anything is written (their paths become local file names), and the remote config.
import { describe, expect, test } from '@jest/globals';
import { Readable } from 'node:stream';
import { RemoteError } from '../engine/errors.js';
import { remoteIsDown, type RemoteBackend } from '../engine/remote/backend.js';
import { effectiveRemote, remoteSchema, remoteUrlProblem } from '../engine/config/remote.js';
import { authorizationFromEnv } from '../engine/remote/http.js';
import { fetchManifest, remoteManifestPath, remoteObjectPath } from '../engine/remote/transfer.js';
import { cacheKey, KEY_FORMAT, type KeyMaterial } from '../engine/store/cache-key.js';
import { MANIFEST_FORMAT, outputsDigestOf, type Manifest } from '../engine/store/manifest.js';

/** A remote holding fixed bytes per path (the bytes a server would answer with). */
class FixedRemote implements RemoteBackend {
  readonly url = 'mem://test/';
  constructor(private readonly objects: Map<string, Buffer>) {}
  async stat(path: string) {
    const b = this.objects.get(path);
    return b ? { size: b.length } : null;
  }
  async get(path: string) {
    const b = this.objects.get(path);
    return b ? Readable.from([b]) : null;
  }
  async putFile(): Promise<void> {
    throw new Error('read-only');
  }
  async putBytes(): Promise<void> {
    throw new Error('read-only');
  }
}

const DIGEST = 'ab'.repeat(32);

function manifest(files: Manifest['files'], dirs: string[] = [], entries = ['out']): Manifest {
  const material: KeyMaterial = { format: KEY_FORMAT, kind: 'cmd', cmd: 'make out', params: {}, inputs: {} };
  return {
    format: MANIFEST_FORMAT,
    key: cacheKey(material),
    stage: 's',
    kind: 'cmd',
    material,
    params: {},
    entries,
    dirs,
    files,
    outputsDigest: outputsDigestOf(files),
    createdAt: new Date(0).toISOString(),
    durationMs: 1,
    runId: 'r',
  };
}

async function fetchOf(m: Manifest, text = JSON.stringify(m)): Promise<Manifest | null> {
  return fetchManifest(new FixedRemote(new Map([[remoteManifestPath(m.key), Buffer.from(text)]])), m.key);
}

describe('remote manifests', () => {
  test('a well-formed manifest of the key is accepted; an absent one is a miss', async () => {
    const m = manifest({ 'out/a.txt': { digest: DIGEST, size: 3 } });
    expect(await fetchOf(m)).toEqual(m);
    expect(await fetchManifest(new FixedRemote(new Map()), m.key)).toBeNull();
    expect(remoteObjectPath(DIGEST)).toBe(`objects/ab/${'ab'.repeat(31)}`);
  });

  test.each([
    ['a path leaving the output', { '../../escape.txt': { digest: DIGEST, size: 3 } }, [], /unsafe output path "..\/..\/escape.txt"/],
    ['an absolute path', { '/etc/x': { digest: DIGEST, size: 3 } }, [], /unsafe output path "\/etc\/x"/],
    ['an empty segment', { 'out//x': { digest: DIGEST, size: 3 } }, [], /unsafe output path/],
    ['a bad digest', { 'out/x': { digest: 'nothex', size: 3 } }, [], /bad object entry for out\/x/],
    ['a negative size', { 'out/x': { digest: DIGEST, size: -1 } }, [], /bad object entry/],
    ['an unsafe directory', { 'out/x': { digest: DIGEST, size: 1 } }, ['out/../..'], /unsafe output path "out\/..\/.."/],
  ] as const)('refused: %s', async (_what, files, dirs, message) => {
    const m = manifest(files as Manifest['files'], [...dirs]);
    await expect(fetchOf(m)).rejects.toThrow(message);
    await expect(fetchOf(m)).rejects.toMatchObject({ failure: 'corrupt' });
  });

  test('refused: truncated, another key, material not hashing to the key, outputs digest not matching', async () => {
    const m = manifest({ 'out/a.txt': { digest: DIGEST, size: 3 } });
    await expect(fetchOf(m, JSON.stringify(m).slice(0, 40))).rejects.toThrow(/not JSON \(truncated or damaged\)/);
    await expect(fetchOf(m, JSON.stringify({ ...m, key: 'f'.repeat(64) }))).rejects.toThrow(/not a manifest of this key/);
    await expect(fetchOf(m, JSON.stringify({ ...m, material: { ...m.material, cmd: 'rm -rf out' } }))).rejects.toThrow(/does not hash to its key/);
    await expect(fetchOf(m, JSON.stringify({ ...m, outputsDigest: 'f'.repeat(64) }))).rejects.toThrow(/outputs digest does not match/);
  });
});

describe('remote configuration', () => {
  test('URLs: s3 and http(s) only, never with credentials', () => {
    expect(remoteUrlProblem('s3://bucket/prefix')).toBeUndefined();
    expect(remoteUrlProblem('https://cache.example/team/')).toBeUndefined();
    expect(remoteUrlProblem('s3:///nobucket')).toMatch(/without a bucket/);
    expect(remoteUrlProblem('gs://b/p')).toMatch(/unsupported remote gs:/);
    expect(remoteUrlProblem('https://u:p@h/')).toMatch(/credentials do not go in the remote URL/);
    expect(remoteUrlProblem('https://h/?token=x')).toMatch(/no \?query/);
    expect(remoteUrlProblem('not a url')).toMatch(/not a URL/);
  });

  test('--remote replaces the URL and keeps the file settings; defaults', () => {
    const fromFile = remoteSchema.parse({ url: 's3://a/p', endpoint: 'http://127.0.0.1:9000', jobs: 3 });
    expect(fromFile).toMatchObject({ jobs: 3, timeout: 30, part_size: 16 });
    expect(effectiveRemote(fromFile, 's3://b/q')).toMatchObject({ url: 's3://b/q', endpoint: 'http://127.0.0.1:9000', jobs: 3 });
    expect(effectiveRemote(undefined, 'https://h/c/')).toMatchObject({ url: 'https://h/c/', jobs: 8 });
    expect(effectiveRemote(fromFile, undefined)).toBe(fromFile);
  });

  test('HTTP credentials come from the environment', () => {
    expect(authorizationFromEnv({})).toBeUndefined();
    expect(authorizationFromEnv({ PIPELINE_REMOTE_TOKEN: 't0k' })).toBe('Bearer t0k');
    expect(authorizationFromEnv({ PIPELINE_REMOTE_USER: 'me', PIPELINE_REMOTE_PASSWORD: 'pw' })).toBe(`Basic ${Buffer.from('me:pw').toString('base64')}`);
  });

  test('which failures put the remote out of use for the run', () => {
    expect(remoteIsDown(new RemoteError('unreachable', 'x'))).toBe(true);
    expect(remoteIsDown(new RemoteError('denied', 'x'))).toBe(true);
    expect(remoteIsDown(new RemoteError('timeout', 'x'))).toBe(true);
    expect(remoteIsDown(new RemoteError('server', 'x'))).toBe(false);
    expect(remoteIsDown(new RemoteError('corrupt', 'x'))).toBe(false);
    expect(remoteIsDown(new Error('x'))).toBe(false);
  });
});
