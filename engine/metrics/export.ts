// How the metrics leave the process: an HTTP endpoint on a loopback port (`--metrics-port`; opt-in,
// never on other interfaces: the text names stages and entries), or a node_exporter textfile
// (`--metrics-file`), replaced atomically so the collector never reads half a file.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { writeFileAtomic } from '../store/fs-tree.js';
import type { PipelineMetrics } from './registry.js';
import promClient from 'prom-client';

export interface MetricsEndpoint {
  url: string;
  close(): Promise<void>;
}

/** Serves GET /metrics on 127.0.0.1:port (0: a free port; the URL says which). */
export async function serveMetrics(metrics: PipelineMetrics, port: number): Promise<MetricsEndpoint> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('see /metrics\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': promClient.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  server.listen(port, '127.0.0.1');
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  return {
    url,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => undefined);
    },
  };
}

/** Writes the metrics to `file` (for node_exporter's textfile collector: name it *.prom). */
export async function writeMetricsFile(metrics: PipelineMetrics, file: string): Promise<void> {
  await writeFileAtomic(file, await metrics.text());
}
