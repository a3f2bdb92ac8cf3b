// A small decoded CIFAR-10 subset for training tests: extracted from the real archive (or the
// generated stand-in, see dataset.ts) into a temp dir and decoded with jpeg-js.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { cifarSource, extractSubset } from './dataset.js';
import type { ImageSet } from './fake-normalize.js';

async function decodeSplit(root: string, classes: string[]): Promise<ImageSet> {
  const pixels: number[] = [];
  const labels: number[] = [];
  for (const [c, cls] of classes.entries()) {
    for (const file of (await readdir(join(root, cls))).sort()) {
      const img = jpeg.decode(await readFile(join(root, cls, file)), { useTArray: true, formatAsRGBA: true });
      if (img.width !== 32 || img.height !== 32) throw new Error(`${file}: expected 32×32, got ${img.width}×${img.height}`);
      for (let i = 0; i < 32 * 32; i++) pixels.push(img.data[i * 4]!, img.data[i * 4 + 1]!, img.data[i * 4 + 2]!);
      labels.push(c);
    }
  }
  return { pixels: Uint8Array.from(pixels), labels: Int32Array.from(labels), shape: [32, 32, 3] };
}

export async function loadRealCifar(
  perClassTrain: number,
  perClassTest: number,
): Promise<{ train: ImageSet; test: ImageSet; classes: string[]; real: boolean }> {
  // Generated stand-in data (no real archive) of the same size, so the tests see as many images.
  const source = await cifarSource({ perClassTrain, perClassTest });
  const dir = await mkdtemp(join(tmpdir(), 'cifar-subset-'));
  try {
    await extractSubset(source.archive, dir, perClassTrain, perClassTest);
    const classes = (await readdir(join(dir, 'train'))).sort();
    return {
      train: await decodeSplit(join(dir, 'train'), classes),
      test: await decodeSplit(join(dir, 'test'), classes),
      classes,
      real: source.real,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
