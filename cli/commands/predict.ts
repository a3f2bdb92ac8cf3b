// `pipeline predict [--model current|STAGE|DIR] PATHS…`: a model bundle on new images. Images
// (files, folders, archives) are decoded as decode would (worker threads), classified in batches on
// the fastest backend that loads, and written as CSV or JSON lines to stdout or --out (written to a
// temporary file and renamed, so an interrupted run leaves no half file). Progress and one line per
// skipped image go to stderr; exit 4 when any image was skipped (docs/operations.md: exit codes). Reads only.
import { Option, type Command } from 'commander';
import type { GlobalOptions } from '../global-options.js';
import { positiveInt } from '../stage-lines.js';
import { runPredict } from '../predict.js';

interface PredictOptions {
  model: string;
  topK: number;
  format: 'csv' | 'jsonl';
  out?: string;
  batchSize: number;
  maxPixels?: number;
}

export function register(program: Command): void {
  program
    .command('predict')
    .description('classify images with a trained model: top-k classes and probabilities as CSV or JSON lines')
    .argument('<paths...>', 'JPEG or PNG files, folders of them (recursively), or archives of them (.tar, .tar.gz, .tgz, .zip)')
    .option('--model <model>', 'current (models/current, the promoted model), a train stage (its latest result), or a bundle directory', 'current')
    .option('--top-k <k>', 'classes per image, most probable first', positiveInt, 3)
    .addOption(new Option('--format <format>', 'output format').choices(['csv', 'jsonl']).default('csv'))
    .option('--out <file>', 'write the predictions to FILE instead of stdout')
    .option('--batch-size <n>', 'images per model call', positiveInt, 64)
    .option('--max-pixels <n>', "largest width × height decoded, as decode's max_pixels (larger images are skipped; default 89,478,485)", positiveInt)
    .action(async (paths: string[], options: PredictOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      await runPredict(paths, { ...options, config: globals.config, verbose: globals.verbose, backend: globals.backend ?? 'auto' });
    });
}
