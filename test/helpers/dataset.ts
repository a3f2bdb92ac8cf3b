// Where tests get CIFAR-10: the real JPEG archive from ../shared (or $CIFAR10_JPEG_ARCHIVE), else a
// small generated archive with the same layout (a user's clone has no ../shared) — and we say so.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import { encodeJpeg } from './jpeg-encode.js';

export const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

const PROJECT_ROOT = resolve(new URL('../../..', import.meta.url).pathname);

export interface CifarSource {
  /** Path of a .tar.gz with `train/<class>/*.jpg` and `test/<class>/*.jpg`. */
  archive: string;
  /** True when this is the real CIFAR-10; false for generated stand-in data. */
  real: boolean;
}

let warned = false;

/** The real archive if present, else null. */
export function realCifarArchive(): string | null {
  const path = process.env.CIFAR10_JPEG_ARCHIVE ?? join(PROJECT_ROOT, '..', 'shared', 'datasets', 'cifar10-jpeg.tar.gz');
  return existsSync(path) ? path : null;
}

/**
 * The real archive, or a generated one (`perClassTrain`/`perClassTest` images per class of
 * class-dependent colour blobs, learnable but not trivial) when the real one is absent.
 */
export async function cifarSource(fallback = { perClassTrain: 60, perClassTest: 20 }): Promise<CifarSource> {
  const real = realCifarArchive();
  if (real) return { archive: real, real: true };
  if (!warned) {
    warned = true;
    console.warn('CIFAR-10 archive not found (set CIFAR10_JPEG_ARCHIVE): using small generated data instead');
  }
  // Generated once per size and kept in test-artifacts/ (ignored by git), not left in $TMPDIR by every suite.
  const archive = join(GENERATED_DIR, `cifar10-generated-v${GENERATOR_VERSION}-${fallback.perClassTrain}x${fallback.perClassTest}.tar.gz`);
  if (existsSync(archive)) return { archive, real: false };
  await mkdir(GENERATED_DIR, { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), 'cifar-gen-'));
  try {
    await writeSyntheticJpegTree(join(dir, 'tree'), fallback.perClassTrain, fallback.perClassTest);
    await tar.create({ gzip: true, file: join(dir, 'archive.tar.gz'), cwd: join(dir, 'tree') }, ['train', 'test']);
    // Suites running side by side may make the same one: each renames a whole archive into place.
    await copyFile(join(dir, 'archive.tar.gz'), `${archive}.${process.pid}`);
    await rename(`${archive}.${process.pid}`, archive);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { archive, real: false };
}

const GENERATED_DIR = join(PROJECT_ROOT, 'test-artifacts', 'generated-cifar');
/** Bump when syntheticImage or the JPEG encoding changes: archives made before are not reused. */
const GENERATOR_VERSION = 1;

/** Deterministic 32×32 RGB image for (class, index): a class-coloured disc on a noisy background. */
export function syntheticImage(cls: number, index: number, size = 32): Uint8Array {
  const rgba = new Uint8Array(size * size * 4);
  let s = (cls * 7919 + index * 104729 + 1) >>> 0;
  const rand = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const hue = [
    [230, 40, 40],
    [40, 230, 40],
    [40, 40, 230],
    [230, 230, 40],
    [230, 40, 230],
    [40, 230, 230],
    [140, 90, 30],
    [250, 250, 250],
    [90, 30, 140],
    [30, 140, 90],
  ][cls]!;
  const cx = 8 + rand() * 16;
  const cy = 8 + rand() * 16;
  const r = 5 + rand() * 6;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r;
      const o = (y * size + x) * 4;
      for (let c = 0; c < 3; c++) rgba[o + c] = inside ? hue[c]! : Math.floor(rand() * 120);
      rgba[o + 3] = 255;
    }
  }
  return rgba;
}

export async function writeSyntheticJpegTree(root: string, perClassTrain: number, perClassTest: number): Promise<void> {
  for (const [split, count] of [
    ['train', perClassTrain],
    ['test', perClassTest],
  ] as const) {
    for (let c = 0; c < CLASSES.length; c++) {
      const dir = join(root, split, CLASSES[c]!);
      await mkdir(dir, { recursive: true });
      for (let i = 0; i < count; i++) {
        const encoded = encodeJpeg(syntheticImage(c, i + (split === 'test' ? 100000 : 0)), 32, 32, 95);
        await writeFile(join(dir, `${String(i).padStart(4, '0')}.jpg`), encoded);
      }
    }
  }
}

/**
 * Extracts the first `perClassTrain` / `perClassTest` images of each class from a CIFAR JPEG
 * archive into `dest` (same layout). Small real subsets keep e2e tests fast.
 */
export async function extractSubset(archive: string, dest: string, perClassTrain: number, perClassTest: number): Promise<void> {
  await mkdir(dest, { recursive: true });
  const limit = (path: string): boolean => {
    const m = /^(?:\.\/)?(train|test)\/[^/]+\/(\d+)\.(jpg|jpeg|png)$/i.exec(path);
    if (!m) return /^(?:\.\/)?(train|test)(\/[^/]+)?\/?$/.test(path);
    return Number(m[2]) < (m[1] === 'train' ? perClassTrain : perClassTest);
  };
  await tar.extract({ file: archive, cwd: dest, filter: limit });
  // Generated and real archives may number files differently; ensure each class got images.
  for (const split of ['train', 'test']) {
    for (const cls of await readdir(join(dest, split))) {
      if ((await readdir(join(dest, split, cls))).length === 0) throw new Error(`subset: no images for ${split}/${cls}`);
    }
  }
}
