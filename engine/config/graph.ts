// The stage graph: topological order (ties broken by declaration order), cycle detection, and the
// selections the commands need (a target plus everything it needs; everything downstream of a stage).
import { UsageError } from '../errors.js';
import type { Pipeline } from './pipeline.js';
import { didYouMean } from './suggest.js';

export type NeedsOf = (name: string) => readonly string[];

/**
 * Dependencies first; among stages that are ready at the same time, the one declared first goes
 * first, so the order is stable and matches how people read the file. Stages on a cycle (and
 * everything after them) are left out; `findCycles` reports them. Needs naming unknown stages are ignored.
 */
export function topologicalOrder(names: readonly string[], needsOf: NeedsOf): string[] {
  const index = new Map(names.map((n, i) => [n, i]));
  const pending = new Map<string, number>();
  const consumers = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const name of names) {
    const needs = [...new Set(needsOf(name))].filter((n) => index.has(n));
    pending.set(name, needs.length);
    for (const need of needs) consumers.get(need)!.push(name);
  }
  const ready = names.filter((n) => pending.get(n) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    // Few stages: a linear scan for the earliest-declared ready stage is plenty.
    let best = 0;
    for (let i = 1; i < ready.length; i++) if (index.get(ready[i])! < index.get(ready[best])!) best = i;
    const [next] = ready.splice(best, 1);
    order.push(next);
    for (const consumer of consumers.get(next)!) {
      const left = pending.get(consumer)! - 1;
      pending.set(consumer, left);
      if (left === 0) ready.push(consumer);
    }
  }
  return order;
}

/**
 * Every cycle, one per strongly connected component, as data flows: `[a, b, a]` means b needs a
 * and a needs b. Each starts (and ends) at its earliest-declared stage; cycles are sorted by it.
 */
export function findCycles(names: readonly string[], needsOf: NeedsOf): string[][] {
  const index = new Map(names.map((n, i) => [n, i]));
  const needs = (n: string) => needsOf(n).filter((m) => index.has(m));
  const consumers = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const n of names) for (const m of new Set(needs(n))) consumers.get(m)!.push(n);

  // Tarjan's strongly connected components.
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let counter = 0;
  const connect = (v: string): void => {
    order.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of needs(v)) {
      if (!order.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, order.get(w)!));
      }
    }
    if (low.get(v) === order.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      components.push(component);
    }
  };
  for (const n of names) if (!order.has(n)) connect(n);

  const cycles: string[][] = [];
  for (const component of components) {
    const members = new Set(component);
    const start = component.reduce((a, b) => (index.get(a)! < index.get(b)! ? a : b));
    if (component.length === 1 && !needs(start).includes(start)) continue;
    // Shortest way round from `start` along data flow (producer → consumer), breadth first.
    const parent = new Map<string, string>();
    const queue = [start];
    let last: string | undefined;
    while (queue.length > 0 && last === undefined) {
      const v = queue.shift()!;
      const next = consumers
        .get(v)!
        .filter((w) => members.has(w))
        .sort((a, b) => index.get(a)! - index.get(b)!);
      for (const w of next) {
        if (w === start) {
          last = v;
          break;
        }
        if (!parent.has(w)) {
          parent.set(w, v);
          queue.push(w);
        }
      }
    }
    const path = [start];
    for (let v = last!; v !== start; v = parent.get(v)!) path.splice(1, 0, v);
    path.push(start);
    cycles.push(path);
  }
  return cycles.sort((a, b) => index.get(a[0])! - index.get(b[0])!);
}

function checkKnown(pipeline: Pipeline, names: readonly string[]): void {
  for (const name of names) {
    if (!pipeline.stages.has(name)) {
      const known = [...pipeline.stages.keys()];
      throw new UsageError(`unknown stage '${name}'${didYouMean(name, known)} (stages: ${known.join(', ')})`);
    }
  }
}

/** The targets and everything they need, transitively, in run order; all stages when `targets` is empty. */
export function selectStages(pipeline: Pipeline, targets: readonly string[]): string[] {
  if (targets.length === 0) return [...pipeline.order];
  checkKnown(pipeline, targets);
  const wanted = new Set<string>();
  const stack = [...targets];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (wanted.has(name)) continue;
    wanted.add(name);
    stack.push(...pipeline.stages.get(name)!.needs);
  }
  return pipeline.order.filter((n) => wanted.has(n));
}

/**
 * Every stage that needs one of `names`, directly or transitively, in run order. The named stages
 * themselves are not included (unless one of them is downstream of another).
 */
export function downstreamOf(pipeline: Pipeline, names: readonly string[]): string[] {
  checkKnown(pipeline, names);
  const consumers = new Map<string, string[]>([...pipeline.stages.keys()].map((n) => [n, []]));
  for (const stage of pipeline.stages.values()) for (const need of stage.needs) consumers.get(need)?.push(stage.name);
  const found = new Set<string>();
  const stack = names.flatMap((n) => consumers.get(n)!);
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (found.has(name)) continue;
    found.add(name);
    stack.push(...consumers.get(name)!);
  }
  return pipeline.order.filter((n) => found.has(n));
}
