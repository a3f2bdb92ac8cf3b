// The augment → train contract: augment writes its copies as one sharded uint8 dataset (lib/dataset,
// docs/datasets.md) in `copies/`, copy after copy: row copy·Ntr + i is training row i of copy `copy`
// (training row i is dataset row train_index[i] of the dataset augmented, recorded in
// `source_index.npy`). Train reads copy e in epoch e (cycled).

/** augment's dataset output. */
export const COPIES_DIR = 'copies';
/** int32 [Ntr]: the dataset row each training row was augmented from (normalize's train_index.npy). */
export const SOURCE_INDEX = 'source_index.npy';

/** Row of the copies dataset holding training row `row` of copy `copy` (`rows` training rows per copy). */
export function copyRow(copy: number, row: number, rows: number): number {
  return copy * rows + row;
}

/** `copy_000.npy`…: the one-file-per-copy layout of augment results before copies were sharded (named in errors only). */
export function legacyCopyName(copy: number): string {
  return `copy_${String(copy).padStart(3, '0')}.npy`;
}
