// GPTQ's f64 inverse on the WASM linalg kernels: the damping retry and E_NUMERIC behave as on the
// js twin, codes equal the twin's when U rounds to the same f32, and a Hessian too large for the
// heap is E_OOM (not a trap), after which the instance still computes.

import { describe, it, expect, beforeAll } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { refKernels } from '../src/ref/index.js';
import { withChecks } from '../src/kernels/index.js';
import { refLinalg } from '../src/ref/linalg.js';
import { mulberry32 } from '../src/models/opt/sample.js';
import { addBatch, createHessian, gptqQuantize, type Hessian } from '../src/quant/gptq/index.js';
import { expectLowbit, lowbitError } from './helpers.js';

const js = withChecks(refKernels());

function randomWeight(rows: number, cols: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: rows * cols }, () => (rng() * 2 - 1) * 0.1);
}

/** diag 1 and a −3 off-diagonal pair (eigenvalue −2): damping 0.01, 0.1 and 1 fail, 10 works. */
function indefinite(cols: number): Hessian {
  const h = createHessian(cols);
  for (let i = 0; i < cols; i++) h.h[i * cols + i] = 1;
  h.h[1] = -3; h.h[cols] = -3;
  h.nSamples = 1;
  return h;
}

describe('GPTQ inverse on the simd backend', () => {
  let b: Backend;
  beforeAll(async () => {
    b = await createBackend('simd');
  });

  it('damping retries and E_NUMERIC are the same as on the js twin', () => {
    const rows = 4, cols = 8, w = randomWeight(rows, cols, 1);
    const r = gptqQuantize(w, rows, cols, indefinite(cols), { bits: 4, kernels: b.kernels, name: 'layers.0.fc1' });
    const rj = gptqQuantize(w, rows, cols, indefinite(cols), { bits: 4, kernels: js, name: 'layers.0.fc1' });
    expect([r.dampRetries, r.percDamp]).toEqual([rj.dampRetries, rj.percDamp]);
    expect(r.dampRetries).toBe(3);
    const fail = (kernels: typeof js) => lowbitError(() => gptqQuantize(w, rows, cols, indefinite(cols), { bits: 4, kernels, name: 'layers.3.fc2', maxDampRetries: 2 }));
    const e = fail(b.kernels);
    expect(e.code).toBe('E_NUMERIC');
    expect(e.message).toContain('layers.3.fc2');
    expect(e.message).toContain('2 retries');
    expect(e.message).toBe(fail(js).message); // same failing column as the twin
    expect(e.details).toEqual(fail(js).details);
  });

  it('codes equal those from the js twin\'s U (same GEMMs) on a correlated 200-column Hessian', () => {
    const rows = 16, cols = 200, n = 600, rng = mulberry32(7);
    const x = Float32Array.from({ length: n * cols }, () => rng() * 2 - 1);
    for (let t = 0; t < n; t++) for (let c = 1; c < cols; c++) x[t * cols + c] = 0.7 * x[t * cols + c - 1]! + 0.3 * x[t * cols + c]!;
    const h = createHessian(cols);
    addBatch(h, js, x, n, 1);
    const w = randomWeight(rows, cols, 3);
    for (const opts of [{ bits: 4, groupSize: 40 }, { bits: 3, actOrder: true }]) {
      const got = gptqQuantize(w, rows, cols, h, { ...opts, kernels: b.kernels });
      const want = gptqQuantize(w, rows, cols, h, { ...opts, kernels: { ...b.kernels, upperCholInvF64: refLinalg.upperCholInvF64 } });
      expect(Array.from(got.dequantized)).toEqual(Array.from(want.dequantized));
    }
  });

  it('a Hessian too large for the heap is E_OOM, and the instance still computes', async () => {
    const small = await createBackend('simd', { initialMemoryBytes: 1 << 20, maxMemoryBytes: 8 << 20 });
    const n = 1100; // 1100² f64 = 9.7 MB > 8 MB
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) h[i * n + i] = 1;
    expectLowbit(() => small.kernels.upperCholInvF64(n, h, new Float64Array(n * n)), 'E_OOM', 'bytes');
    expectLowbit(() => small.kernels.choleskyF64(n, h.slice()), 'E_OOM');
    const hs = createHessian(n);
    hs.h.set(h);
    expectLowbit(() => gptqQuantize(randomWeight(1, n, 2), 1, n, hs, { bits: 4, kernels: small.kernels }), 'E_OOM');
    expect(small.heap!.stats().inUse).toBe(0);
    const a = Float64Array.from([4, 2, 0, 2, 5, 1, 0, 1, 3]), u = new Float64Array(9), want = new Float64Array(9);
    expect(small.kernels.upperCholInvF64(3, a, u)).toBe(-1);
    refLinalg.upperCholInvF64(3, a, want);
    for (let i = 0; i < 9; i++) expect(Math.abs(u[i]! - want[i]!)).toBeLessThanOrEqual(1e-15);
  });
});
