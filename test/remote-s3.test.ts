// The remote artifact cache over S3, end to end on the built CLI against a real OpenStack Swift
// with its s3api middleware, started on free loopback ports: two machines sharing a bucket (with an
// object large enough for a multipart upload), a corrupt object, and refused credentials.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Remote } from '../engine/remote/s3.js';
import { runCli, workspace, type CliResult } from './helpers/cli.js';
import { serverAvailable, startSwift, SWIFT_PROXY, type Swift } from './helpers/servers.js';

// The SDK's notice about future Node versions is not what these tests are about.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const available = serverAvailable('remote-s3', SWIFT_PROXY, 'apt-get install swift swift-proxy swift-account swift-container swift-object');
const withServer = available ? describe : describe.skip;

/** stage → outcome word of its line. */
function lines(r: CliResult): Record<string, string> {
  const found: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(cached|ran|failed|pushed|pulled|present|missing)\s+(big|small)\b/.exec(line);
    if (m) found[m[2]!] = m[1]!;
  }
  return found;
}

withServer('S3 remote on Swift s3api', () => {
  let swift: Swift;
  let s3: S3Client;
  let env: Record<string, string>;
  beforeAll(async () => {
    swift = await startSwift();
    env = {
      AWS_ACCESS_KEY_ID: swift.accessKeyId,
      AWS_SECRET_ACCESS_KEY: swift.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' });
    s3 = new S3Client({
      region: 'us-east-1',
      endpoint: swift.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
    });
    await s3.send(new CreateBucketCommand({ Bucket: 'cache' }));
  });
  afterAll(async () => {
    s3?.destroy();
    await swift?.stop();
  });

  async function machine(prefix: string): Promise<string> {
    const dir = await workspace(
      `remote:
  url: s3://cache/${prefix}
  endpoint: ${swift.endpoint}
  part_size: 5
  timeout: 20
stages:
  big:
    cmd: seq 1 1000000 > big.txt && echo big >> ran.log
    outs: [big.txt]
  small:
    cmd: wc -l < big.txt > small.txt && echo small >> ran.log
    deps: [big.txt]
    outs: [small.txt]
`,
      'remote-s3-',
    );
    dirs.push(dir);
    return dir;
  }

  async function cli(args: string[], cwd: string, code = 0, extraEnv: Record<string, string> = {}): Promise<CliResult> {
    const r = await runCli(args, { cwd, env: { ...env, ...extraEnv } });
    expect(r).toMatchObject({ code });
    return r;
  }

  test('a second machine computes nothing the first pushed; large objects go up in parts', async () => {
    const a = await machine('team');
    const first = await cli(['run', '--push'], a);
    expect(lines(first)).toEqual({ big: 'ran', small: 'ran' });
    expect(first.stdout).toContain('pushed 2 of 2 computed results to s3://cache/team/');
    expect(first.stderr).not.toContain('warning');
    // big.txt (6.9 MB) is above the 5 MiB part size: a multipart upload (its ETag says in how many parts).
    const refs = JSON.parse(await readFile(join(a, 'artifacts', 'refs.json'), 'utf8')) as Record<string, { key: string }>;
    const bigManifest = JSON.parse(await readFile(join(a, 'artifacts', 'manifests', `${refs.big!.key}.json`), 'utf8')) as {
      files: Record<string, { digest: string }>;
    };
    const bigDigest = bigManifest.files['big.txt']!.digest;
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'cache', Key: `team/objects/${bigDigest.slice(0, 2)}/${bigDigest.slice(2)}` }));
    expect(head.ContentLength).toBe(6888896);
    expect(head.ETag).toMatch(/-2"$/);
    // Ranged reads, which resume interrupted pulls.
    const remote = new S3Remote({
      bucket: 'cache',
      prefix: 'team',
      endpoint: swift.endpoint,
      region: 'us-east-1',
      timeoutMs: 20_000,
      partSize: 5 << 20,
      queueSize: 2,
    });
    const tail = await remote.getFrom(`objects/${bigDigest.slice(0, 2)}/${bigDigest.slice(2)}`, 6_888_000);
    expect(tail?.from).toBe(6_888_000);
    let tailBytes = '';
    for await (const chunk of tail!.body) tailBytes += String(chunk);
    expect(tailBytes).toBe((await readFile(join(a, 'big.txt'), 'utf8')).slice(6_888_000));
    expect(await remote.getFrom('objects/00/none', 10)).toBeNull();
    remote.close();

    const b = await machine('team');
    const second = await cli(['run'], b);
    expect(lines(second)).toEqual({ big: 'cached', small: 'cached' });
    expect(second.stdout).toContain('pulled from the remote');
    expect(existsSync(join(b, 'ran.log'))).toBe(false);
    expect(await readFile(join(b, 'big.txt'), 'utf8')).toBe(await readFile(join(a, 'big.txt'), 'utf8'));
    expect(await readFile(join(b, 'small.txt'), 'utf8')).toBe('1000000\n');
    await cli(['verify'], b);

    // push is idempotent; pull finds everything present.
    expect((await cli(['push'], a)).stdout).toMatch(/: 0 objects \(0 B\) uploaded/);
    expect(lines(await cli(['pull'], b))).toEqual({ big: 'present', small: 'present' });
  });

  test('a corrupt object is not committed; refused credentials degrade to local computation', async () => {
    const a = await machine('damaged');
    await cli(['run', '--push'], a);
    const refs = JSON.parse(await readFile(join(a, 'artifacts', 'refs.json'), 'utf8')) as Record<string, { key: string }>;
    const manifest = JSON.parse(await readFile(join(a, 'artifacts', 'manifests', `${refs.small!.key}.json`), 'utf8')) as {
      files: Record<string, { digest: string }>;
    };
    const digest = manifest.files['small.txt']!.digest;
    await s3.send(new PutObjectCommand({ Bucket: 'cache', Key: `damaged/objects/${digest.slice(0, 2)}/${digest.slice(2)}`, Body: '1000001\n' }));

    const b = await machine('damaged');
    const pulled = await cli(['pull'], b, 1);
    expect(lines(pulled)).toEqual({ big: 'pulled', small: 'failed' });
    expect(pulled.stderr).toMatch(/remote object s3:\/\/cache\/damaged\/objects\/\S+ is corrupt: its content hashes to/);
    const run = await cli(['run'], b);
    expect(lines(run)).toEqual({ big: 'cached', small: 'ran' });
    expect(await readFile(join(b, 'small.txt'), 'utf8')).toBe('1000000\n');
    await cli(['verify'], b);

    const c = await machine('damaged');
    const refused = await cli(['run'], c, 0, { AWS_SECRET_ACCESS_KEY: 'wrong' });
    expect(lines(refused)).toEqual({ big: 'ran', small: 'ran' });
    expect(refused.stderr).toMatch(
      /\[big\] warning: remote s3:\/\/cache\/damaged\/: GET \S+: \S+ \(HTTP 403\).*computing big locally \(remote not used for the rest of this run\)/,
    );
    await cli(['verify'], c);
  });
});
