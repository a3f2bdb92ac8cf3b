// Counter-based random numbers: every draw is a pure function of (seed, copy, image, draw index),
// so an image's augmentation does not depend on which thread or chunk computes it, or in which
// order. (A sequential generator such as numpy's would tie outputs to the processing order.)

/** murmur3's 32-bit finaliser: a bijection on uint32 with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32 random bits for one (seed, copy, image, word) key. All arguments are uint32. */
export function randomBits(seed: number, copy: number, image: number, word: number): number {
  // Each key word enters a separate bijective mixing round with its own odd constant, so keys
  // differing in any word give unrelated outputs.
  let h = fmix32((seed ^ 0x9e3779b9) >>> 0);
  h = fmix32((h ^ Math.imul(copy ^ 0x27d4eb2f, 0x165667b1)) >>> 0);
  h = fmix32((h ^ Math.imul(image ^ 0x61c88647, 0x27d4eb2d)) >>> 0);
  h = fmix32((h ^ Math.imul(word ^ 0x7f4a7c15, 0x85ebca77)) >>> 0);
  return h;
}

/** Uniform double in [0, 1) with 53 random bits, like numpy's `random_sample`. Uses words 2k, 2k+1. */
export function uniform01(seed: number, copy: number, image: number, draw: number): number {
  const hi = randomBits(seed, copy, image, 2 * draw) >>> 5; // 27 bits
  const lo = randomBits(seed, copy, image, 2 * draw + 1) >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

/** Uniform in [low, high), computed as numpy's `uniform` does: low + (high - low) * u. */
export function uniform(seed: number, copy: number, image: number, draw: number, low: number, high: number): number {
  return low + (high - low) * uniform01(seed, copy, image, draw);
}
