// Opening the remote cache a (validated) `remote:` section or `--remote URL` names (config/remote.ts).
import type { RemoteConfig } from '../config/remote.js';
import type { RemoteBackend } from './backend.js';

/** Opens the backend for a (validated) remote config. The S3 SDK is loaded only for s3:// remotes. */
export async function openRemote(config: RemoteConfig, env: NodeJS.ProcessEnv = process.env): Promise<RemoteBackend> {
  const url = new URL(config.url);
  const timeoutMs = config.timeout * 1000;
  if (url.protocol === 's3:') {
    const { S3Remote } = await import('./s3.js');
    return new S3Remote({
      bucket: url.hostname,
      prefix: url.pathname.replace(/^\/+/, ''),
      endpoint: config.endpoint,
      region: config.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
      timeoutMs,
      partSize: config.part_size * 1024 * 1024,
      queueSize: Math.min(4, config.jobs),
    });
  }
  const { HttpRemote, authorizationFromEnv } = await import('./http.js');
  return new HttpRemote({ url, timeoutMs, authorization: authorizationFromEnv(env) });
}
