// Listing the files of an output (a file or a directory tree) in a stable order, and small fs helpers.
import { lstat, readdir, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { lstatSync, type BigIntStats } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DiskFullError, UnsupportedEntryError } from '../errors.js';

export interface TreeFile {
  /** Path relative to the walk's base, with `/` separators. */
  rel: string;
  abs: string;
  /** Its lstat (a regular file, so its stat too), in nanoseconds: the stat cache checks it without a second stat. */
  stat: BigIntStats;
}

export interface Tree {
  /** Sorted by path. */
  files: TreeFile[];
  /** Directories at and below the entry (relative paths), sorted; empty for a file entry. */
  dirs: string[];
}

/**
 * The tree at `base/rel`: the entry itself when it is a file, else every file and directory below
 * it. Undefined when the entry does not exist. Symlinks are refused: the store keeps content, and a
 * link could point anywhere.
 */
export async function listTree(base: string, rel: string): Promise<Tree | undefined> {
  const abs = rel === '' ? base : join(base, rel);
  let st: BigIntStats;
  try {
    st = await lstat(abs, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const tree: Tree = { files: [], dirs: [] };
  await walk(abs, rel, st, tree);
  tree.files.sort((a, b) => byPath(a.rel, b.rel));
  tree.dirs.sort(byPath);
  return tree;
}

/** Files of `listTree` only. */
export async function listFiles(base: string, rel: string): Promise<TreeFile[] | undefined> {
  return (await listTree(base, rel))?.files;
}

function byPath(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function walk(abs: string, rel: string, st: BigIntStats, tree: Tree): Promise<void> {
  if (st.isFile()) {
    tree.files.push({ rel, abs, stat: st });
    return;
  }
  if (!st.isDirectory())
    throw new UnsupportedEntryError(`${abs} is a ${st.isSymbolicLink() ? 'symbolic link' : 'special file'}; outputs must be regular files and directories`);
  if (rel !== '') tree.dirs.push(rel);
  const names = await readdir(abs);
  // One directory's entries are lstat-ed synchronously (the event loop waits for one directory at
  // a time, not for a whole tree): a promise per file cost a 70,000-file folder seconds of promise
  // and garbage-collector work on every run, for a call that takes microseconds.
  const children = names.map((name) => {
    const childAbs = join(abs, name);
    return { childAbs, childRel: rel === '' ? name : `${rel}/${name}`, st: lstatSync(childAbs, { bigint: true }) };
  });
  for (const c of children) await walk(c.childAbs, c.childRel, c.st, tree);
}

/** Whether `path` is `prefix` itself or lies below it (both relative, `/`-separated). */
export function isWithin(path: string, prefix: string): boolean {
  const p = trimSlash(path);
  const q = trimSlash(prefix);
  return p === q || p.startsWith(q + '/');
}

export function trimSlash(p: string): string {
  let s = p.split(sep).join('/');
  while (s.startsWith('./')) s = s.slice(2);
  while (s.endsWith('/') && s.length > 1) s = s.slice(0, -1);
  return s;
}

export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** Writes a file atomically: a temp file beside it, then rename. A full disk is a DiskFullError naming `path`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomSuffix()}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw isDiskFull(err) ? diskFullWriting(path, err) : err;
  }
}

/** Whether `err` says the disk (or the user's quota) is full. */
export function isDiskFull(err: unknown): boolean {
  return isErrno(err, 'ENOSPC', 'EDQUOT');
}

/** The DiskFullError for a failed write of `path` (`err` is the system's error, or one already worded). */
export function diskFullWriting(path: string, err: unknown): DiskFullError {
  if (err instanceof DiskFullError) return err;
  return new DiskFullError(`no space left on device writing ${path}: the disk holding it is full`, { cause: err, code: errnoCode(err) });
}

function errnoCode(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** Whether `err` is a system error with one of these codes (no instanceof: errors may come from another realm). */
export function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && codes.includes(code);
}

export function isSyntaxError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'SyntaxError';
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  const m = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  return typeof m === 'string' ? m : String(err);
}
