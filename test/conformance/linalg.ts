// Conformance of the f64 linalg family (assembly/linalg.ts vs src/ref/linalg.ts): choleskyF64,
// trinvLowerF64 and upperCholInvF64 on SPD matrices of odd and block-straddling sizes (the WASM
// kernels block by 32 rows and 256 k), diagonal ones, a huge diagonal outlier, near-singular ones,
// and non-positive-definite ones (same failing row as the twin).
//
// Tolerances (eps = 2⁻⁵², D = diag(A), S = D^(−½)·A·D^(−½) the diagonally scaled matrix, whose
// condition number governs Cholesky's accuracy (van der Sluis; Higham, ASNA 2nd ed. §10.1),
// κ = ‖S‖_F·‖S⁻¹‖_F ≥ κ₂(S), with S⁻¹ from the twin):
// - choleskyF64, backward error (κ-free, Higham Thm 10.3 with |L|·|Lᵀ| ≤ √(A_ii·A_jj)):
//     |(L·Lᵀ − A)[i,j]| ≤ 2·(n+1)·eps·√(A_ii·A_jj)
// - choleskyF64 vs twin, row i of L scales with √A_ii:  |ΔL[i,j]| ≤ 8·n·eps·κ·√A_ii
// - trinvLowerF64 (same L in) and upperCholInvF64 vs twin, column j of L⁻¹ and of U scale with
//   1/√A_jj:  |ΔM[i,j]| ≤ 8·n·eps·κ·‖S⁻¹‖_F^½ / √A_jj   (first-order forward error of an inverse)
// - failing rows of non-positive-definite matrices: equal.
// The strict upper triangle of L and L⁻¹ and the strict lower triangle of U must be exactly 0.

import { expect, it } from 'vitest';
import fc from 'fast-check';
import type { SuiteContext } from './describeKernels.js';
import { LowbitError } from '../../src/errors.js';
import { choleskyInPlace, choleskyInverse } from '../../src/ref/linalg.js';

const EPS = 2 ** -52;
const RUNS = { numRuns: 40 };

type SpdKind = 'random' | 'diagonal' | 'outlier' | 'nearSingular';
type BadKind = 'negativePivot' | 'indefinite2x2' | 'nan';

function rng(seed: number): () => number {
  let s = (seed * 2654435761) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
}

/** An n × n SPD matrix of the given kind (row-major, symmetric). */
function spd(n: number, kind: SpdKind, seed: number): Float64Array {
  const r = rng(seed), a = new Float64Array(n * n);
  if (kind === 'diagonal') {
    for (let i = 0; i < n; i++) a[i * n + i] = 10 ** (r() * 6 - 3);
    return a;
  }
  // A = XᵀX + δ·I with X (m × n); nearSingular: m < n (rank-deficient XᵀX) and δ = 1e-7·mean diag
  const m = kind === 'nearSingular' ? Math.max(1, Math.floor(n / 2)) : n + 3;
  const x = Float64Array.from({ length: m * n }, () => r() * 2 - 1);
  for (let t = 0; t < m; t++) {
    for (let i = 0; i < n; i++) {
      const xi = x[t * n + i]!;
      for (let j = 0; j <= i; j++) a[i * n + j]! += xi * x[t * n + j]!;
    }
  }
  let mean = 0;
  for (let i = 0; i < n; i++) mean += a[i * n + i]! / n;
  const delta = kind === 'nearSingular' ? 1e-7 * mean : 0.1 * mean;
  for (let i = 0; i < n; i++) a[i * n + i]! += delta;
  if (kind === 'outlier') {
    const o = Math.floor(r() * n);
    a[o * n + o]! *= 1e12;
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[j * n + i] = a[i * n + j]!;
  return a;
}

/** κ = ‖S‖_F·‖S⁻¹‖_F and ‖S⁻¹‖_F for the scaled S = D^(−½)·A·D^(−½), S⁻¹ from the twin. */
function scaledCondition(a: Float64Array, n: number): { kappa: number; invNorm: number } {
  const l = a.slice();
  expect(choleskyInPlace(l, n)).toBe(-1);
  const inv = choleskyInverse(l, n);
  let s = 0, si = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const dij = Math.sqrt(a[i * n + i]! * a[j * n + j]!);
      s += (a[i * n + j]! / dij) ** 2;
      si += (inv[i * n + j]! * dij) ** 2;
    }
  }
  return { kappa: Math.sqrt(s) * Math.sqrt(si), invNorm: Math.sqrt(si) };
}

