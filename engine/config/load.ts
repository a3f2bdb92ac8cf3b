// Reads pipeline.yaml from disk and hands its text to the validator (config/parse.ts), with the
// stage kinds the caller gives: the engine imports no kinds itself (the CLI passes stages/index.ts).
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { Pipeline } from './pipeline.js';
import { ConfigError, ConfigErrors } from '../errors.js';
import { parseSet } from './overrides.js';
import { parsePipeline, type KindRegistry } from './parse.js';

export interface LoadOptions {
  /** `--set` arguments (`stage.param=value`, `params.name=value`). */
  sets?: readonly string[];
  /** Stage kinds the file may use (the CLI passes the built-in registry, stages/index.ts). */
  kinds: KindRegistry;
  /** Directory that relative paths (and the shown file name) are taken from (default: process.cwd()). */
  cwd?: string;
}

/** Reads and validates a pipeline file. Throws ConfigErrors (exit 2) listing every problem. */
export async function loadPipeline(file: string, options: LoadOptions): Promise<Pipeline> {
  const cwd = options.cwd ?? process.cwd();
  const path = resolve(cwd, file);
  const shownAs = shownPath(path, cwd);
  const sets = (options.sets ?? []).map(parseSet);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file (--config FILE names another)' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new ConfigErrors([new ConfigError(`cannot read ${shownAs}: ${why}`)]);
  }
  return parsePipeline(text, { file: path, shownAs, sets, kinds: options.kinds });
}

/** The path relative to `cwd` when that is shorter (as people typed it), else absolute. */
export function shownPath(path: string, cwd: string = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel !== '' && !isAbsolute(rel) && rel.length < path.length ? rel : path;
}
