// GPTQ cases: Hessian accumulation (512 tokens × 3072 features: the fc2 XᵀX GEMM), the f64 upper
// Cholesky factor of H⁻¹ for 768 and 3072 columns (js twin vs simd vs relaxed), and the column loop for a 768 × 768 layer (4-bit, groups 128).

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { seededFloats as rand } from '../data.js';
import { addBatch, createHessian, gptqQuantize, type GramScratch } from '../../src/quant/gptq/index.js';

export function gptqCases(ctx: BenchContext): BenchCase[] {
  const cases: BenchCase[] = [];
  const runs: Array<[string, Backend | undefined, string]> = [
    ...Object.entries(ctx.backends).map(([n, b]) => [n, b, 'js'] as [string, Backend | undefined, string]),
    ...Object.entries(ctx.threaded).map(([n, b]) => [`${n} 2T`, b, n] as [string, Backend | undefined, string]),
  ];
  // Hessian: 512 × 3072 tokens × features → (3072, 3072); upper blocks ≈ half + 1/24 of the full GEMM
  const T = 512, C = 3072;
  const x = rand(T * C, 21);
  for (const [name, b, peer] of runs) {
    if (!b || name === 'js') continue; // the js GEMM takes minutes here
    const h = createHessian(C);
    const scratch: GramScratch = { xt: new Float32Array(0), g: new Float32Array(0) };
    cases.push({ group: `gptq hessian add 512x3072`, impl: name, peer: peer === 'js' ? name : peer, flops: T * C * C * (1 + 1 / 12), fn: () => addBatch(h, b.kernels, x, T, 1, scratch) });
  }
  // the f64 inverse chain (upper Cholesky factor of H⁻¹: Cholesky of J·H·J, triangular inverse,
  // reversal) on each backend's linalg kernels; js is the TS twin. n³/3 multiply-adds.
  for (const n of [768, 3072]) {
    const spd = new Float64Array(n * n);
    const r = rand(n * 8, 22);
    for (let i = 0; i < n; i++) {
      spd[i * n + i] = n;
      for (let j = 0; j < i; j++) { const v = r[(i * 7 + j) % r.length]! * 0.5; spd[i * n + j] = v; spd[j * n + i] = v; }
    }
    const u = new Float64Array(n * n); // (n, n) output, reused
    for (const [name, b] of Object.entries(ctx.backends)) {
      if (!b) continue;
      cases.push({ group: `gptq upper chol(H⁻¹) ${n} f64`, impl: name, flops: (2 * n ** 3) / 3, fn: () => { b.kernels.upperCholInvF64(n, spd, u); } });
    }
  }
  // column loop 768 × 768, 4-bit groups 128 (includes its own Cholesky of 768)
  const rows = 768, cols = 768;
  const w = rand(rows * cols, 23);
  const xs = rand(1024 * cols, 24);
  for (const [name, b] of runs) {
    if (!b || name.endsWith('2T')) continue;
    const hs = createHessian(cols);
    cases.push({
      group: 'gptq quantize 768x768 4-bit g128', impl: name, flops: 2 * rows * cols * cols,
      setup: () => { if (hs.nSamples === 0) addBatch(hs, b.kernels, xs, 1024, 1); },
      fn: () => { gptqQuantize(w, rows, cols, hs, { bits: 4, groupSize: 128, kernels: b.kernels }); },
    });
  }
  return cases;
}
