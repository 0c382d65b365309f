// Streaming GPTQ Hessian H = (2/N) Σ_n X_nᵀ X_n over N calibration samples (IST-DASLab/gptq gptq.py
// `GPTQ.add_batch`), with XᵀX computed by the backend's f32 SIMD GEMM (threaded when init({threads})).

import { LowbitError } from '../../errors.js';
import type { Kernels } from '../../kernels/index.js';

/** Row/column block of the Gram GEMM: only blocks on or above the diagonal are computed. */
const GRAM_BLOCK = 256;

/**
 * Hessian accumulator of one linear layer with `cols` input features. The reference weights by
 * samples (sequences), not tokens: for a batch of `batch` samples,
 *   H ← H · n / (n + batch);  n ← n + batch;  H ← H + (2 / n) · XᵀX
 * (gptq.py: `self.H *= self.nsamples / (self.nsamples + tmp)`, then `inp = sqrt(2 / nsamples) * inp`,
 * `self.H += inp.matmul(inp.t())`). XᵀX is an f32 GEMM as in the reference (torch float32 matmul);
 * H itself is kept in f64.
 */
export interface Hessian {
  readonly cols: number;
  /** (cols, cols) row-major, symmetric. */
  readonly h: Float64Array;
  /** Samples accumulated so far (the reference's `nsamples`). */
  nSamples: number;
  /** Rows (tokens) accumulated so far. */
  nRows: number;
}

export function createHessian(cols: number): Hessian {
  if (!Number.isSafeInteger(cols) || cols < 1) throw new LowbitError('E_ARG', `createHessian: cols must be a positive integer, got ${cols}`);
  return { cols, h: new Float64Array(cols * cols), nSamples: 0, nRows: 0 };
}

/**
 * Scratch for `addBatch`: the transposed batch and the f32 Gram matrix, reused across calls
 * (pass the same object for every batch of a layer to avoid reallocating them).
 */
export interface GramScratch {
  xt: Float32Array;
  g: Float32Array;
}

/**
 * Adds `rows` inputs x (rows × H.cols, row-major) that came from `batch` samples (the reference's
 * `inp.shape[0]`: 1 for one sequence of tokens). The Gram matrix XᵀX is computed as upper blocks
 * of sgemmNT(Xᵀ, Xᵀ) (about half the GEMM) and mirrored.
 */
export function addBatch(hs: Hessian, k: Kernels, x: Float32Array, rows: number, batch = 1, scratch?: GramScratch): void {
  const C = hs.cols;
  if (!Number.isSafeInteger(rows) || rows < 0) throw new LowbitError('E_ARG', `addBatch: rows must be a non-negative integer, got ${rows}`);
  if (x.length < rows * C) throw new LowbitError('E_SHAPE', `addBatch: x holds ${x.length} values, ${rows} rows of ${C} need ${rows * C}`);
  if (!Number.isSafeInteger(batch) || batch < 1) throw new LowbitError('E_ARG', `addBatch: batch must be a positive integer, got ${batch}`);
  if (rows === 0) return;
  let xt = scratch?.xt, g = scratch?.g;
  if (!xt || xt.length < rows * C) xt = new Float32Array(rows * C);
  if (!g || g.length < C * C) g = new Float32Array(C * C);
  if (scratch) { scratch.xt = xt; scratch.g = g; }
  // xt (C, rows) = xᵀ
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    for (let c = 0; c < C; c++) xt[c * rows + r] = x[o + c]!;
  }
  for (let i0 = 0; i0 < C; i0 += GRAM_BLOCK) {
    const ib = Math.min(GRAM_BLOCK, C - i0);
    // G[i0:i0+ib, i0:C] = Xᵀ[i0:i0+ib, :] · Xᵀ[i0:C, :]ᵀ
    k.sgemmNT(ib, C - i0, rows, xt.subarray(i0 * rows), rows, xt.subarray(i0 * rows), rows, g.subarray(i0 * C + i0), C, null);
  }
  const h = hs.h;
  const n0 = hs.nSamples, n1 = n0 + batch;
  const decay = n0 / n1, w = 2 / n1;
  for (let i = 0; i < C; i++) {
    const ri = i * C;
    for (let j = i; j < C; j++) {
      const v = h[ri + j]! * decay + w * g[ri + j]!;
      h[ri + j] = v;
      h[j * C + i] = v;
    }
  }
  hs.nSamples = n1;
  hs.nRows += rows;
}
