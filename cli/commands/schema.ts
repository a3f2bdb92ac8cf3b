// `pipeline schema [--out FILE]`: the JSON Schema of pipeline.yaml for editors, generated from the
// validator's own definitions (npm run schema refreshes schema/pipeline.schema.json); with
// --markdown, the reference of the built-in kinds from the same definitions (npm run docs: docs/kinds.md).
import type { Command } from 'commander';
import { pipelineJsonSchemaText } from '../../engine/config/json-schema.js';
import { kindsMarkdown } from '../../engine/config/kinds-markdown.js';
import { builtinKinds } from '../../stages/index.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export function register(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema of pipeline.yaml (for editor completion and checks)')
    .option('-o, --out <file>', 'write it to FILE instead of stdout')
    .option('--markdown', 'print the reference of the built-in stage kinds as Markdown instead (docs/kinds.md)')
    .action(async (options: { out?: string; markdown?: boolean }) => {
      const text = options.markdown ? kindsMarkdown(builtinKinds) : pipelineJsonSchemaText(builtinKinds);
      if (options.out === undefined) {
        process.stdout.write(text);
        return;
      }
      await mkdir(dirname(options.out), { recursive: true });
      await writeFile(options.out, text);
      process.stderr.write(`wrote ${options.out}\n`);
    });
}
