// f64 dense linear algebra for GPTQ (arXiv 2210.17323): the upper Cholesky factor of H⁻¹ that
// IST-DASLab/gptq gptq.py `fasterquant` computes in float32 as
//   H = torch.linalg.cholesky(H); H = torch.cholesky_inverse(H); H = torch.linalg.cholesky(H, upper=True)
// here in float64 on the backend's linalg kernels (assembly/linalg.ts, twin src/ref/linalg.ts).

import type { LinalgKernels } from '../../kernels/linalg.js';
import { refLinalg } from '../../ref/linalg.js';

export { choleskyInPlace, invertLowerInPlace, choleskyInverse, upperCholeskyOfInverseReference } from '../../ref/linalg.js';

/**
 * The upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ·U, U upper with positive diagonal), the matrix GPTQ's
 * column loop reads, via one Cholesky of J·H·J and one triangular inverse (see LinalgKernels
 * `upperCholInvF64`), in f64. `h` (n × n) is not modified. Runs on `kernels` (GPTQ passes its
 * backend's; default: the plain-TS twin). Returns U, or the row (in H's order) whose pivot failed.
 */
export function upperCholeskyOfInverse(h: Float64Array, n: number, kernels: LinalgKernels = refLinalg):
  { u: Float64Array; failedRow: -1 } | { u: null; failedRow: number } {
  const u = new Float64Array(n * n);
  const bad = kernels.upperCholInvF64(n, h, u);
  return bad >= 0 ? { u: null, failedRow: bad } : { u, failedRow: -1 };
}
