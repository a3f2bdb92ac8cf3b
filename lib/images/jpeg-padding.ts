// Re-handing a JPEG without the padding bytes an encoder left at the end of its entropy-coded
// data. Some encoders (jpeg-js among them) finish a scan with a whole byte of 1-bits (written as
// FF 00) after the last code. Native 64-bit libjpeg-turbo usually swallows such a byte in its
// bit-buffer lookahead, but the wasm32 build reads 32 bits at a time, leaves it unread and warns
// "N extraneous bytes before marker 0xd9" — and the TurboJPEG API turns every warning into a
// failure, although all pixels were decoded.
//
// Removing bytes the decoder never uses changes no pixel. Removing a byte it does need makes
// libjpeg run into the marker and warn ("hit marker"), so such a candidate is refused in turn:
// a candidate that decodes cleanly has exactly the original pixels.

const MARKER = 0xff;
const SOS = 0xda;
const EOI = 0xd9;
const SOI = 0xd8;

/** Most bytes a native bit buffer (64 bits) can hold beyond the last code it needed. */
const MAX_TRAILING_BYTES = 8;

/** One entropy-coded byte: its offset and length (2 for a stuffed FF 00). */
interface CodedByte {
  at: number;
  length: 1 | 2;
}

/** Where each scan's entropy-coded data ends, with its last coded bytes (newest last). */
interface ScanEnd {
  /** Offset of the marker that ends the scan. */
  marker: number;
  /** The scan's last coded bytes before that marker, at most MAX_TRAILING_BYTES. */
  tail: CodedByte[];
}

/** Scans of a JPEG from its marker structure, or null where the structure is not understood. */
function scanEnds(bytes: Uint8Array): ScanEnd[] | null {
  if (bytes.length < 4 || bytes[0] !== MARKER || bytes[1] !== SOI) return null;
  const ends: ScanEnd[] = [];
  let i = 2;
  while (i + 1 < bytes.length) {
    if (bytes[i] !== MARKER) return null;
    const code = bytes[i + 1]!;
    if (code === MARKER) {
      i++; // fill byte before a marker
      continue;
    }
    if (code === EOI) return ends;
    if (i + 3 >= bytes.length) return null;
    const length = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    i += 2 + length;
    if (code !== SOS) continue;
    // Entropy-coded data runs to the first marker that is neither a stuffed FF 00 nor RSTn.
    const tail: CodedByte[] = [];
    const push = (b: CodedByte) => {
      tail.push(b);
      if (tail.length > MAX_TRAILING_BYTES) tail.shift();
    };
    for (;;) {
      if (i + 1 >= bytes.length) return null;
      if (bytes[i] !== MARKER) {
        push({ at: i, length: 1 });
        i++;
        continue;
      }
      const next = bytes[i + 1]!;
      if (next === 0x00) {
        push({ at: i, length: 2 });
        i += 2;
      } else if (next >= 0xd0 && next <= 0xd7) {
        tail.length = 0; // a restart resets the bit buffer: only the last interval's tail counts
        i += 2;
      } else if (next === MARKER) {
        i++;
      } else {
        break;
      }
    }
    ends.push({ marker: i, tail });
  }
  return null;
}

/** `bytes` without the given coded bytes. */
function without(bytes: Uint8Array, drop: CodedByte[]): Uint8Array {
  const removed = drop.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(bytes.length - removed);
  let from = 0;
  let to = 0;
  for (const b of [...drop].sort((x, y) => x.at - y.at)) {
    out.set(bytes.subarray(from, b.at), to);
    to += b.at - from;
    from = b.at + b.length;
  }
  out.set(bytes.subarray(from), to);
  return out;
}

/**
 * Versions of `bytes` without trailing padding, most likely first: every scan without its
 * trailing all-ones bytes (FF 00), then the last scan without its last 1, 2, … coded bytes.
 * Empty when there is nothing to remove (e.g. a truncated file, which has no end marker).
 */
export function* withoutTrailingPadding(bytes: Uint8Array): Generator<Uint8Array> {
  const ends = scanEnds(bytes);
  if (!ends || ends.length === 0) return;
  const onesPadding = ends.flatMap(({ tail }) => {
    let n = 0;
    while (n < tail.length && tail[tail.length - 1 - n]!.length === 2) n++;
    return tail.slice(tail.length - n);
  });
  if (onesPadding.length > 0) yield without(bytes, onesPadding);
  const last = ends[ends.length - 1]!.tail;
  const onesInLast = onesPadding.filter((b) => last.includes(b)).length;
  for (let n = 1; n <= last.length; n++) {
    if (n === onesInLast && onesInLast === onesPadding.length) continue; // already tried above
    yield without(bytes, last.slice(last.length - n));
  }
}
