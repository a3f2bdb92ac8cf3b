// The stage graph of a pipeline being validated: needs and params naming unknown stages, implied
// needs (a cmd stage's deps under another stage's outs), outputs claimed twice or overlapping, outs
// that would delete the stage's own inputs, and cycles.
import type { Draft } from './draft.js';
import { findCycles } from './graph.js';
import { formatPath, isRecord, type Validation } from './messages.js';
import { didYouMean } from './suggest.js';
import { overlaps } from '../store/workspace-paths.js';
import type { DocPath } from './yaml-locations.js';

/** Path (inside `with:`) of the first string equal to `ref`, to point at a param naming a stage. */
function findString(value: unknown, ref: string, path: DocPath = []): DocPath | undefined {
  if (value === ref) return path;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findString(value[i], ref, [...path, i]);
      if (found) return found;
    }
  } else if (isRecord(value)) {
    for (const [k, item] of Object.entries(value)) {
      const found = findString(item, ref, [...path, k]);
      if (found) return found;
    }
  }
  return undefined;
}

/** Stages whose outs a cmd stage's deps read (a dep equal to, under, or containing another stage's out). */
function impliedNeeds(draft: Draft, outIndex: OutIndex): string[] {
  const found = new Set<string>();
  for (const dep of draft.deps) {
    for (const s of outIndex.atOrUnder.get(dep.path) ?? []) found.add(s);
    for (let i = dep.path.lastIndexOf('/'); i > 0; i = dep.path.lastIndexOf('/', i - 1))
      for (const s of outIndex.exact.get(dep.path.slice(0, i)) ?? []) found.add(s);
  }
  found.delete(draft.name);
  return [...found].sort((a, b) => outIndex.rank.get(a)! - outIndex.rank.get(b)!);
}

/** Outs by path, and by every directory they lie in, so implied needs take one lookup per dep path level. */
interface OutIndex {
  exact: Map<string, Set<string>>;
  atOrUnder: Map<string, Set<string>>;
  /** Declaration order, so implied needs are listed as before. */
  rank: Map<string, number>;
}

function indexOuts(drafts: ReadonlyMap<string, Draft>): OutIndex {
  const exact = new Map<string, Set<string>>();
  const atOrUnder = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, k: string, stage: string) => {
    let set = m.get(k);
    if (!set) m.set(k, (set = new Set()));
    set.add(stage);
  };
  for (const d of drafts.values()) {
    for (const out of d.outs) {
      add(exact, out.path, d.name);
      add(atOrUnder, out.path, d.name);
      for (let i = out.path.lastIndexOf('/'); i > 0; i = out.path.lastIndexOf('/', i - 1)) add(atOrUnder, out.path.slice(0, i), d.name);
    }
  }
  return { exact, atOrUnder, rank: new Map([...drafts.keys()].map((n, i) => [n, i])) };
}

/**
 * Outs a run would delete before the command starts: never the stage's own deps, the pipeline
 * file or .git (the store is refused with the path itself).
 */
export function checkOwnership(v: Validation, drafts: ReadonlyMap<string, Draft>, pipelineFile: string): void {
  for (const d of drafts.values()) {
    for (const out of d.outs) {
      const label = `stage '${d.name}': output '${out.path}'`;
      if (overlaps(out.path, pipelineFile)) v.value(out.at, `${label} is the pipeline file; run deletes outs before the command runs`);
      else if (overlaps(out.path, '.git')) v.value(out.at, `${label} is inside .git; outs are deleted before the command runs`);
      const dep = d.deps.find((x) => overlaps(x.path, out.path));
      if (dep) {
        const loc = v.at.value(dep.at);
        const relation =
          dep.path === out.path
            ? 'is also its dep'
            : dep.path.startsWith(out.path + '/')
              ? `contains its dep '${dep.path}'`
              : `is inside its dep '${dep.path}'`;
        v.value(
          out.at,
          `${label} ${relation} (${loc.file}:${loc.line}:${loc.col}); outs are deleted before the command runs, so it would delete its own input (write to a new file)`,
        );
      }
    }
  }
}

/** Checks needs and params naming unknown stages, outputs claimed twice, and cycles; returns each stage's needs. */
export function checkGraph(v: Validation, drafts: ReadonlyMap<string, Draft>): Map<string, string[]> {
  const names = [...drafts.keys()];
  for (const d of drafts.values()) {
    for (const need of d.needs) {
      if (!drafts.has(need.name)) v.value(need.at, `stage '${d.name}': needs unknown stage '${need.name}'${didYouMean(need.name, names)}`);
    }
    for (const ref of d.refs) {
      if (drafts.has(ref)) continue;
      const inWith = findString(d.withValue, ref);
      const where = inWith ? ` (with: ${formatPath(inWith)})` : '';
      v.value(['stages', d.name, 'with', ...(inWith ?? [])], `stage '${d.name}': names unknown stage '${ref}'${where}${didYouMean(ref, names)}`);
    }
  }

  // Two stages writing the same workspace path (or one inside the other) would overwrite each other.
  const outs = [...drafts.values()].flatMap((d) => d.outs.map((out) => ({ stage: d.name, ...out })));
  // The first earlier out at the same path, at a directory above it, or below it (indexes by path: linear, not pairwise).
  const firstAt = new Map<string, number>();
  const firstAtOrUnder = new Map<string, number>();
  for (let j = 0; j < outs.length; j++) {
    const b = outs[j];
    const ancestors: string[] = [];
    for (let k = b.path.lastIndexOf('/'); k > 0; k = b.path.lastIndexOf('/', k - 1)) ancestors.push(b.path.slice(0, k));
    const candidates = [firstAtOrUnder.get(b.path), ...ancestors.map((p) => firstAt.get(p))].filter((i): i is number => i !== undefined);
    if (!firstAt.has(b.path)) firstAt.set(b.path, j);
    for (const p of [b.path, ...ancestors]) if (!firstAtOrUnder.has(p)) firstAtOrUnder.set(p, j);
    if (candidates.length > 0) {
      const a = outs[Math.min(...candidates)];
      const owner = a.stage === b.stage ? '' : ` of stage '${a.stage}'`;
      const relation =
        a.path === b.path
          ? a.stage === b.stage
            ? 'is listed twice'
            : `is also an output${owner}`
          : b.path.startsWith(a.path + '/')
            ? `is inside output '${a.path}'${owner}`
            : `contains output '${a.path}'${owner}`;
      const loc = v.at.value(a.at);
      v.value(b.at, `stage '${b.stage}': output '${b.path}' ${relation} (${loc.file}:${loc.line}:${loc.col})`);
    }
  }

  const outIndex = indexOuts(drafts);
  const needs = new Map([...drafts.values()].map((d) => [d.name, [...d.needs.map((n) => n.name), ...d.refs, ...impliedNeeds(d, outIndex)]]));
  for (const cycle of findCycles(names, (n) => needs.get(n)!)) v.key(['stages', cycle[0]], `cycle: ${cycle.join(' -> ')}`);
  return needs;
}