const spdKind = fc.constantFrom<SpdKind>('random', 'random', 'diagonal', 'outlier', 'nearSingular');
const size = fc.oneof(fc.constantFrom(1, 2, 3, 5, 17, 31, 32, 33, 63, 65), fc.integer({ min: 1, max: 70 }));

/** Index of the first element where `ok` fails, or -1. */
function firstBad(n: number, ok: (i: number) => boolean): number {
  for (let i = 0; i < n; i++) if (!ok(i)) return i;
  return -1;
}

export function linalgSuite({ backend, ref }: SuiteContext): void {
  const k = () => backend().kernels;

  /** Checks every kernel of the family on one SPD matrix. */
  function checkSpd(a: Float64Array, n: number, label: string): void {
    const { kappa, invNorm } = scaledCondition(a, n);
    const d = (i: number) => a[i * n + i]!;
    // ---- choleskyF64
    const lw = a.slice(), lr = a.slice();
    expect(k().choleskyF64(n, lw), label).toBe(-1);
    expect(ref.choleskyF64(n, lr)).toBe(-1);
    let bad = firstBad(n * n, (p) => {
      const i = Math.floor(p / n), j = p % n;
      if (j > i) return lw[p] === 0;
      let s = 0;
      for (let t = 0; t <= j; t++) s += lw[i * n + t]! * lw[j * n + t]!;
      return Math.abs(s - a[p]!) <= 2 * (n + 1) * EPS * Math.sqrt(d(i) * d(j));
    });
    expect(bad, `${label}: L·Lᵀ = A fails at ${bad}`).toBe(-1);
    bad = firstBad(n * n, (p) => Math.abs(lw[p]! - lr[p]!) <= 8 * n * EPS * kappa * Math.sqrt(d(Math.floor(p / n))));
    expect(bad, `${label} κ=${kappa}: L at ${bad}: ${lw[bad]} vs ${lr[bad]}`).toBe(-1);
    // ---- trinvLowerF64 on the twin's L, with garbage in the strict upper triangle (ignored)
    const mw = lr.slice(), mr = lr.slice();
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) mw[i * n + j] = 7;
    k().trinvLowerF64(n, mw);
    ref.trinvLowerF64(n, mr);
    const colTol = (j: number) => 8 * n * EPS * kappa * Math.sqrt(invNorm) / Math.sqrt(d(j));
    bad = firstBad(n * n, (p) => (p % n > Math.floor(p / n) ? mw[p] === 0 : Math.abs(mw[p]! - mr[p]!) <= colTol(p % n)));
    expect(bad, `${label} κ=${kappa}: L⁻¹ at ${bad}: ${mw[bad]} vs ${mr[bad]}`).toBe(-1);
    // ---- upperCholInvF64, into a separate array and in place
    const uw = new Float64Array(n * n).fill(NaN), ur = new Float64Array(n * n);
    const h = a.slice();
    expect(k().upperCholInvF64(n, h, uw)).toBe(-1);
    expect(ref.upperCholInvF64(n, a, ur)).toBe(-1);
    expect(Array.from(h)).toEqual(Array.from(a));
    bad = firstBad(n * n, (p) => (p % n < Math.floor(p / n) ? uw[p] === 0 : Math.abs(uw[p]! - ur[p]!) <= colTol(p % n)));
    expect(bad, `${label} κ=${kappa}: U at ${bad}: ${uw[bad]} vs ${ur[bad]}`).toBe(-1);
    for (let i = 0; i < n; i++) expect(uw[i * n + i]).toBeGreaterThan(0);
    expect(k().upperCholInvF64(n, h, h)).toBe(-1);
    expect(Array.from(h)).toEqual(Array.from(uw));
  }

  it('choleskyF64 / trinvLowerF64 / upperCholInvF64 match the twin within n·eps·κ(S) (and L·Lᵀ = A within 2(n+1)·eps)', () => {
    fc.assert(fc.property(size, spdKind, fc.integer(), (n, kind, seed) => {
      checkSpd(spd(n, kind, seed), n, `n=${n} ${kind}`);
    }), RUNS);
  });

  it('matches the twin across several K blocks (n = 300, 513)', () => {
    for (const n of [300, 513]) checkSpd(spd(n, 'random', n), n, `n=${n}`);
  });

  it('a non-positive-definite matrix fails at the same row as the twin, for every kernel', () => {
    fc.assert(fc.property(size, fc.constantFrom<BadKind>('negativePivot', 'indefinite2x2', 'nan'), fc.nat(), fc.integer(), (n, kind, at, seed) => {
      if (kind === 'indefinite2x2' && n < 2) return;
      const a = spd(n, 'random', seed);
      const r = kind === 'indefinite2x2' ? at % (n - 1) : at % n;
      if (kind === 'negativePivot') a[r * n + r] = -1 - a[r * n + r]!;
      if (kind === 'nan') a[r * n + r] = NaN;
      if (kind === 'indefinite2x2') {
        // rows r, r+1 decoupled from the rest with block [[1, 3], [3, 1]] (eigenvalue −2): pivot r+1 fails
        for (let j = 0; j < n; j++) for (const i of [r, r + 1]) { a[i * n + j] = 0; a[j * n + i] = 0; }
        a[r * n + r] = 1; a[(r + 1) * n + r + 1] = 1; a[r * n + r + 1] = 3; a[(r + 1) * n + r] = 3;
      }
      const want = ref.choleskyF64(n, a.slice());
      expect(want).toBeGreaterThanOrEqual(0);
      expect(k().choleskyF64(n, a.slice())).toBe(want);
      const wantU = ref.upperCholInvF64(n, a, new Float64Array(n * n));
      expect(wantU).toBeGreaterThanOrEqual(0);
      expect(k().upperCholInvF64(n, a, new Float64Array(n * n))).toBe(wantU);
    }), RUNS);
  });

  it('n = 0 is a no-op', () => {
    expect(k().choleskyF64(0, new Float64Array(0))).toBe(-1);
    k().trinvLowerF64(0, new Float64Array(0));
    expect(k().upperCholInvF64(0, new Float64Array(0), new Float64Array(0))).toBe(-1);
  });

  it('rejects bad arguments before any kernel runs, and still computes afterwards', () => {
    const code = (fn: () => void) => { try { fn(); } catch (e) { expect(e).toBeInstanceOf(LowbitError); return (e as LowbitError).code; } return 'none'; };
    const a = spd(5, 'random', 3), untouched = a.slice();
    expect(code(() => k().choleskyF64(5, a.subarray(0, 24)))).toBe('E_SHAPE');
    expect(code(() => k().choleskyF64(-1, a))).toBe('E_ARG');
    expect(code(() => k().choleskyF64(2.5, a))).toBe('E_ARG');
    expect(code(() => k().trinvLowerF64(6, a))).toBe('E_SHAPE');
    expect(code(() => k().upperCholInvF64(5, a, new Float64Array(24)))).toBe('E_SHAPE');
    expect(code(() => k().upperCholInvF64(5, a.subarray(1), new Float64Array(25)))).toBe('E_SHAPE');
    const buf = new Float64Array(60);
    buf.set(a);
    expect(code(() => k().upperCholInvF64(5, buf.subarray(0, 25), buf.subarray(10, 35)))).toBe('E_ARG');
    expect(() => k().choleskyF64(5, a.subarray(0, 24))).toThrow(/a \(5 × 5\) has 24 elements, needs at least 25/);
    expect(Array.from(a)).toEqual(Array.from(untouched));
    checkSpd(a, 5, 'after bad arguments');
  });
}
