// `--metrics-port` / `--metrics-file` of `pipeline schedule` and `pipeline worker`: one object the
// command records into, that serves or writes the text, and that closes within a bounded time.
import { queueDepth, type QueueDepth } from '../queue/depth.js';
import type { QueueTarget } from '../queue/target.js';
import { serveMetrics, writeMetricsFile, type MetricsEndpoint } from './export.js';
import { PipelineMetrics } from './registry.js';
import { UsageError } from '../errors.js';

export interface MetricsOptions {
  port?: number;
  file?: string;
  /** The stage queue whose depth is exported (schedule --executor queue, worker). */
  queue?: QueueTarget;
}

export interface MetricsExport {
  metrics: PipelineMetrics;
  /** Where they are served, if --metrics-port. */
  url?: string;
  /** After something was recorded: rewrites the textfile, if --metrics-file. Never throws. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function startMetrics(options: MetricsOptions, warn: (line: string) => void): Promise<MetricsExport | undefined> {
  if (options.port === undefined && options.file === undefined) return undefined;
  const depth: QueueDepth | undefined = options.queue ? queueDepth(options.queue) : undefined;
  const metrics = new PipelineMetrics(depth?.probe);
  let endpoint: MetricsEndpoint | undefined;
  try {
    if (options.port !== undefined) endpoint = await serveMetrics(metrics, options.port);
  } catch (err) {
    await depth?.close();
    throw new UsageError(`--metrics-port ${options.port}: cannot listen on 127.0.0.1: ${err instanceof Error ? err.message : String(err)}`);
  }
  const flush = async () => {
    if (options.file === undefined) return;
    try {
      await writeMetricsFile(metrics, options.file);
    } catch (err) {
      warn(`metrics: cannot write ${options.file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  await flush();
  return {
    metrics,
    ...(endpoint ? { url: endpoint.url } : {}),
    flush,
    close: async () => {
      await endpoint?.close();
      await flush(); // the textfile ends with the final counts
      await depth?.close();
    },
  };
}
