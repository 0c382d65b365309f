// fast-check generators shared by the kernel conformance suites: lengths that stress SIMD bodies
// and scalar tails (0, 1, odd, not multiples of 4/8/16), and value patterns that stress numerics
// (zeros, constant rows, a single huge outlier).

import fc from 'fast-check';

/** Dimensions: the edge cases explicitly, plus anything up to `max`. */
export function dim(max = 40): fc.Arbitrary<number> {
  return fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33).filter((d) => d <= max), fc.integer({ min: 0, max }));
}

/** Like `dim` but at least 1. */
export function dim1(max = 40): fc.Arbitrary<number> {
  return dim(max).map((d) => Math.max(1, d));
}

export type Pattern = 'random' | 'zeros' | 'constant' | 'outlier' | 'constantRows';

export const pattern: fc.Arbitrary<Pattern> = fc.constantFrom('random', 'random', 'zeros', 'constant', 'outlier', 'constantRows');

/** n floats in [-scale, scale] with the given pattern; `cols` shapes 'constantRows'. */
export function floats(n: number, pat: Pattern, seed: number, scale = 10, cols = n): Float32Array {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
  const c = (next() * 2 - 1) * scale;
  for (let i = 0; i < n; i++) {
    if (pat === 'zeros') a[i] = 0;
    else if (pat === 'constant') a[i] = c;
    else if (pat === 'constantRows') a[i] = ((Math.floor(i / Math.max(cols, 1)) % 7) - 3) * scale / 3;
    else a[i] = (next() * 2 - 1) * scale;
  }
  if (pat === 'outlier' && n > 0) a[Math.floor(next() * n)] = (next() < 0.5 ? -1 : 1) * scale * 1e5;
  return a;
}

/** An arbitrary float array of length n. */
export function floatArray(n: number, scale = 10): fc.Arbitrary<Float32Array> {
  return fc.tuple(pattern, fc.integer()).map(([p, seed]) => floats(n, p, seed, scale));
}

/** Bit-level equality for floats, NaN equal to NaN, +0 equal to -0. */
export function sameFloat(a: number, b: number): boolean {
  return a === b || (a !== a && b !== b);
}

/** Index of the first element where `ok` fails, or -1. */
export function firstMismatch(n: number, ok: (i: number) => boolean): number {
  for (let i = 0; i < n; i++) if (!ok(i)) return i;
  return -1;
}
