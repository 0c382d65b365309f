// Known-answer self-test run by init() on each WASM backend before it is chosen. Relaxed SIMD
// results are implementation-defined in places (and Node 20's Liftoff tier gets some wrong on first
// calls), so each kernel is checked against the js reference on adversarial values.

import type { Kernels } from './kernels/index.js';
import { refKernels } from './ref/index.js';

/** Returns a list of failures (empty = pass). */
export function selfTest(k: Kernels): string[] {
  const ref = refKernels();
  const failures: string[] = [];
  // f32 GEMM with a huge outlier, odd K and N: exercises the SIMD body and the scalar tails.
  const M = 3, N = 7, K = 37;
  const a = new Float32Array(M * K), b = new Float32Array(N * K);
  for (let i = 0; i < a.length; i++) a[i] = ((i * 7919) % 23) - 11;
  for (let i = 0; i < b.length; i++) b[i] = ((i * 104729) % 19) / 4 - 2;
  a[5] = 3e4;
  for (const [name, f] of [['sgemmNT', 'sgemmNT'], ['sgemmNN', 'sgemmNN']] as const) {
    const got = new Float32Array(M * N), want = new Float32Array(M * N);
    const ldb = f === 'sgemmNT' ? K : N;
    k[f](M, N, K, a, K, b, ldb, got, N, null);
    ref[f](M, N, K, a, K, b, ldb, want, N, null);
    for (let i = 0; i < got.length; i++) {
      if (Math.abs(got[i]! - want[i]!) > 1e-5 * (Math.abs(want[i]!) + 1e3)) {
        failures.push(`${name}[${i}] = ${got[i]}, expected ${want[i]}`);
        break;
      }
    }
  }
  return failures;
}
