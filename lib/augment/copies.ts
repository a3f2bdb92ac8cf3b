// The augment → train file-name contract: augment writes one uint8 image tensor per copy under
// these names, and train reads copy e in epoch e (cycled).

/** `copy_000.npy`, `copy_001.npy`, ... */
export function copyName(copy: number): string {
  return `copy_${String(copy).padStart(3, '0')}.npy`;
}
