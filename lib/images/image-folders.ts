// The image-folder layout: train/<class>/* and test/<class>/*, class names = sorted folder names.
// Row order is fixed and documented: class (sorted), then file name (sorted), both by code unit
// so the order does not depend on the locale.
import { join } from 'node:path';
import { DatasetError } from '../errors.js';
import type { SourceTree } from './source-tree.js';

export const SPLITS = ['train', 'test'] as const;
export type Split = (typeof SPLITS)[number];

const IMAGE_EXTENSION = /\.(jpe?g|png)$/i;

export interface SplitFiles {
  /** Paths in the source tree (`<dir>/<split>/<class>/<name>`), in row order. */
  files: string[];
  /** Class index of each file. */
  labels: Int32Array;
}

export interface ImageFolderDataset {
  classes: string[];
  splits: Record<Split, SplitFiles>;
  /** Non-image files found in class folders (hidden files aside), relative to the dataset dir. */
  ignored: string[];
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function classFolders(tree: SourceTree, splitDir: string, split: Split): string[] {
  const list = tree.list(splitDir);
  if (!list) throw new DatasetError(`image folders: missing ${split}/ folder in ${join(splitDir, '..')}`);
  const classes = list
    .filter((e) => !e.name.startsWith('.') && e.kind === 'dir')
    .map((e) => e.name)
    .sort(byCodeUnit);
  if (classes.length === 0) throw new DatasetError(`image folders: ${splitDir} has no class folders`);
  return classes;
}

/** The image folders under `dir`, a directory of `tree`. */
export function scanImageFolders(tree: SourceTree, dir: string): ImageFolderDataset {
  const classes = classFolders(tree, join(dir, 'train'), 'train');
  const testClasses = classFolders(tree, join(dir, 'test'), 'test');
  if (testClasses.join('\n') !== classes.join('\n')) {
    const missing = classes.filter((c) => !testClasses.includes(c)).map((c) => `test/${c}`);
    const extra = testClasses.filter((c) => !classes.includes(c)).map((c) => `train/${c}`);
    throw new DatasetError(`image folders: train/ and test/ have different classes (missing: ${[...missing, ...extra].join(', ')}) in ${dir}`);
  }
  const ignored: string[] = [];
  const scanSplit = (split: Split): SplitFiles => {
    const files: string[] = [];
    const labels: number[] = [];
    classes.forEach((cls, label) => {
      const classDir = join(dir, split, cls);
      const names: string[] = [];
      for (const e of tree.list(classDir) ?? []) {
        if (e.name.startsWith('.') || e.kind !== 'file') continue;
        if (IMAGE_EXTENSION.test(e.name)) names.push(e.name);
        else ignored.push(`${split}/${cls}/${e.name}`);
      }
      if (names.length === 0) throw new DatasetError(`image folders: empty class folder ${classDir} (no .jpg, .jpeg or .png files)`);
      for (const name of names.sort(byCodeUnit)) {
        files.push(`${classDir}/${name}`); // a name has no separator: no join (60,000 of them)
        labels.push(label);
      }
    });
    return { files, labels: Int32Array.from(labels) };
  };
  return { classes, splits: { train: scanSplit('train'), test: scanSplit('test') }, ignored };
}
