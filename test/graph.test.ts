// The stage graph: run order, cycles, and the selections commands make from it.
import { describe, test, expect } from '@jest/globals';
import { parsePipeline } from '../engine/config/parse.js';
import { UsageError } from '../engine/errors.js';
import { downstreamOf, findCycles, selectStages, topologicalOrder } from '../engine/config/graph.js';
import { fakeKinds } from './helpers/fake-kinds.js';

const graph = (edges: Record<string, string[]>) => ({ names: Object.keys(edges), needsOf: (n: string) => edges[n] ?? [] });

describe('topologicalOrder', () => {
  test('dependencies first; ready stages in declaration order', () => {
    // z needs y; nothing else: y is the first ready stage, then z becomes ready before x by declaration.
    const g = graph({ z: ['y'], y: [], x: [] });
    expect(topologicalOrder(g.names, g.needsOf)).toEqual(['y', 'z', 'x']);
  });

  test('a diamond keeps declaration order among siblings', () => {
    const g = graph({ top: [], right: ['top'], left: ['top'], bottom: ['left', 'right'] });
    expect(topologicalOrder(g.names, g.needsOf)).toEqual(['top', 'right', 'left', 'bottom']);
  });

  test('independent chains interleave by declaration order of whatever is ready', () => {
    const g = graph({ a2: ['a1'], b1: [], a1: [], b2: ['b1'] });
    expect(topologicalOrder(g.names, g.needsOf)).toEqual(['b1', 'a1', 'a2', 'b2']);
  });

  test('duplicate and unknown needs are ignored; stages on a cycle are left out', () => {
    expect(topologicalOrder(['a', 'b'], (n) => (n === 'b' ? ['a', 'a', 'ghost'] : []))).toEqual(['a', 'b']);
    const g = graph({ a: [], b: ['c'], c: ['b'], d: ['a'] });
    expect(topologicalOrder(g.names, g.needsOf)).toEqual(['a', 'd']);
  });
});

describe('findCycles', () => {
  test('none in a DAG', () => {
    const g = graph({ a: [], b: ['a'], c: ['a', 'b'] });
    expect(findCycles(g.names, g.needsOf)).toEqual([]);
  });

  test('each cycle once, in data-flow order from its earliest-declared stage', () => {
    // b needs a, c needs b, a needs c: data flows a -> b -> c -> a.
    const g = graph({ x: [], a: ['c'], b: ['a'], c: ['b'], s: ['s'], p: ['q'], q: ['p'] });
    expect(findCycles(g.names, g.needsOf)).toEqual([
      ['a', 'b', 'c', 'a'],
      ['s', 's'],
      ['p', 'q', 'p'],
    ]);
  });

  test('the shortest way round is printed when a component has several loops', () => {
    const g = graph({ a: ['c', 'b'], b: ['a'], c: ['b'] });
    expect(findCycles(g.names, g.needsOf)).toEqual([['a', 'b', 'a']]);
  });
});

describe('selectStages and downstreamOf', () => {
  const pipeline = parsePipeline(
    [
      'stages:',
      '  fetch: {cmd: fetch, outs: [raw]}',
      '  decode: {cmd: decode, deps: [raw], outs: [images]}',
      '  stats: {cmd: stats, deps: [raw], outs: [stats.txt]}',
      '  train: {uses: learn, needs: [decode], with: {epochs: 1}}',
      '  tune: {uses: learn, needs: [decode], with: {epochs: 1, init_from: train}}',
      '  report: {cmd: report, needs: [tune, stats]}',
    ].join('\n'),
    { file: '/ws/pipeline.yaml', shownAs: 'pipeline.yaml', kinds: fakeKinds },
  );

  test('all stages in run order when no targets are given', () => {
    expect(pipeline.order).toEqual(['fetch', 'decode', 'stats', 'train', 'tune', 'report']);
    expect(selectStages(pipeline, [])).toEqual(pipeline.order);
  });

  test('targets plus everything they need, in run order', () => {
    expect(selectStages(pipeline, ['train'])).toEqual(['fetch', 'decode', 'train']);
    expect(selectStages(pipeline, ['tune'])).toEqual(['fetch', 'decode', 'train', 'tune']);
    expect(selectStages(pipeline, ['stats', 'train', 'stats'])).toEqual(['fetch', 'decode', 'stats', 'train']);
    expect(selectStages(pipeline, ['fetch'])).toEqual(['fetch']);
  });

  test('an unknown target is a usage error naming it and the known stages', () => {
    expect(() => selectStages(pipeline, ['trian'])).toThrow(UsageError);
    expect(() => selectStages(pipeline, ['trian'])).toThrow(
      "unknown stage 'trian' (did you mean 'train'?) (stages: fetch, decode, stats, train, tune, report)",
    );
  });

  test('downstreamOf: everything that needs the named stages, transitively, without them', () => {
    expect(downstreamOf(pipeline, ['train'])).toEqual(['tune', 'report']);
    expect(downstreamOf(pipeline, ['fetch'])).toEqual(['decode', 'stats', 'train', 'tune', 'report']);
    expect(downstreamOf(pipeline, ['stats', 'report'])).toEqual(['report']);
    expect(downstreamOf(pipeline, ['report'])).toEqual([]);
    expect(() => downstreamOf(pipeline, ['nope'])).toThrow(UsageError);
  });
});
