// Builds a small CIFAR-10 binary release in the official layout (cifar-10-batches-bin/ with
// data_batch_1.bin … data_batch_<n>.bin, test_batch.bin, batches.meta.txt), from HWC pixels the
// test chooses. Written independently of lib/images/cifar-binary.ts so the parser is checked
// against the format, not against itself.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';

const SIDE = 32;
const PLANE = SIDE * SIDE;
export const RECORD_BYTES = 1 + 3 * PLANE;

export interface CifarRecords {
  /** N × 32 × 32 × 3 bytes, interleaved RGB (HWC), as decode outputs them. */
  images: Uint8Array;
  labels: ArrayLike<number>;
}

export interface CifarBinaryData {
  classes: string[];
  train: CifarRecords;
  test: CifarRecords;
}

/** Records in the official order: label byte, red plane, green plane, blue plane. */
export function encodeRecords(records: CifarRecords, start = 0, end = records.labels.length): Buffer {
  const out = Buffer.alloc((end - start) * RECORD_BYTES);
  for (let r = start; r < end; r++) {
    const rec = (r - start) * RECORD_BYTES;
    out[rec] = records.labels[r]!;
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const src = ((r * SIDE + y) * SIDE + x) * 3;
        for (let c = 0; c < 3; c++) out[rec + 1 + c * PLANE + y * SIDE + x] = records.images[src + c]!;
      }
    }
  }
  return out;
}

/**
 * Writes `<root>/<folder>/` (default folder `cifar-10-batches-bin`) with the training records
 * spread over `batches` data_batch files; returns the batches directory.
 */
export async function writeCifarBinaryTree(root: string, data: CifarBinaryData, options: { batches?: number; folder?: string } = {}): Promise<string> {
  const dir = join(root, options.folder ?? 'cifar-10-batches-bin');
  await mkdir(dir, { recursive: true });
  const batches = options.batches ?? 5;
  const n = data.train.labels.length;
  for (let b = 0; b < batches; b++) {
    const start = Math.floor((b * n) / batches);
    const end = Math.floor(((b + 1) * n) / batches);
    await writeFile(join(dir, `data_batch_${b + 1}.bin`), encodeRecords(data.train, start, end));
  }
  await writeFile(join(dir, 'test_batch.bin'), encodeRecords(data.test));
  // The official file ends with blank lines; parsers must ignore them.
  await writeFile(join(dir, 'batches.meta.txt'), data.classes.join('\n') + '\n\n');
  return dir;
}

/** The same tree packed as a .tar.gz (what fetch downloads), written to `file`. */
export async function writeCifarBinaryArchive(file: string, data: CifarBinaryData, options: { batches?: number } = {}): Promise<void> {
  const staging = await mkdtemp(join(tmpdir(), 'cifar-bin-'));
  try {
    await writeCifarBinaryTree(staging, data, options);
    await tar.create({ gzip: true, file, cwd: staging }, ['cifar-10-batches-bin']);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
