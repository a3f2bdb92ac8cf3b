// uint8 pixels → model inputs through the per-channel pixel table (lib/model/data.ts pixelTable),
// the loader's inner loop. A wasm lookup (wasm/kernels.ts mapPixels) on a small memory of its
// own: about 10× the JavaScript loop at 224×224×3, and the same bits, as both are lookups into
// the same table. Rows are read straight into that memory (`pixels`), mapped, then copied out.
import { pixelMapperOn } from '../tf/kernels/simd-module.js';

const PAGE = 65536;
const align = (n: number): number => (n + 15) & ~15;

export class PixelMapper {
  /** Where a row's pixels go before `mapInto` (a view of the wasm memory, which never grows). */
  readonly pixels: Uint8Array;
  private readonly inputs: Float32Array;
  private readonly channels: number;
  private readonly run: ReturnType<typeof pixelMapperOn>;
  private readonly pixelsAt: number;
  private readonly inputsAt: number;

  /** For rows of `rowBytes` pixels, `table.length / 256` channels interleaved. */
  constructor(table: Float32Array, rowBytes: number) {
    this.channels = table.length / 256;
    if (!Number.isInteger(this.channels) || this.channels < 1 || rowBytes % this.channels !== 0) {
      throw new Error(`pixel table of ${table.length} entries for rows of ${rowBytes} bytes`);
    }
    this.pixelsAt = align(table.byteLength);
    this.inputsAt = align(this.pixelsAt + rowBytes);
    const memory = new WebAssembly.Memory({ initial: Math.ceil((this.inputsAt + rowBytes * 4) / PAGE) });
    this.run = pixelMapperOn(memory);
    new Float32Array(memory.buffer, 0, table.length).set(table);
    this.pixels = new Uint8Array(memory.buffer, this.pixelsAt, rowBytes);
    this.inputs = new Float32Array(memory.buffer, this.inputsAt, rowBytes);
  }

  /** Maps `pixels` (the whole row) into out[at … at + rowBytes). */
  mapInto(out: Float32Array, at: number): void {
    this.run(this.pixelsAt, 0, this.inputsAt, this.pixels.length, this.channels);
    out.set(this.inputs, at);
  }
}
