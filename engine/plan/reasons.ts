// Why a stage must run (or why `status` calls it stale): structured for --json, with one-line text.
import type { ValueChange } from '../store/cache-key.js';

export interface InputChange {
  /** Upstream stage name, or dep path. */
  name: string;
  via: 'stage' | 'dep';
  /** Previous and current digests; null = missing, undefined = not part of the key then/now. */
  old?: string | null;
  new?: string | null;
}

export type Reason =
  | { type: 'never-run' }
  | { type: 'forced' }
  | { type: 'code'; what: 'kind' | 'version' | 'cmd' | 'outs'; old: unknown; new: unknown }
  | { type: 'params'; changes: ValueChange[] }
  | { type: 'input'; changes: InputChange[] }
  | { type: 'runtime'; changes: ValueChange[] }
  /** Committed outputs gone: store objects (the stage reruns) or workspace outs (restored by `run`). */
  | { type: 'output-missing'; objects: string[]; workspace: string[]; manifest?: boolean; corrupt?: boolean }
  /** An upstream stage runs first; this one is rechecked against its new outputs. */
  | { type: 'upstream'; stages: string[] }
  | { type: 'fingerprint-failed'; message: string }
  /** The latest result was made by run `run` with these overrides, and with them it is up to date (`status`). */
  | { type: 'overrides'; run: string; set: string[]; unset: string[]; backend?: string }
  /** Not a reason to run: an interrupted run left a checkpoint (`dir`, under artifacts/), for this key or another one (`status`). */
  | { type: 'resumable'; dir: string; sameKey: boolean };

export function describeReason(r: Reason): string {
  switch (r.type) {
    case 'never-run':
      return 'never run';
    case 'forced':
      return 'forced (--force)';
    case 'code':
      return r.what === 'version'
        ? `code changed: version ${show(r.old)} → ${show(r.new)}`
        : r.what === 'kind'
          ? `code changed: kind ${show(r.old)} → ${show(r.new)}`
          : r.what === 'cmd'
            ? `code changed: cmd ${cmdChange(String(r.old ?? ''), String(r.new ?? ''))}`
            : `code changed: outs ${show(r.old)} → ${show(r.new)}`;
    case 'params':
      return `params changed: ${r.changes.map(changeText).join(', ')}`;
    case 'runtime':
      return `runtime changed: ${r.changes.map(changeText).join(', ')}`;
    case 'input':
      return `input changed: ${r.changes.map(inputText).join(', ')}`;
    case 'output-missing': {
      const parts: string[] = [];
      if (r.manifest) parts.push('its store record is gone');
      if (r.objects.length) parts.push(r.corrupt ? `${list(r.objects)} corrupt in the store (removed)` : `${list(r.objects)} gone from the store`);
      if (r.workspace.length) parts.push(`workspace ${list(r.workspace)} missing or modified (run restores it)`);
      return `output missing: ${parts.join('; ')}`;
    }
    case 'upstream':
      return `upstream stale: ${r.stages.join(', ')}`;
    case 'fingerprint-failed':
      return `cannot check runtime: ${r.message}`;
    case 'overrides': {
      const args = overrideText(r);
      return `the latest result was made with ${args} (run ${r.run}); \`pipeline run ${args}\` reuses it`;
    }
    case 'resumable':
      return r.sameKey
        ? `an interrupted run's checkpoint waits in artifacts/${r.dir}: the next run resumes from it`
        : `an interrupted run's checkpoint is kept in artifacts/${r.dir}: the stage resumes from it when it runs with the inputs and params it had`;
  }
}

/** `--set a.b=1 --unset c.d --backend wasm`, each value quoted for a shell where it needs it. */
export function overrideText(o: { set: readonly string[]; unset: readonly string[]; backend?: string }): string {
  return [
    ...o.set.map((s) => `--set ${shellWord(s)}`),
    ...o.unset.map((u) => `--unset ${shellWord(u)}`),
    ...(o.backend !== undefined ? [`--backend ${shellWord(o.backend)}`] : []),
  ].join(' ');
}

function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

export function describeReasons(reasons: readonly Reason[]): string {
  return reasons.map(describeReason).join('; ');
}

function changeText(c: ValueChange): string {
  // Long strings (e.g. decoder versions) would truncate to the same prefix: show where they differ.
  if (typeof c.old === 'string' && typeof c.new === 'string' && Math.max(c.old.length, c.new.length) > 58) {
    return `${c.path} ${cmdChange(c.old, c.new)}`;
  }
  return `${c.path} ${show(c.old)} → ${show(c.new)}`;
}

function inputText(c: InputChange): string {
  const what = c.via === 'stage' ? `stage ${c.name}` : c.name;
  if (c.old === undefined) return `${what} (new)`;
  if (c.new === undefined) return `${what} (removed)`;
  if (c.new === null) return `${what} (missing)`;
  if (c.old === null) return `${what} (appeared)`;
  return `${what} (${c.old.slice(0, 8)} → ${c.new.slice(0, 8)})`;
}

function list(items: string[]): string {
  return items.length <= 3 ? items.join(', ') : `${items.slice(0, 3).join(', ')} and ${items.length - 3} more`;
}

function show(v: unknown): string {
  if (v === undefined) return '(unset)';
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

/** The part of a command that changed, with a little context: `…seq 1 3 >…` → `…seq 1 4 >…`. */
export function cmdChange(a: string, b: string, context = 12): string {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const from = Math.max(0, pre - context);
  const cut = (s: string) => {
    const to = Math.min(s.length, s.length - suf + context);
    let mid = s.slice(from, to);
    if (mid.length > 80) mid = mid.slice(0, 77) + '...';
    return '`' + (from > 0 ? '…' : '') + mid + (to < s.length ? '…' : '') + '`';
  };
  return `${cut(a)} → ${cut(b)}`;
}
