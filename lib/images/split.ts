// Seeded, stratified train/validation split. Sources such as the CIFAR JPEG folders are sorted by
// class, so "the last 20%" (Keras' validation_split) would put whole classes into validation:
// instead each class contributes round(n_c · fraction) randomly chosen rows.

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same sequence everywhere. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Fisher–Yates shuffle in place. */
export function shuffle(values: Int32Array, random: () => number): Int32Array {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = values[i]!;
    values[i] = values[j]!;
    values[j] = t;
  }
  return values;
}

export interface Split {
  /** Row indices of the training part, in a seeded random order. */
  train: Int32Array;
  /** Row indices of the validation part, in a seeded random order. */
  validation: Int32Array;
  /** Validation rows per class. */
  validationPerClass: number[];
}

export function stratifiedSplit(labels: Int32Array, numClasses: number, fraction: number, seed: number): Split {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`validation fraction must be in [0, 1), got ${fraction}`);
  const random = seededRandom(seed);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((label, row) => byClass[label]!.push(row));
  const train: number[] = [];
  const validation: number[] = [];
  const validationPerClass = byClass.map((rows) => {
    const shuffled = shuffle(Int32Array.from(rows), random);
    const take = Math.round(rows.length * fraction);
    for (let i = 0; i < shuffled.length; i++) (i < take ? validation : train).push(shuffled[i]!);
    return take;
  });
  // Interleave the classes: consumers that read rows in order must not see one class at a time.
  return {
    train: shuffle(Int32Array.from(train), random),
    validation: shuffle(Int32Array.from(validation), random),
    validationPerClass,
  };
}
