// The body of `pipeline predict` (cli/commands/predict.ts), loaded on demand: it pulls in
// TensorFlow.js. The work is lib/predict's; this wires it to the terminal: the model the user named,
// the output (stdout or an atomically written file), progress and skipped-image lines on stderr,
// Ctrl-C, and the exit code.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { AbortedError, ImagesSkippedError, UsageError } from '../engine/errors.js';
import { BundleError, InterruptedError, PredictInputError } from '../lib/errors.js';
import { DEFAULT_MAX_PIXELS } from '../lib/images/pixel-limit.js';
import { poolDecoder, type BatchDecoder } from '../lib/predict/decode.js';
import { imageInputs, isFailure, type ImageInputs } from '../lib/predict/inputs.js';
import { loadBundledModel, readBundle } from '../lib/predict/model.js';
import type * as tf from '@tensorflow/tfjs';
import { formatter, type OutputFormat } from '../lib/predict/output.js';
import { predictImages, type PredictSummary } from '../lib/predict/predict.js';
import { initBackend, type BackendPreference } from '../lib/tf/backend.js';
import { modelSource } from './model-source.js';
import { stageLogger, stageProgress } from './output.js';
import { outputSink, OUTPUT_CLOSED, type OutputSink } from './predict-output.js';

const DECODE_WORKER = fileURLToPath(new URL('../workers/decode.js', import.meta.url));

export interface PredictRequest {
  model: string;
  topK: number;
  format: OutputFormat;
  out?: string;
  batchSize: number;
  maxPixels?: number;
  config: string;
  verbose: boolean;
  backend: string;
}

/** Errors the user can act on become usage errors (exit 2); an interrupt is exit 130. */
function translated(err: unknown, signal: AbortSignal): unknown {
  if (signal.aborted && signal.reason !== OUTPUT_CLOSED) return signal.reason;
  if (err instanceof InterruptedError) return new AbortedError(err.message);
  if (err instanceof BundleError || err instanceof PredictInputError) return new UsageError(err.message);
  return err;
}

export async function runPredict(paths: string[], req: PredictRequest): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort(new AbortedError('interrupted: predict stopped; no output file was written'));
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, onSignal);
  const log = stageLogger('predict', req.verbose, (line) => process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}${line}\n`));
  let model: tf.LayersModel | undefined;
  let inputs: ImageInputs | undefined;
  let decoder: BatchDecoder | undefined;
  let sink: OutputSink | undefined;
  try {
    // What the user named is checked first (model, then paths); TensorFlow.js loads last.
    const source = await modelSource(req.model, req.config);
    const bundle = await readBundle(source.read, source.where, source.retrain);
    inputs = await imageInputs(paths, { signal: stop.signal });
    const { items } = inputs;
    const images = items.filter((it) => !isFailure(it)).length;
    if (items.length === 0) {
      throw new UsageError(`no JPEG or PNG images in ${paths.join(' ')}${inputs.ignored ? ` (${inputs.ignored} other files ignored)` : ''}`);
    }
    const backend = await initBackend(req.backend as BackendPreference);
    for (const line of backend.fallbacks ?? []) log.warn(line);
    model = await loadBundledModel(source.read, source.where, bundle);
    const [height, width, channels] = bundle.input.size;
    log.info(
      `model ${source.describe}: ${bundle.classes.length} classes, ${height}×${width}×${channels} ${bundle.input.channel_order} input; backend ${backend.name}`,
    );
    const n = inputs.ignored;
    if (n > 0) log.info(`${n} other file${n === 1 ? '' : 's'} in the folders and archives ignored (not .jpg, .jpeg or .png, or hidden)`);

    decoder = await poolDecoder({
      worker: DECODE_WORKER,
      threads: Math.min(2, availableParallelism()),
      shape: { height, width, channels: channels as 1 | 3 },
      resize: bundle.input.resize,
      maxPixels: req.maxPixels ?? DEFAULT_MAX_PIXELS,
    });
    const topK = Math.min(req.topK, bundle.classes.length);
    const text = formatter(req.format, topK);
    sink = await outputSink(req.out, stop);
    await sink.write(text.header);
    const progress = stageProgress('predict');
    progress.start('classify', items.length, 'img');
    const summary: PredictSummary = await predictImages({
      model,
      bundle,
      items,
      decoder,
      batchSize: req.batchSize,
      topK,
      signal: stop.signal,
      onRow: async (row) => {
        if ('error' in row) log.warn(`skipped ${row.file}: ${row.error}`);
        await sink!.write(text.line(row));
      },
      onProgress: (done) => progress.update(done),
    });
    await sink.commit();
    progress.done(`${summary.predicted} predicted${summary.skipped ? `, ${summary.skipped} skipped` : ''}`);
    if (summary.skipped > 0) {
      const what = items.length === images ? `${items.length} images` : `${items.length} inputs`;
      throw new ImagesSkippedError(
        `${summary.skipped} of ${what} could not be read and were skipped (listed above; their rows have an error)${req.out ? `; the predictions are in ${req.out}` : ''}`,
      );
    }
  } catch (err) {
    if (stop.signal.reason === OUTPUT_CLOSED) return; // the reader went away (`| head`): not an error
    await sink?.discard();
    throw translated(err, stop.signal);
  } finally {
    for (const s of signals) process.off(s, onSignal);
    await decoder?.close();
    await inputs?.dispose();
    model?.dispose();
  }
}
