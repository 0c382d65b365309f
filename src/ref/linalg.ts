// Reference f64 linear algebra in plain TypeScript (the `js` backend and the oracle for
// assembly/linalg.ts): Cholesky, lower-triangular inverse, Cholesky inverse and the upper Cholesky
// factor of H⁻¹, which IST-DASLab/gptq gptq.py `fasterquant` computes in float32 as
//   H = torch.linalg.cholesky(H); H = torch.cholesky_inverse(H); H = torch.linalg.cholesky(H, upper=True)
// All matrices are row-major n × n Float64Array. Loops are row-oriented so every inner loop is a
// contiguous dot product or axpy (4 accumulators), which is what V8 runs fastest.

import type { LinalgKernels } from '../kernels/linalg.js';

/**
 * In-place lower Cholesky factor: on return the lower triangle of `a` holds L with L·Lᵀ = A and the
 * strict upper triangle is zeroed. Returns -1 on success, else the first row whose pivot was not
 * positive and finite (A is then not positive definite; `a` is left partially overwritten).
 * Row-oriented Cholesky–Crout: L[i,j] = (A[i,j] − L[i,0:j]·L[j,0:j]) / L[j,j], n³/6 multiply-adds.
 * The failing pivot is found in order, so a failure never depends on later rows.
 */
export function choleskyInPlace(a: Float64Array, n: number): number {
  // Rows are factored 4 at a time so each earlier row j is streamed from memory once per 4 rows
  // (the loop is memory-bound otherwise: 3072² f64 is 75 MB); the 4 × 4 diagonal block is then
  // finished row by row.
  for (let i0 = 0; i0 < n; i0 += 4) {
    const ib = Math.min(4, n - i0);
    const r0 = i0 * n, r1 = r0 + (ib > 1 ? n : 0), r2 = r0 + (ib > 2 ? 2 * n : 0), r3 = r0 + (ib > 3 ? 3 * n : 0);
    for (let j = 0; j < i0; j++) {
      const rj = j * n;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < j; k++) {
        const v = a[rj + k]!;
        s0 += a[r0 + k]! * v;
        s1 += a[r1 + k]! * v;
        s2 += a[r2 + k]! * v;
        s3 += a[r3 + k]! * v;
      }
      const d = a[rj + j]!;
      a[r0 + j] = (a[r0 + j]! - s0) / d;
      if (ib > 1) a[r1 + j] = (a[r1 + j]! - s1) / d;
      if (ib > 2) a[r2 + j] = (a[r2 + j]! - s2) / d;
      if (ib > 3) a[r3 + j] = (a[r3 + j]! - s3) / d;
    }
    for (let i = i0; i < i0 + ib; i++) {
      const ri = i * n;
      for (let j = i0; j <= i; j++) {
        const rj = j * n;
        let s = 0;
        for (let k = 0; k < j; k++) s += a[ri + k]! * a[rj + k]!;
        const v = a[ri + j]! - s;
        if (j === i) {
          if (!(v > 0) || v === Infinity) return i;
          a[ri + i] = Math.sqrt(v);
        } else {
          a[ri + j] = v / a[rj + j]!;
        }
      }
      for (let j = i + 1; j < n; j++) a[ri + j] = 0;
    }
  }
  return -1;
}

/**
 * In-place inverse of a lower-triangular L with positive diagonal: on return `l` holds M = L⁻¹
 * (lower). Row i: M[i, :] = (e_i − Σ_{k<i} L[i,k] · M[k, :]) / L[i,i], accumulated in scratch rows
 * so the row of L it reads is not overwritten early; n³/6 multiply-adds, every inner loop an axpy.
 */
