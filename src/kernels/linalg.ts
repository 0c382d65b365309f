// The f64 linear-algebra kernel family (GPTQ's inverse Hessian): signatures and argument checks.
// Twins: assembly/linalg.ts (WASM), src/ref/linalg.ts (plain TS), src/wasm/linalg.ts (marshalling).
// Matrices are row-major n × n Float64Array; only the first n·n elements are used.

import { LowbitError } from '../errors.js';
import { checkDims, checkLen } from './check.js';

/** f64 Cholesky-family kernels (twins: assembly/linalg.ts, src/ref/linalg.ts). */
export interface LinalgKernels {
  /**
   * torch.linalg.cholesky in place: A = L·Lᵀ with L lower and a positive diagonal, L[i,j] =
   * (A[i,j] − Σ_{k<j} L[i,k]·L[j,k]) / L[j,j]. Reads only A's lower triangle; zeroes the strict upper.
   * Returns -1, or the first row (in row order) whose pivot A[i,i] − Σ_k L[i,k]² is not positive and
   * finite (A not positive definite; `a` is then partially overwritten).
   */
  choleskyF64(n: number, a: Float64Array): number;
  /**
   * In-place inverse of a lower-triangular L with a positive diagonal: M = L⁻¹, row i of M is
   * (e_i − Σ_{k<i} L[i,k]·M[k,:]) / L[i,i]. The strict upper triangle is ignored and zeroed.
   */
  trinvLowerF64(n: number, l: Float64Array): void;
  /**
   * U = the upper Cholesky factor of H⁻¹ (H⁻¹ = Uᵀ·U, U upper with positive diagonal), what
   * IST-DASLab/gptq `fasterquant` gets from cholesky → cholesky_inverse → cholesky(upper=True):
   * with J the reversal, J·H·J = L'·L'ᵀ and U = J·L'⁻¹·J. Written to `u` (may be `h` itself; else `h`
   * is not modified). Returns -1, or the row of H whose pivot failed (u is then partially overwritten).
   */
  upperCholInvF64(n: number, h: Float64Array, u: Float64Array): number;
}

/** True when the first `n` elements of a and b share memory without being the same elements. */
function partialOverlap(a: Float64Array, b: Float64Array, n: number): boolean {
  if (a.buffer !== b.buffer || n === 0) return false;
  const a0 = a.byteOffset, b0 = b.byteOffset, bytes = n * 8;
  return a0 !== b0 && a0 < b0 + bytes && b0 < a0 + bytes;
}

/** The linalg kernels of `k`, each preceded by its argument checks. */
export function checkedLinalg(k: LinalgKernels): LinalgKernels {
  return {
    choleskyF64(n, a) {
      checkDims('choleskyF64', { n });
      checkLen('choleskyF64', `a (${n} × ${n})`, a, n * n);
      return k.choleskyF64(n, a);
    },
    trinvLowerF64(n, l) {
      checkDims('trinvLowerF64', { n });
      checkLen('trinvLowerF64', `l (${n} × ${n})`, l, n * n);
      k.trinvLowerF64(n, l);
    },
    upperCholInvF64(n, h, u) {
      checkDims('upperCholInvF64', { n });
      checkLen('upperCholInvF64', `h (${n} × ${n})`, h, n * n);
      checkLen('upperCholInvF64', `u (${n} × ${n})`, u, n * n);
      if (partialOverlap(h, u, n * n)) {
        throw new LowbitError('E_ARG', `upperCholInvF64: u and h (${n} × ${n}) overlap without being the same array; pass the same array or disjoint ones`);
      }
      return k.upperCholInvF64(n, h, u);
    },
  };
}
