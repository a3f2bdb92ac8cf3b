// The in-memory image every decoder returns and every converter takes: interleaved 8-bit samples.

export type Channels = 1 | 2 | 3 | 4;

export interface RawImage {
  width: number;
  height: number;
  /** 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; samples interleaved, rows top to bottom. */
  channels: Channels;
  /** width × height × channels bytes. */
  data: Uint8Array;
}

/** The configured output shape of decoded images. */
export interface TargetShape {
  height: number;
  width: number;
  /** 3: RGB (gray expanded); 1: gray (colour reduced to luma). Alpha is always dropped. */
  channels: 1 | 3;
}

export function imageBytes(shape: TargetShape): number {
  return shape.height * shape.width * shape.channels;
}
