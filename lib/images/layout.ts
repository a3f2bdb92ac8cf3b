// Finding a dataset inside a fetched directory and telling which layout it is.
//   cifar-binary  the official CIFAR-10 binary release: data_batch_<n>.bin, test_batch.bin and
//                 batches.meta.txt (usually in cifar-10-batches-bin/)
//   image-folder  train/<class>/<image> and test/<class>/<image>, JPEG or PNG
// The layout may sit in the given directory or up to two levels below it (archives often wrap
// their contents in a folder).
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { DatasetError } from '../errors.js';

export type DatasetFormat = 'cifar-binary' | 'image-folder';
export const DATASET_FORMATS = ['cifar-binary', 'image-folder'] as const;

const SEARCH_DEPTH = 2;

function entries(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw new DatasetError(`cannot read directory ${dir}: ${(err as Error).message}`);
  }
}

function isDir(dir: string, entry: Dirent): boolean {
  if (entry.isDirectory()) return true;
  return entry.isSymbolicLink() && statSync(join(dir, entry.name), { throwIfNoEntry: false })?.isDirectory() === true;
}

function matches(dir: string, format: DatasetFormat): boolean {
  const names = new Set(entries(dir).map((e) => e.name));
  if (format === 'cifar-binary') return names.has('test_batch.bin') || [...names].some((n) => /^data_batch_\d+\.bin$/.test(n));
  return names.has('train') && statSync(join(dir, 'train')).isDirectory();
}

/** The directory holding the dataset, breadth-first from `root`; format detected unless given. */
export function locateDataset(root: string, format: DatasetFormat | 'auto'): { format: DatasetFormat; dir: string } {
  const wanted: DatasetFormat[] = format === 'auto' ? [...DATASET_FORMATS] : [format];
  let level = [root];
  for (let depth = 0; depth <= SEARCH_DEPTH && level.length > 0; depth++) {
    for (const dir of level) {
      for (const f of wanted) if (matches(dir, f)) return { format: f, dir };
    }
    level = level.flatMap((dir) =>
      entries(dir)
        .filter((e) => !e.name.startsWith('.') && isDir(dir, e))
        .map((e) => e.name)
        .sort()
        .map((name) => join(dir, name)),
    );
  }
  const binary = 'CIFAR-10 binary batches (data_batch_<n>.bin, test_batch.bin)';
  const folders = 'image folders (train/<class>/, test/<class>/)';
  const where = `in ${root} or ${SEARCH_DEPTH} levels below`;
  if (format === 'auto') throw new DatasetError(`unknown dataset layout ${where}: found neither ${binary} nor ${folders}`);
  throw new DatasetError(`no ${format === 'cifar-binary' ? binary : folders} found ${where}`);
}
