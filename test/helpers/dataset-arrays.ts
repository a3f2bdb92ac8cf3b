// A sharded dataset (lib/dataset) read whole into one array per split, for tests that compare
// pixels and labels (as decode's outputs were before datasets were sharded).
import { DatasetReader } from '../../lib/dataset/reader.js';
import { splitRange, type DatasetSplit } from '../../lib/dataset/format.js';
import type { NdArray } from '../../lib/npy.js';

export interface SplitArrays {
  images: NdArray<'uint8'>;
  labels: NdArray<'int32'>;
  sources: string[];
}

export async function readDatasetSplits(dir: string): Promise<Record<DatasetSplit, SplitArrays> & { classes: string[] }> {
  const reader = await DatasetReader.open(dir);
  try {
    const split = (name: DatasetSplit): SplitArrays => {
      const [start, end] = splitRange(reader.manifest, name);
      const rows = Array.from({ length: end - start }, (_, i) => start + i);
      return {
        images: { dtype: 'uint8', shape: [rows.length, ...reader.manifest.shape], data: reader.readRows(rows) },
        labels: { dtype: 'int32', shape: [rows.length], data: reader.rows.label.slice(start, end) },
        sources: reader.rows.source.slice(start, end),
      };
    };
    return { train: split('train'), test: split('test'), classes: reader.manifest.classes };
  } finally {
    reader.close();
  }
}
