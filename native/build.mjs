// Builds the native training kernels (native/dnnl-kernels.cc, oneDNN) with node-gyp, offline:
// the Node headers come from the local installation (--nodedir), never from the network. Run by
// `npm ci` / `npm install` (the package's install script) and by `npm run build`. Where it cannot
// build (no C++ compiler, no oneDNN headers, no Node headers) it prints one line and exits 0:
// training then falls back to wasm. PIPELINE_NATIVE=off skips it.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'build', 'Release', 'dnnl_kernels.node');
const sources = ['dnnl-kernels.cc', 'binding.gyp', 'build.mjs'].map((f) => join(here, f));
const log = join(here, 'build.log');

function skip(reason) {
  console.log(`native backend: not built (${reason}); training uses wasm`);
  process.exit(0);
}

if (process.env.PIPELINE_NATIVE === 'off') skip('PIPELINE_NATIVE=off');
if (existsSync(output) && sources.every((s) => statSync(s).mtimeMs <= statSync(output).mtimeMs)) process.exit(0);

const nodeDir = [join(dirname(process.execPath), '..'), '/usr', '/usr/local'].find(
  (d) => existsSync(join(d, 'include', 'node', 'node_api.h')) && existsSync(join(d, 'include', 'node', 'common.gypi')),
);
if (nodeDir === undefined) skip('no Node headers (include/node/node_api.h) next to this node');
const dnnl = ['/usr/include', '/usr/local/include'].some((d) => existsSync(join(d, 'oneapi', 'dnnl', 'dnnl.hpp')));
if (!dnnl) skip('no oneDNN headers: apt-get install libdnnl-dev');
if (spawnSync('c++', ['--version']).status !== 0) skip('no C++ compiler: apt-get install g++ make');

const nodeGyp = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((p) => p !== undefined && existsSync(p));
if (nodeGyp === undefined) skip('no node-gyp (it ships with npm: run this from an npm script, or set npm_config_node_gyp)');

const run = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`, `--directory=${here}`], {
  encoding: 'utf8',
  env: { ...process.env, npm_config_offline: 'true' },
});
writeFileSync(log, `${run.stdout ?? ''}${run.stderr ?? ''}`);
if (run.status !== 0 || !existsSync(output)) skip(`build failed, see native/build.log`);
console.log(`native backend: built native/build/Release/dnnl_kernels.node (oneDNN)`);
