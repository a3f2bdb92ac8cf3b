// Number formatting shared by the report's HTML, Markdown and chart labels.

/** `x` with `digits` decimals, or an em dash when it is missing or not finite. */
export function fixed(x: number | undefined, digits: number): string {
  return x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

/** A change with its sign: `+0.012`, `-0.034`, `+0.000`. */
export function signed(x: number, digits = 3): string {
  const s = x.toFixed(digits);
  return x > 0 || (x === 0 && !s.startsWith('-')) ? `+${s}` : s;
}
