// Preview images like the notebook's `preview/` folder, and one contact sheet for the report:
// a grid with one row per preview image (original first, then its augmented variants).
import { writeFile } from 'node:fs/promises';

/** An HWC uint8 image (1, 3 or 4 channels). */
export interface Image {
  height: number;
  width: number;
  channels: number;
  data: Uint8Array;
}

/** Expands to RGBA, the layout pngjs encodes. */
function toRgba(img: Image): Buffer {
  const { height, width, channels, data } = img;
  const out = Buffer.alloc(height * width * 4);
  for (let p = 0; p < height * width; p++) {
    const s = p * channels;
    const d = p * 4;
    if (channels >= 3) {
      out[d] = data[s]!;
      out[d + 1] = data[s + 1]!;
      out[d + 2] = data[s + 2]!;
      out[d + 3] = channels === 4 ? data[s + 3]! : 255;
    } else {
      out[d] = out[d + 1] = out[d + 2] = data[s]!;
      out[d + 3] = channels === 2 ? data[s + 1]! : 255;
    }
  }
  return out;
}

export async function encodePng(img: Image): Promise<Buffer> {
  // Loaded on first use: this module is reachable from every command's kind registry.
  const { PNG } = await import('pngjs');
  const png = new PNG({ width: img.width, height: img.height });
  toRgba(img).copy(png.data);
  return PNG.sync.write(png);
}

export async function writePng(path: string, img: Image): Promise<void> {
  await writeFile(path, await encodePng(img));
}

export interface ContactSheetLayout {
  /** Integer upscale of each cell (nearest neighbour): small CIFAR images stay visible. */
  scale: number;
  /** Pixels between cells and around the grid. */
  gap: number;
}

/** Default layout: cells of about 96 px, 4 px gaps. */
export function defaultLayout(height: number, width: number): ContactSheetLayout {
  return { scale: Math.max(1, Math.floor(96 / Math.max(height, width))), gap: 4 };
}

/** Lays `rows` of equally sized images on a grey background; returns an RGB image. */
export function contactSheet(rows: Image[][], layout: ContactSheetLayout): Image {
  const first = rows[0]?.[0];
  if (!first) throw new Error('contact sheet: no images');
  const { scale, gap } = layout;
  const cellH = first.height * scale;
  const cellW = first.width * scale;
  const cols = Math.max(...rows.map((r) => r.length));
  const height = gap + rows.length * (cellH + gap);
  const width = gap + cols * (cellW + gap);
  const data = new Uint8Array(height * width * 3).fill(64);
  rows.forEach((row, r) => {
    row.forEach((img, c) => {
      const rgba = toRgba(img);
      const top = gap + r * (cellH + gap);
      const left = gap + c * (cellW + gap);
      for (let y = 0; y < cellH; y++) {
        const sy = Math.floor(y / scale);
        for (let x = 0; x < cellW; x++) {
          const s = (sy * img.width + Math.floor(x / scale)) * 4;
          const d = ((top + y) * width + left + x) * 3;
          data[d] = rgba[s]!;
          data[d + 1] = rgba[s + 1]!;
          data[d + 2] = rgba[s + 2]!;
        }
      }
    });
  });
  return { height, width, channels: 3, data };
}
