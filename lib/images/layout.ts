// Finding a dataset inside a fetched directory and telling which layout it is.
//   cifar-binary  the official CIFAR-10 binary release: data_batch_<n>.bin, test_batch.bin and
//                 batches.meta.txt (usually in cifar-10-batches-bin/)
//   image-folder  train/<class>/<image> and test/<class>/<image>, JPEG or PNG
// The layout may sit in the tree's root or up to two levels below it (archives often wrap their
// contents in a folder). The tree is a directory or a pack (source-tree.ts).
import { join } from 'node:path';
import { DatasetError } from '../errors.js';
import type { SourceDirent, SourceTree } from './source-tree.js';

export type DatasetFormat = 'cifar-binary' | 'image-folder';
export const DATASET_FORMATS = ['cifar-binary', 'image-folder'] as const;

const SEARCH_DEPTH = 2;

function entries(tree: SourceTree, dir: string): SourceDirent[] {
  const list = tree.list(dir);
  if (!list) throw new DatasetError(`cannot read directory ${dir}: not a directory`);
  return list;
}

function matches(tree: SourceTree, dir: string, format: DatasetFormat): boolean {
  const names = new Set(entries(tree, dir).map((e) => e.name));
  if (format === 'cifar-binary') return names.has('test_batch.bin') || [...names].some((n) => /^data_batch_\d+\.bin$/.test(n));
  return names.has('train') && tree.kind(join(dir, 'train')) === 'dir';
}

/** The directory of `tree` holding the dataset, breadth-first from its root; format detected unless given. */
export function locateDataset(tree: SourceTree, format: DatasetFormat | 'auto'): { format: DatasetFormat; dir: string } {
  const root = tree.root;
  const wanted: DatasetFormat[] = format === 'auto' ? [...DATASET_FORMATS] : [format];
  let level = [root];
  for (let depth = 0; depth <= SEARCH_DEPTH && level.length > 0; depth++) {
    for (const dir of level) {
      for (const f of wanted) if (matches(tree, dir, f)) return { format: f, dir };
    }
    level = level.flatMap((dir) =>
      entries(tree, dir)
        .filter((e) => !e.name.startsWith('.') && e.kind === 'dir')
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
