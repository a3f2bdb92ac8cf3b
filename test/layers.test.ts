// The layer rules CI checks (`npm run lint`: dependency-cruiser with .dependency-cruiser.cjs) hold
// for the tree, and can fail: a copy of the sources with an upward import, an engine module that
// imports a stage kind and an import cycle injected is rejected, naming each rule and file. And the
// error convention: every error class in one of the two error modules.
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { appendFile, cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

/** The repository (this file runs as dist/test/layers.test.js). */
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SOURCES = ['engine', 'cli', 'stages', 'lib', 'workers', 'bench', 'test', 'ui'];
const dirs: string[] = [];

interface Checked {
  code: number | null;
  output: string;
}

/** Runs the project's layer check (the `lint` script of package.json) in `cwd`. */
async function lint(cwd: string): Promise<Checked> {
  const script = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.lint!;
  // The layer check is the script's first command (typescript-eslint follows it after `&&`).
  const [command, ...args] = script.split('&&')[0]!.trim().split(' ');
  expect(command).toBe('depcruise');
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'), ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, output }));
  });
}

/** A copy of the sources and the configs the check reads, with node_modules linked in. */
async function copyOfTree(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'layers-'));
  dirs.push(dir);
  for (const name of [...SOURCES, 'package.json', 'tsconfig.json', '.dependency-cruiser.cjs']) await cp(join(ROOT, name), join(dir, name), { recursive: true });
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('layer rules (npm run lint)', () => {
  test('the tree follows them', async () => {
    const checked = await lint(ROOT);
    expect(checked.output).toContain('no dependency violations found');
    expect(checked.code).toBe(0);
  });

  test('an upward import, an engine module importing a stage kind, and a cycle each fail the check', async () => {
    const dir = await copyOfTree();
    // lib/ importing the engine: lib is a leaf.
    await appendFile(join(dir, 'lib/format.ts'), "import '../engine/errors.js';\n");
    // The engine importing a stage kind: it runs the kinds the CLI hands it.
    await appendFile(join(dir, 'engine/run/execute.ts'), "import '../../stages/index.js';\n");
    // store.ts imports hash.ts; hash.ts importing store.ts closes a circle.
    await appendFile(join(dir, 'engine/store/hash.ts'), "import './store.js';\n");
    // A new file is held to them too: a worker importing the stage kinds.
    await writeFile(join(dir, 'workers/new-worker.ts'), "import '../stages/index.js';\n");

    const checked = await lint(dir);
    expect(checked.code).not.toBe(0);
    expect(checked.output).toMatch(/error lib-is-a-leaf: lib\/format\.ts → engine\/errors\.ts/);
    expect(checked.output).toMatch(/error engine-knows-no-stage-kinds-or-cli: engine\/run\/execute\.ts → stages\/index\.ts/);
    expect(checked.output).toMatch(/error no-circular: engine\/store\/hash\.ts →\s+engine\/store\/store\.ts →\s+engine\/store\/hash\.ts/);
    expect(checked.output).toMatch(/error workers-use-lib-only: workers\/new-worker\.ts → stages\/index\.ts/);
  });
});

describe('one error convention', () => {
  test('every error class is in engine/errors.ts (what the user sees) or lib/errors.ts (what lib raises)', async () => {
    const places: string[] = [];
    for (const top of ['engine', 'cli', 'stages', 'lib', 'workers', 'ui']) {
      for (const entry of await readdir(join(ROOT, top), { recursive: true, withFileTypes: true })) {
        if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
        const file = relative(ROOT, join(entry.parentPath, entry.name));
        const text = await readFile(join(ROOT, file), 'utf8');
        for (const m of text.matchAll(/class (\w+) extends (\w*Error)\b/g)) places.push(`${file}: ${m[1]} extends ${m[2]}`);
      }
    }
    expect(places.filter((p) => !p.startsWith('engine/errors.ts:') && !p.startsWith('lib/errors.ts:'))).toEqual([]);
    expect(places.length).toBeGreaterThan(10);
  });
});
