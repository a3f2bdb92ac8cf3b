// `pipeline schema [--out FILE]`: the JSON Schema of pipeline.yaml for editors, generated from the
// validator's own definitions (npm run schema refreshes schema/pipeline.schema.json); with
// --markdown, the reference of the built-in kinds from the same definitions (npm run docs: docs/kinds.md).
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema of pipeline.yaml (for editor completion and checks)')
    .option('-o, --out <file>', 'write it to FILE instead of stdout')
    .option('--markdown', 'print the reference of the built-in stage kinds as Markdown instead (docs/kinds.md)')
    .action(async (options: { out?: string; markdown?: boolean }) => {
      const { builtinKinds } = await import('../../stages/index.js');
      let text: string;
      if (options.markdown) {
        const { kindsMarkdown } = await import('../../engine/config/kinds-markdown.js');
        text = kindsMarkdown(builtinKinds);
      } else {
        const { pipelineJsonSchemaText } = await import('../../engine/config/json-schema.js');
        text = pipelineJsonSchemaText(builtinKinds);
      }
      if (options.out === undefined) {
        process.stdout.write(text);
        return;
      }
      const { mkdir, writeFile } = await import('node:fs/promises');
      const { dirname } = await import('node:path');
      await mkdir(dirname(options.out), { recursive: true });
      await writeFile(options.out, text);
      process.stderr.write(`wrote ${options.out}\n`);
    });
}
