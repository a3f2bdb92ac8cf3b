// Push and pull throughput of the remote cache against the real servers the tests use, on
// loopback: nginx (WebDAV PUT, the http:// remote) and OpenStack Swift with s3api (the s3://
// remote, multipart above 16 MiB). Two shapes: one large object (MB/s) and many small ones
// (objects/s, where request rate, not bandwidth, is the limit). Each through the CLI, as users run it.
//
//   node dist/bench/remote-transfer.js [--mb 256] [--files 2000] [--only http|s3]
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startNginx, startSwift } from '../test/helpers/servers.js';

const CLI = resolve(new URL('../cli/main.js', import.meta.url).pathname);
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const MB = Number(arg('mb', '256'));
const FILES = Number(arg('files', '2000'));
const only = arg('only', '');

function cli(args: string[], cwd: string, env: Record<string, string>): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1', ...env } });
  if (r.status !== 0) throw new Error(`pipeline ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

async function workspace(dir: string, remote: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'pipeline.yaml'),
    `remote:\n${remote}stages:\n  big:\n    cmd: head -c ${MB * 1024 * 1024} /dev/urandom > big.bin\n    outs: [big.bin]\n` +
      `  small:\n    cmd: mkdir -p small && for i in $(seq 1 ${FILES}); do head -c 4096 /dev/urandom > small/$i.bin; done\n    outs: [small]\n`,
  );
  return dir;
}

const base = await mkdtemp(join(tmpdir(), 'bench-remote-'));
try {
  console.log(`remote transfer benchmark: one ${MB} MiB object; ${FILES} objects of 4 KiB; 8 parallel transfers (remote.jobs)`);
  const remotes: { name: string; yaml: string; env: Record<string, string>; stop(): Promise<void> }[] = [];
  if (only !== 's3') {
    const nginx = await startNginx();
    remotes.push({ name: 'http (nginx WebDAV)', yaml: `  url: ${nginx.url}bench/\n`, env: {}, stop: () => nginx.stop() });
  }
  if (only !== 'http') {
    const swift = await startSwift();
    remotes.push({
      name: 's3 (Swift s3api)',
      yaml: `  url: s3://bench/p\n  endpoint: ${swift.endpoint}\n`,
      env: { AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey },
      stop: () => swift.stop(),
    });
  }
  for (const remote of remotes) {
    try {
      const a = await workspace(join(base, `${remotes.indexOf(remote)}-a`), remote.yaml);
      const b = await workspace(join(base, `${remotes.indexOf(remote)}-b`), remote.yaml);
      cli(['run', '--no-remote'], a, remote.env);
      if (remote.name.startsWith('s3')) {
        // Swift's s3api needs the bucket first (as a real S3 does).
        const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
        const endpoint = /endpoint: (\S+)/.exec(remote.yaml)![1]!;
        const s3 = new S3Client({
          endpoint,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: { accessKeyId: remote.env.AWS_ACCESS_KEY_ID!, secretAccessKey: remote.env.AWS_SECRET_ACCESS_KEY! },
        });
        await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
        s3.destroy();
      }
      const pushBig = cli(['push', 'big'], a, remote.env);
      const pushSmall = cli(['push', 'small'], a, remote.env);
      const pullBig = cli(['pull', 'big'], b, remote.env);
      const pullSmall = cli(['pull', 'small'], b, remote.env);
      const again = cli(['push'], a, remote.env);
      console.log(`${remote.name}:`);
      console.log(
        `  push ${MB} MiB: ${pushBig.toFixed(2)} s = ${(MB / pushBig).toFixed(1)} MiB/s   pull: ${pullBig.toFixed(2)} s = ${(MB / pullBig).toFixed(1)} MiB/s`,
      );
      console.log(
        `  push ${FILES} small: ${pushSmall.toFixed(2)} s = ${(FILES / pushSmall).toFixed(0)} objects/s   pull: ${pullSmall.toFixed(2)} s = ${(FILES / pullSmall).toFixed(0)} objects/s`,
      );
      console.log(`  push again (all present, ${FILES + 1} existence checks): ${again.toFixed(2)} s`);
    } finally {
      await remote.stop();
    }
  }
} finally {
  await rm(base, { recursive: true, force: true });
}
