// `pipeline show STAGE [--json]`: the stage's latest result — key, params, inputs and outputs with
// digests, sizes and readable paths, when it ran and how long it took. Reads only; no lock.
import type { Command } from 'commander';
import { join } from 'node:path';
import type { GlobalOptions } from '../global-options.js';
import { collect, collectUnset, overrideArgs, shown, UNSET_HELP } from '../stage-lines.js';
import { openSession } from '../session.js';
import { selectStages } from '../../engine/config/graph.js';
import { formatBytes, formatDuration } from '../output.js';
import { totalSize } from '../../engine/store/manifest.js';

/** Past this many output files, `show` summarises each directory instead of listing its files (`--all` lists them). */
const LISTED_FILES = 40;

interface ShowOptions {
  json?: boolean;
  all?: boolean;
  set: string[];
  unset: string[];
}

export function register(program: Command): void {
  program
    .command('show')
    .description("show a stage's latest result: key, params, inputs, outputs (digests, sizes, paths), run time")
    .argument('<stage>', 'stage name')
    .option('--json', 'machine-readable output')
    .option('--all', `list every output file (by default a result of more than ${LISTED_FILES} files is summarised per directory)`)
    .option('--set <stage.param=value>', 'override a param (repeatable)', collect, [])
    .option('--unset <stage.param>', UNSET_HELP, collectUnset, [])
    .action(async (stage: string, options: ShowOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const session = await openSession(globals.config, { sets: overrideArgs(options), backend: globals.backend });
      selectStages(session.pipeline, [stage]); // rejects unknown stage names
      const { store } = session;
      const spec = session.pipeline.stages.get(stage)!;
      const ref = (await store.readRefs()).get(stage);
      const manifest = ref ? await store.readManifest(ref.key) : null;
      if (!ref || !manifest) {
        if (options.json) process.stdout.write(JSON.stringify({ stage, kind: spec.kind, state: 'never-run' }, null, 2) + '\n');
        else process.stdout.write(`${stage}: no result yet (never run${ref ? ', or its record was removed by gc' : ''})\n`);
        return;
      }
      const link = store.stageLinkPath(stage);
      const linked = (await store.stageLinkTarget(stage)) === join('..', 'views', manifest.key);
      const viewRoot = linked ? link : store.viewPath(manifest.key);
      const outputs = Object.entries(manifest.files).map(([path, f]) => ({
        path,
        digest: f.digest,
        size: f.size,
        view: join(viewRoot, path),
        ...(manifest.kind === 'cmd' ? { workspace: join(session.pipeline.root, path) } : {}),
      }));
      const info = {
        stage,
        kind: manifest.kind,
        ...(manifest.material.version !== undefined ? { version: manifest.material.version } : {}),
        key: manifest.key,
        ...(manifest.material.cmd !== undefined ? { cmd: manifest.material.cmd } : {}),
        params: manifest.params,
        inputs: Object.entries(manifest.material.inputs).map(([name, digest]) => ({ stage: name, outputsDigest: digest })),
        deps: Object.entries(manifest.material.deps ?? {}).map(([path, digest]) => ({ path, digest })),
        ...(manifest.material.fingerprint ? { fingerprint: manifest.material.fingerprint } : {}),
        outputs,
        outputsDigest: manifest.outputsDigest,
        totalSize: totalSize(manifest),
        view: viewRoot,
        ranAt: manifest.createdAt,
        durationMs: manifest.durationMs,
        runId: manifest.runId,
        latestAt: ref.at,
      };
      if (options.json) {
        process.stdout.write(JSON.stringify(info, null, 2) + '\n');
        return;
      }
      const lines: string[] = [];
      const row = (label: string, value: string) => lines.push(`${label.padEnd(9)} ${value}`);
      row('stage', `${stage} (${manifest.kind}${info.version !== undefined ? ` v${info.version}` : ''})`);
      row('key', manifest.key);
      if (info.cmd !== undefined) row('cmd', info.cmd);
      row('params', Object.keys(manifest.params).length ? JSON.stringify(manifest.params) : '(none)');
      if (info.fingerprint) row('runtime', JSON.stringify(info.fingerprint));
      row('ran', `${manifest.createdAt}, took ${formatDuration(manifest.durationMs)} (run ${manifest.runId})`);
      row('inputs', info.inputs.length || info.deps.length ? '' : '(none)');
      for (const i of info.inputs) lines.push(`  stage ${i.stage}  outputs ${i.outputsDigest.slice(0, 16)}`);
      for (const d of info.deps) lines.push(`  ${d.path}  ${d.digest === null ? '(missing)' : d.digest.replace(/^tree:/, 'tree ').slice(0, 21)}`);
      row('outputs', `${outputs.length} file${outputs.length === 1 ? '' : 's'}, ${formatBytes(info.totalSize)} in ${shown(viewRoot)}`);
      const listed = options.all || outputs.length <= LISTED_FILES ? outputs : summarised(outputs);
      const w = Math.max(0, ...listed.map((o) => o.path.length));
      for (const o of listed) lines.push(`  ${o.path.padEnd(w)}  ${formatBytes(o.size).padStart(9)}  ${o.digest.slice(0, 16).padEnd(16)}  ${shown(o.view)}`);
      if (listed !== outputs) lines.push(`  (${outputs.length.toLocaleString('en-US')} files in all: --all lists them, --json gives every digest)`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}

interface ShownOutput {
  path: string;
  size: number;
  digest: string;
  view: string;
}

/**
 * Top-level files as they are, and each top-level directory as one line (`data/  60,000 files`),
 * so a fetched image folder does not print 60,000 lines.
 */
function summarised(outputs: ShownOutput[]): ShownOutput[] {
  const out: ShownOutput[] = [];
  const dirs = new Map<string, { files: number; size: number; view: string }>();
  for (const o of outputs) {
    const slash = o.path.indexOf('/');
    if (slash < 0) {
      out.push(o);
      continue;
    }
    const dir = o.path.slice(0, slash + 1);
    const d = dirs.get(dir) ?? { files: 0, size: 0, view: o.view.slice(0, o.view.length - o.path.length + slash) };
    d.files++;
    d.size += o.size;
    dirs.set(dir, d);
  }
  for (const [dir, d] of dirs) out.push({ path: dir, size: d.size, digest: `${d.files.toLocaleString('en-US')} files`, view: d.view });
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}
