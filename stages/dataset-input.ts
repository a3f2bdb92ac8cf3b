// The dataset an upstream stage (decode, or normalize carrying it) put in its `dataset/` output (or
// augment in `copies/`), opened for reading with the errors a user can act on: the kinds that read
// rows share it.
import type { UpstreamArtifacts } from '../engine/contract.js';
import { StageError } from '../engine/errors.js';
import { DatasetError } from '../lib/errors.js';
import { DATASET_DIR } from '../lib/dataset/format.js';
import { DatasetReader } from '../lib/dataset/reader.js';

export async function openUpstreamDataset(upstream: UpstreamArtifacts, name = DATASET_DIR): Promise<DatasetReader> {
  if (!upstream.has(name)) {
    throw new StageError(`${upstream.stage} has no ${name}/ output (a ${upstream.kind} result from before datasets were sharded? run it again)`);
  }
  try {
    return await DatasetReader.open(upstream.path(name));
  } catch (err) {
    if (err instanceof DatasetError) throw new StageError(`${upstream.stage}/${name}: ${err.message}`, { cause: err });
    throw err;
  }
}
