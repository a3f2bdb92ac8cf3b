// Where the stage queue lives: `--queue redis://[user:password@]host:port[/db][?name=queue]`
// (rediss:// for TLS). The password may also come from PIPELINE_QUEUE_PASSWORD so that it stays
// out of shell history and process lists. Nothing here enters a cache key.
import type { ConnectionOptions } from 'bullmq';
import { UsageError } from '../errors.js';

export interface QueueTarget {
  /** The URL as given, without its password (for messages and run records). */
  display: string;
  /** BullMQ queue name (several projects can share one Redis). */
  name: string;
  connection: ConnectionOptions;
}

export const DEFAULT_QUEUE_NAME = 'pipeline-stages';

export function parseQueueUrl(raw: string, env: NodeJS.ProcessEnv = process.env): QueueTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--queue: not a URL: ${raw} (expected redis://host:port)`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new UsageError(`--queue: unsupported ${url.protocol}// (expected redis:// or rediss://)`);
  if (!url.hostname) throw new UsageError(`--queue: no host in ${raw}`);
  const db = url.pathname.replace(/^\/+/, '');
  if (db && !/^\d+$/.test(db)) throw new UsageError(`--queue: the path of a redis URL is a database number, not "${db}"`);
  const name = url.searchParams.get('name') ?? DEFAULT_QUEUE_NAME;
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new UsageError(`--queue: queue name "${name}" may only contain letters, digits, _ . -`);
  const password = url.password ? decodeURIComponent(url.password) : env.PIPELINE_QUEUE_PASSWORD;
  const connection: ConnectionOptions = {
    host: url.hostname,
    port: url.port ? Number(url.port) : 6379,
    ...(db ? { db: Number(db) } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(password ? { password } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    // Workers block on Redis; BullMQ requires this to be null for them (and it is harmless for queues).
    maxRetriesPerRequest: null,
  };
  const shown = new URL(url.href);
  shown.password = '';
  return { display: shown.href, name, connection };
}
