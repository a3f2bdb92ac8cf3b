// The dataset an upstream stage (decode, or normalize carrying it) put in its `dataset/` output,
// opened for reading with the errors a user can act on: the kinds that read rows share it.
import type { UpstreamArtifacts } from '../engine/contract.js';
import { StageError } from '../engine/errors.js';
import { DatasetError } from '../lib/errors.js';
import { DATASET_DIR } from '../lib/dataset/format.js';
import { DatasetReader } from '../lib/dataset/reader.js';

export async function openUpstreamDataset(upstream: UpstreamArtifacts): Promise<DatasetReader> {
  if (!upstream.has(DATASET_DIR)) {
    throw new StageError(`${upstream.stage} has no ${DATASET_DIR}/ output (a ${upstream.kind} result from before datasets were sharded? run it again)`);
  }
  try {
    return await DatasetReader.open(upstream.path(DATASET_DIR));
  } catch (err) {
    if (err instanceof DatasetError) throw new StageError(`${upstream.stage}/${DATASET_DIR}: ${err.message}`, { cause: err });
    throw err;
  }
}
