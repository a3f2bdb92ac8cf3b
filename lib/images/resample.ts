// Resampling an image that arrives one source row at a time (separable, half-pixel centres, edge
// pixels clamped — as tf.image.resize with antialias=false):
//   bilinear  2 taps per axis; the default. Fine for up-scaling and mild down-scaling.
//   nearest   1 tap per axis.
//   area      box average over each output pixel's footprint (fractional coverage): use when
//             shrinking large images, where bilinear would alias.
// Rows are streamed so that memory does not grow with the source height: a 30000-row image costs
// one source row, one horizontally resampled row and the few output rows still accumulating. The
// sums are the ones a whole-image horizontal-then-vertical pass makes, in the same order, so the
// pixels are bit for bit those of that pass.

export type ResizeMethod = 'bilinear' | 'nearest' | 'area';
export const RESIZE_METHODS = ['bilinear', 'nearest', 'area'] as const;

/** For each output position, `taps` source indices and weights (weights sum to 1). */
interface AxisTaps {
  taps: number;
  index: Int32Array;
  weight: Float32Array;
}

function axisTaps(srcLen: number, dstLen: number, method: ResizeMethod): AxisTaps {
  const scale = srcLen / dstLen;
  const taps = method === 'nearest' ? 1 : method === 'bilinear' ? 2 : Math.ceil(scale) + 1;
  const index = new Int32Array(dstLen * taps);
  const weight = new Float32Array(dstLen * taps);
  for (let x = 0; x < dstLen; x++) {
    const t = x * taps;
    if (method === 'nearest') {
      index[t] = Math.min(Math.floor((x + 0.5) * scale), srcLen - 1);
      weight[t] = 1;
    } else if (method === 'bilinear') {
      const centre = Math.min(Math.max((x + 0.5) * scale - 0.5, 0), srcLen - 1);
      const i0 = Math.floor(centre);
      const f = centre - i0;
      index[t] = i0;
      index[t + 1] = Math.min(i0 + 1, srcLen - 1);
      weight[t] = 1 - f;
      weight[t + 1] = f;
    } else {
      const a = x * scale;
      const b = Math.min((x + 1) * scale, srcLen);
      let k = 0;
      for (let i = Math.floor(a); i < b && k < taps; i++, k++) {
        index[t + k] = i;
        weight[t + k] = (Math.min(b, i + 1) - Math.max(a, i)) / scale;
      }
    }
  }
  return { taps, index, weight };
}

/** First and last source index with a non-zero weight, per output position (both non-decreasing). */
function tapRange(axis: AxisTaps, dstLen: number): { first: Int32Array; last: Int32Array } {
  const first = new Int32Array(dstLen);
  const last = new Int32Array(dstLen);
  for (let y = 0; y < dstLen; y++) {
    let lo = -1;
    let hi = -1;
    for (let k = 0; k < axis.taps; k++) {
      if (axis.weight[y * axis.taps + k] === 0) continue;
      const i = axis.index[y * axis.taps + k]!;
      if (lo === -1) lo = i;
      hi = i;
    }
    first[y] = lo;
    last[y] = hi;
  }
  return { first, last };
}

/**
 * Takes the source rows top to bottom (`channels` interleaved samples each) and writes the
 * resampled image into dest[offset ...] as soon as each output row is complete.
 */
export class RowResampler {
  private readonly xs: AxisTaps;
  private readonly ys: AxisTaps;
  private readonly first: Int32Array;
  private readonly last: Int32Array;
  private readonly rowLen: number;
  private readonly horizontal: Float32Array;
  /** Output rows still accumulating, by output row; released rows go to `spare`. */
  private readonly open: (Float64Array | undefined)[];
  private readonly spare: Float64Array[] = [];
  private nextIn = 0;
  private nextOut = 0;

  constructor(
    srcWidth: number,
    private readonly srcHeight: number,
    private readonly channels: number,
    dstWidth: number,
    private readonly dstHeight: number,
    method: ResizeMethod,
    private readonly dest: Uint8Array,
    private readonly offset: number,
  ) {
    this.xs = axisTaps(srcWidth, dstWidth, method);
    this.ys = axisTaps(srcHeight, dstHeight, method);
    ({ first: this.first, last: this.last } = tapRange(this.ys, dstHeight));
    this.rowLen = dstWidth * channels;
    this.horizontal = new Float32Array(this.rowLen);
    this.open = new Array<Float64Array | undefined>(dstHeight);
  }

  push(row: Uint8Array): void {
    const r = this.nextIn++;
    if (r >= this.srcHeight) throw new Error(`RowResampler: more than ${this.srcHeight} rows`);
    this.resampleRow(row);
    const { taps, index, weight } = this.ys;
    const h = this.horizontal;
    for (let y = this.nextOut; y < this.dstHeight && this.first[y]! <= r; y++) {
      if (this.last[y]! < r) continue;
      let acc = this.open[y];
      if (!acc) {
        acc = this.spare.pop()?.fill(0) ?? new Float64Array(this.rowLen);
        this.open[y] = acc;
      }
      const t = y * taps;
      // Taps of one output row have non-decreasing indices, at most one step apart.
      for (let k = Math.max(0, r - index[t]!); k < taps; k++) {
        const w = weight[t + k]!;
        if (w === 0) continue;
        const i = index[t + k]!;
        if (i > r) break;
        if (i < r) continue;
        for (let s = 0; s < this.rowLen; s++) acc[s] += w * h[s]!;
      }
    }
    while (this.nextOut < this.dstHeight && this.last[this.nextOut]! <= r) this.emit(this.nextOut++);
  }

  /** Checks that every source row came (a decoder bug otherwise). */
  finish(): void {
    if (this.nextIn !== this.srcHeight || this.nextOut !== this.dstHeight) {
      throw new Error(`RowResampler: got ${this.nextIn} of ${this.srcHeight} rows`);
    }
  }

  /** Horizontal pass of one source row into `horizontal` (float32, as the whole-image pass stores it). */
  private resampleRow(row: Uint8Array): void {
    const { taps, index, weight } = this.xs;
    const c = this.channels;
    const dstWidth = this.rowLen / c;
    for (let x = 0; x < dstWidth; x++) {
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < taps; k++) {
          const w = weight[x * taps + k]!;
          if (w !== 0) acc += w * row[index[x * taps + k]! * c + ch]!;
        }
        this.horizontal[x * c + ch] = acc;
      }
    }
  }

  private emit(y: number): void {
    const acc = this.open[y]!;
    const out = this.offset + y * this.rowLen;
    for (let i = 0; i < this.rowLen; i++) this.dest[out + i] = Math.min(255, Math.max(0, Math.round(acc[i]!)));
    this.open[y] = undefined;
    this.spare.push(acc);
  }
}

/** Resamples a whole interleaved image of `channels` samples per pixel into dest at offset. */
export function resize(
  src: Uint8Array,
  srcWidth: number,
  srcHeight: number,
  channels: number,
  dstWidth: number,
  dstHeight: number,
  method: ResizeMethod,
  dest: Uint8Array,
  offset: number,
): void {
  const resampler = new RowResampler(srcWidth, srcHeight, channels, dstWidth, dstHeight, method, dest, offset);
  const stride = srcWidth * channels;
  for (let y = 0; y < srcHeight; y++) resampler.push(src.subarray(y * stride, (y + 1) * stride));
  resampler.finish();
}
