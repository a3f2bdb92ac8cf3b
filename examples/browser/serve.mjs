#!/usr/bin/env node
// Serves the browser example on this machine only (127.0.0.1): the page, TensorFlow.js's own
// browser build from node_modules (no CDN), and a model bundle directory under /model/.
//
//   node examples/browser/serve.mjs [--model DIR] [--port N]
//
// DIR defaults to models/current (the promoted model); --port 0 picks a free port. Prints the URL.
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { model: { type: 'string', default: 'models/current' }, port: { type: 'string', default: '8080' } } });
const here = dirname(fileURLToPath(import.meta.url));
const tfjs = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs/package.json'));
// Resolved once: a promotion while serving does not mix two models' files.
const modelDir = await realpath(values.model);

const files = {
  '/': [join(here, 'index.html'), 'text/html; charset=utf-8'],
  '/classify.js': [join(here, 'classify.js'), 'text/javascript'],
  '/bundle-input.mjs': [join(here, '..', 'bundle-input.mjs'), 'text/javascript'],
  '/tf.min.js': [join(tfjs, 'dist', 'tf.min.js'), 'text/javascript'],
};

function resolvePath(pathname) {
  if (files[pathname]) return files[pathname];
  // Only plain file names of the bundle directory: no path can leave it.
  const name = /^\/model\/([\w.-]+)$/.exec(pathname)?.[1];
  if (!name || name.startsWith('.')) return undefined;
  return [join(modelDir, name), name.endsWith('.json') ? 'application/json' : 'application/octet-stream'];
}

const server = createServer(async (req, res) => {
  const found = resolvePath(new URL(req.url ?? '/', 'http://localhost').pathname);
  const info = found && (await stat(found[0]).catch(() => undefined));
  if (req.method !== 'GET' || !found || !info?.isFile()) {
    res.writeHead(404).end('not found\n');
    return;
  }
  res.writeHead(200, { 'content-type': found[1], 'content-length': info.size, 'cache-control': 'no-store' });
  createReadStream(found[0]).pipe(res);
});

server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`serving ${modelDir} at http://127.0.0.1:${server.address().port}/\n`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
