// The `remote:` section of pipeline.yaml and `--remote URL`: which remote, and how to reach it.
// Credentials are never part of it: they come from environment variables (HTTP:
// PIPELINE_REMOTE_TOKEN or PIPELINE_REMOTE_USER/PIPELINE_REMOTE_PASSWORD; S3: the AWS SDK's usual
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE...). Nothing here enters a cache key.
// engine/remote/open.ts opens the backend it names.
import { z } from 'zod';

export const remoteSchema = z
  .strictObject({
    url: z
      .string()
      .min(1)
      .describe(
        's3://bucket/prefix (S3 or an S3-compatible store, see endpoint) or http(s)://host/path/ (a server that stores what is PUT: nginx WebDAV, a Bazel-style HTTP cache)',
      ),
    endpoint: z.string().optional().describe('S3 only: endpoint URL of an S3-compatible store (MinIO, Ceph, Swift s3api...); implies path-style addressing'),
    region: z.string().optional().describe('S3 only: region (default: AWS_REGION, else us-east-1)'),
    jobs: z.number().int().positive().default(8).describe('parallel object transfers'),
    timeout: z.number().positive().default(30).describe('seconds without progress before a request is abandoned (the run then computes locally)'),
    part_size: z.number().int().min(5).default(16).describe('S3 only: MiB per part of a multipart upload (objects above this size are uploaded in parts)'),
  })
  .describe(
    'Remote artifact cache shared by machines: `pipeline push`/`pull`, and `run` downloads a result it lacks. Credentials come from environment variables, never from this file',
  );

export type RemoteConfig = z.output<typeof remoteSchema>;

/** Why a remote URL is not acceptable, or undefined. */
export function remoteUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `not a URL: ${url} (expected s3://bucket/prefix or http(s)://host/path/)`;
  }
  if (!['s3:', 'http:', 'https:'].includes(parsed.protocol)) return `unsupported remote ${parsed.protocol}// (expected s3:// or http(s)://)`;
  if (parsed.username || parsed.password) {
    return 'credentials do not go in the remote URL: set PIPELINE_REMOTE_TOKEN or PIPELINE_REMOTE_USER/PIPELINE_REMOTE_PASSWORD (HTTP), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (S3)';
  }
  if (parsed.protocol === 's3:' && !parsed.hostname) return 's3:// URL without a bucket (s3://bucket/prefix)';
  if (parsed.search || parsed.hash) return 'a remote URL has no ?query or #fragment';
  return undefined;
}

/** The remote to use: `--remote URL` (keeping the file's other settings) over the file's `remote:`. */
export function effectiveRemote(fromFile: RemoteConfig | undefined, fromCli: string | undefined): RemoteConfig | undefined {
  if (fromCli === undefined) return fromFile;
  return { ...(fromFile ?? remoteSchema.parse({ url: fromCli })), url: fromCli };
}
