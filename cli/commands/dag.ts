// `pipeline dag [STAGE...] [--format text|mermaid|dot]`: the stage graph, after full validation.
import { Option, type Command } from 'commander';
import type { Pipeline } from '../../engine/config/pipeline.js';
import type { GlobalOptions } from '../global-options.js';
import { collect, collectUnset, overrideArgs, UNSET_HELP } from '../stage-lines.js';
import { loadPipeline } from '../session.js';
import { selectStages } from '../../engine/config/graph.js';

export const DAG_FORMATS = ['text', 'mermaid', 'dot'] as const;
export type DagFormat = (typeof DAG_FORMATS)[number];

interface DagOptions {
  format: DagFormat;
  set: string[];
  unset: string[];
}

export function register(program: Command): void {
  program
    .command('dag')
    .description('validate pipeline.yaml and print its stages in run order with what each needs')
    .argument('[stages...]', 'only these stages and what they need')
    .addOption(new Option('-f, --format <format>', 'output format').choices(DAG_FORMATS).default('text'))
    .option('--set <stage.param=value>', 'override a param (repeatable)', collect, [])
    .option('--unset <stage.param>', UNSET_HELP, collectUnset, [])
    .action(async (targets: string[], options: DagOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const pipeline = await loadPipeline(globals.config, { sets: overrideArgs(options) });
      const selected = selectStages(pipeline, targets);
      process.stdout.write(renderDag(pipeline, selected, options.format));
    });
}

export function renderDag(pipeline: Pipeline, selected: readonly string[], format: DagFormat): string {
  switch (format) {
    case 'text':
      return renderText(pipeline, selected);
    case 'mermaid':
      return renderMermaid(pipeline, selected);
    case 'dot':
      return renderDot(pipeline, selected);
  }
}

/** One line per stage in run order: `name  (kind)  <- needs`, columns aligned. */
export function renderText(pipeline: Pipeline, selected: readonly string[]): string {
  const rows = selected.map((name) => {
    const stage = pipeline.stages.get(name)!;
    return { name, kind: `(${stage.kind})`, needs: stage.needs };
  });
  const nameWidth = Math.max(0, ...rows.map((r) => r.name.length));
  const kindWidth = Math.max(0, ...rows.map((r) => r.kind.length));
  return rows
    .map((r) => {
      const needs = r.needs.length ? `  <- ${r.needs.join(', ')}` : '';
      return `${r.name.padEnd(nameWidth)}  ${needs ? r.kind.padEnd(kindWidth) : r.kind}${needs}`;
    })
    .map((line) => line + '\n')
    .join('');
}

const MERMAID_KEYWORDS = new Set(['end', 'graph', 'flowchart', 'subgraph', 'style', 'class', 'classdef', 'click', 'linkstyle', 'direction', 'default']);

/** Mermaid node ids: the stage name when Mermaid can take it as is, else a generated id. */
function mermaidIds(names: readonly string[]): Map<string, string> {
  const ids = new Map<string, string>();
  const used = new Set(names);
  let counter = 0;
  for (const name of names) {
    if (/^[A-Za-z][A-Za-z0-9_]*$/.test(name) && !MERMAID_KEYWORDS.has(name.toLowerCase())) {
      ids.set(name, name);
      continue;
    }
    let id: string;
    do id = `stage${++counter}`;
    while (used.has(id));
    used.add(id);
    ids.set(name, id);
  }
  return ids;
}

export function renderMermaid(pipeline: Pipeline, selected: readonly string[]): string {
  const ids = mermaidIds(selected);
  const lines = ['graph TD'];
  for (const name of selected) lines.push(`  ${ids.get(name)}["${name}<br/><small>${pipeline.stages.get(name)!.kind}</small>"]`);
  for (const name of selected) {
    for (const need of pipeline.stages.get(name)!.needs) if (ids.has(need)) lines.push(`  ${ids.get(need)} --> ${ids.get(name)}`);
  }
  return lines.join('\n') + '\n';
}

export function renderDot(pipeline: Pipeline, selected: readonly string[]): string {
  const quote = (s: string) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  const lines = ['digraph pipeline {', '  rankdir=TB;', '  node [shape=box];'];
  for (const name of selected) lines.push(`  ${quote(name)} [label=${quote(`${name}\n(${pipeline.stages.get(name)!.kind})`).replace('\n', '\\n')}];`);
  const chosen = new Set(selected);
  for (const name of selected) {
    for (const need of pipeline.stages.get(name)!.needs) if (chosen.has(need)) lines.push(`  ${quote(need)} -> ${quote(name)};`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