export function invertLowerInPlace(l: Float64Array, n: number): void {
  // 4 rows at a time (as in choleskyInPlace): each earlier row k of M is streamed once per 4 rows.
  const acc = new Float64Array(4 * n);
  for (let i0 = 0; i0 < n; i0 += 4) {
    const ib = Math.min(4, n - i0);
    acc.fill(0);
    const o1 = n, o2 = 2 * n, o3 = 3 * n;
    const r0 = i0 * n, r1 = r0 + (ib > 1 ? n : 0), r2 = r0 + (ib > 2 ? 2 * n : 0), r3 = r0 + (ib > 3 ? 3 * n : 0);
    for (let k = 0; k < i0; k++) {
      const c0 = l[r0 + k]!, c1 = ib > 1 ? l[r1 + k]! : 0, c2 = ib > 2 ? l[r2 + k]! : 0, c3 = ib > 3 ? l[r3 + k]! : 0;
      const rk = k * n;
      for (let j = 0; j <= k; j++) {
        const m = l[rk + j]!;
        acc[j]! -= c0 * m;
        acc[o1 + j]! -= c1 * m;
        acc[o2 + j]! -= c2 * m;
        acc[o3 + j]! -= c3 * m;
      }
    }
    // finish the block's rows in order: row i also needs rows i0..i−1 of M, final by now
    for (let t = 0; t < ib; t++) {
      const i = i0 + t, ri = i * n, at = t * n;
      for (let k = i0; k < i; k++) {
        const c = l[ri + k]!, rk = k * n;
        for (let j = 0; j <= k; j++) acc[at + j]! -= c * l[rk + j]!;
      }
      const d = 1 / l[ri + i]!;
      acc[at + i]! += 1;
      for (let j = 0; j <= i; j++) l[ri + j] = acc[at + j]! * d;
    }
  }
}

/** torch.cholesky_inverse: A⁻¹ = L⁻ᵀ · L⁻¹ from the lower factor L of A (a new array; `l` is kept). */
export function choleskyInverse(l: Float64Array, n: number): Float64Array {
  const m = l.slice();
  invertLowerInPlace(m, n);
  // (A⁻¹)[i, j] = Σ_{k >= max(i, j)} M[k, i] · M[k, j]: accumulate row k's outer product (lower part)
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const rk = k * n;
    for (let i = 0; i <= k; i++) {
      const c = m[rk + i]!;
      if (c === 0) continue;
      const ri = i * n;
      for (let j = 0; j <= i; j++) out[ri + j]! += c * m[rk + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) out[j * n + i] = out[i * n + j]!;
  return out;
}

/**
 * The upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ·U, U upper with positive diagonal), the matrix GPTQ's
 * column loop reads, without forming H⁻¹. With J the reversal permutation: if J·H·J = L'·L'ᵀ then
 * H⁻¹ = J·L'⁻ᵀ·L'⁻¹·J = (J·L'⁻¹·J)ᵀ·(J·L'⁻¹·J), and J·L'⁻¹·J is upper with a positive diagonal, so by
 * uniqueness it is U. One Cholesky plus one triangular inverse (n³/3 multiply-adds) instead of the
 * reference's Cholesky, cholesky_inverse and second Cholesky (about n³·2/3), all in f64. Reversing a
 * row-major n × n array end to end is exactly X ↦ J·X·J.
 * U is written to `u` (which may be `h` itself; otherwise `h` is not modified). Returns -1, or the
 * row (in H's order) whose pivot failed; `u` is then partially overwritten.
 */
export function upperCholInvInto(n: number, h: Float64Array, u: Float64Array): number {
  const nn = n * n;
  if (u !== h) for (let p = 0; p < nn; p++) u[p] = h[nn - 1 - p]!;
  else reverseInPlace(u, nn);
  const bad = choleskyInPlace(u, n);
  if (bad >= 0) return n - 1 - bad;
  invertLowerInPlace(u, n);
  // U[i, j] = M[n−1−i, n−1−j]; the strict upper triangle of M is zero, so U's strict lower one is
  reverseInPlace(u, nn);
  return -1;
}

function reverseInPlace(a: Float64Array, len: number): void {
  for (let p = 0, q = len - 1; p < q; p++, q--) {
    const t = a[p]!;
    a[p] = a[q]!;
    a[q] = t;
  }
}

/** The linalg kernel family in plain TS (twin of assembly/linalg.ts). */
export const refLinalg: LinalgKernels = {
  choleskyF64(n, a) {
    return choleskyInPlace(a, n);
  },
  trinvLowerF64(n, l) {
    invertLowerInPlace(l, n);
    for (let i = 0; i + 1 < n; i++) l.fill(0, i * n + i + 1, (i + 1) * n);
  },
  upperCholInvF64(n, h, u) {
    return upperCholInvInto(n, h, u);
  },
};

/** The reference's three-step path (cholesky, cholesky_inverse, cholesky upper) in f64: the oracle for tests. */
export function upperCholeskyOfInverseReference(h: Float64Array, n: number): Float64Array | null {
  const l = h.slice();
  if (choleskyInPlace(l, n) >= 0) return null;
  const inv = choleskyInverse(l, n);
  if (choleskyInPlace(inv, n) >= 0) return null;
  // upper factor = transpose of the lower one
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = inv[i * n + j]!;
  return u;
}
