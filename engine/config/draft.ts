// A stage under construction while pipeline.yaml is validated (config/parse.ts builds it, the graph
// check in config/graph-check.ts reads it).
import type { SourceLocation } from '../errors.js';
import type { AttemptPolicy } from './pipeline.js';
import type { DocPath } from './yaml-locations.js';

/** A stage under construction: what validation could establish, even when parts of it are invalid. */
export interface Draft {
  name: string;
  loc: SourceLocation;
  kind?: string;
  params?: Record<string, unknown>;
  /** The stage's `with:` after substitution (to locate params that name stages). */
  withValue?: Record<string, unknown>;
  cmd?: string;
  /** The command as run, with params passed as environment variables (see commandWithParamEnv). */
  cmdExec?: { exec: string; env: Record<string, string> };
  deps: { path: string; at: DocPath }[];
  outs: { path: string; at: DocPath }[];
  needs: { name: string; at: DocPath }[];
  refs: string[];
  attempts?: AttemptPolicy;
}
