// qlinear / qlinearInt end to end: every backend bit-identical to the js twin (the weight-only
// dequantize-then-f32-GEMM route for many tokens: within f32 rounding), weight-only within
// 1e-5 (relative to max|y|) of dequantize-then-f64 matmul, integer × integer exactly the integer
// formula, bad input rejected with LowbitError before any kernel runs.

import { beforeAll, describe, expect, it } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { quantize, dequantize } from '../src/quant/quantize.js';
import { packQLinear, qlinear, qlinearInt, qlinearIntF32, QLinearScratch } from '../src/quant/qlinear.js';
import { Tensor } from '../src/tensor.js';
import { LowbitError } from '../src/errors.js';
import { qmmRoute } from '../src/wasm/qmatmul.js';
import type { Bits, QuantizedTensor } from '../src/quant/types.js';

// the same deterministic inputs the browser test uses (test/browser/workloads.ts)
import { rand, clusters } from './browser/workloads.js';

/** y = x · dequant(w)ᵀ in f64. */
function refMatmul(x: Float32Array, wq: QuantizedTensor, M: number, bias: Float32Array | null): Float64Array {
  const [N, K] = wq.shape as [number, number];
  const wd = dequantize(wq).data as Float32Array;
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[m * K + k]! * wd[n * K + k]!;
    y[m * N + n] = s + (bias ? bias[n]! : 0);
  }
  return y;
}

function relErr(got: Float32Array, want: Float64Array): number {
  let e = 0, mx = 0;
  for (let i = 0; i < want.length; i++) { e = Math.max(e, Math.abs(got[i]! - want[i]!)); mx = Math.max(mx, Math.abs(want[i]!)); }
  return e / mx;
}

const names = (process.env.LOWBIT_BACKENDS ?? 'js,simd').split(',').map((s) => s.trim()) as Array<'js' | 'simd' | 'relaxed'>;

describe('qlinear', () => {
  const bs: Record<string, Backend> = {};
  beforeAll(async () => { for (const n of new Set(['js', ...names])) bs[n] = await createBackend(n as 'js'); });

  const cases: Array<[string, Bits, 'group' | 'cluster', number, number, number, number]> = [
    ['W4 g32', 4, 'group', 32, 9, 3, 256], ['W4 g128', 4, 'group', 128, 13, 2, 384], ['W3 g128', 3, 'group', 128, 6, 5, 256],
    ['W2 g64', 2, 'group', 64, 7, 1, 192], ['W4 clusters', 4, 'cluster', 5, 10, 4, 150], ['W3 clusters', 3, 'cluster', 3, 5, 1, 77],
    ['W8 g16', 8, 'group', 16, 5, 2, 48], ['W2 clusters', 2, 'cluster', 4, 6, 3, 100], ['W4 g32 M17', 4, 'group', 32, 11, 17, 64],
    // many tokens on padded clusters: the f32 route's compact columns (each cluster's padding dropped)
    ['W4 clusters M12', 4, 'cluster', 5, 10, 12, 150], ['W3 clusters M9', 3, 'cluster', 3, 5, 9, 77], ['W2 clusters M8', 2, 'cluster', 4, 6, 8, 100],
  ];
  for (const [label, bits, kind, g, N, M, K] of cases) {
    it(`${label}: every backend bit-identical to js (f32 GEMM route: within f32 rounding), within 1e-5 of dequantize-then-f32`, () => {
      const w = Tensor.fromArray(rand(N * K, 7 + N, 0.1), [N, K]);
      const cm = kind === 'cluster' ? clusters(K, g, K) : null;
      const wq = quantize(w, { bits, symmetric: false, granularity: cm ? { kind: 'perRowCluster', clusters: cm } : { kind: 'perGroup', groupSize: g } }, undefined, { kernels: bs.js!.kernels });
      const x = rand(M * K, 3 + M, 2);
      x[1] = 40; // an outlier
      const bias = rand(N, 5);
      const want = refMatmul(x, wq, M, bias);
      const yRef = qlinear(x, packQLinear(wq, { kernels: bs.js!.kernels, heap: null }), bias, { kernels: bs.js!.kernels });
      expect(relErr(yRef, want)).toBeLessThan(1e-5);
      for (const n of names) {
        const b = bs[n]!;
        const ql = packQLinear(wq, { kernels: b.kernels, heap: b.heap });
        const y = qlinear(x, ql, bias, { kernels: b.kernels, heap: b.heap });
        if (n !== 'js' && qmmRoute(M, 0) === 'f32') {
          // dequantize-then-f32-GEMM route: within f32 rounding of the integer twin
          expect(relErr(y, Float64Array.from(yRef))).toBeLessThan(2e-6);
          expect(relErr(y, want)).toBeLessThan(1e-5);
        } else {
          for (let i = 0; i < y.length; i++) if (!Object.is(y[i], yRef[i])) expect(`${n} y[${i}] = ${y[i]}`).toBe(`${yRef[i]}`);
        }
      }
    });
  }

  it('the f32 route drops columns that are 0 in every token (a cluster\'s tail, a whole cluster): equal to the per-token GEMV twin', () => {
    const K = 90, N = 9, M = 10;
    // identity order, uneven clusters; the last 3 columns of cluster 1 and all of cluster 2 (one column) are 0 in every token
    const offsets = Int32Array.from([0, 17, 40, 41, 60, 90]), perm = Int32Array.from({ length: K }, (_, i) => i);
    const w = Tensor.fromArray(rand(N * K, 21, 0.1), [N, K]);
    const wq = quantize(w, { bits: 4, symmetric: false, granularity: { kind: 'perRowCluster', clusters: { perm, offsets } } }, undefined, { kernels: bs.js!.kernels });
    const x = rand(M * K, 23, 2);
    for (let m = 0; m < M; m++) { for (const j of [37, 38, 39, 40]) x[m * K + j] = 0; }
    const want = refMatmul(x, wq, M, null);
    expect(qmmRoute(M, 0)).toBe('f32');
    for (const n of names.filter((v) => v !== 'js')) {
      const b = bs[n]!, ql = packQLinear(wq, { kernels: b.kernels, heap: b.heap });
      const y = qlinear(x, ql, null, { kernels: b.kernels, heap: b.heap });
      const perToken = new Float64Array(M * N);
      for (let m = 0; m < M; m++) perToken.set(qlinear(x.subarray(m * K, (m + 1) * K), ql, null, { kernels: b.kernels, heap: b.heap }), m * N);
      expect(relErr(y, perToken)).toBeLessThan(2e-6);
      expect(relErr(y, want)).toBeLessThan(1e-5);
    }
  });

  const icases: Array<[string, Bits, Bits, number, number, number, number]> = [
    ['W8A8', 8, 8, 4, 9, 5, 100], ['W4A8', 4, 8, 6, 10, 3, 130], ['W4A4', 4, 4, 3, 7, 4, 90], ['W3A3', 3, 3, 2, 5, 2, 70], ['W2A4', 2, 4, 3, 4, 3, 64],
  ];
  for (const [label, bw, ba, k, N, M, K] of icases) {
    it(`${label}: integer formula exact, every backend bit-identical`, () => {
      const cm = clusters(K, k, K + bw);
      const w = Tensor.fromArray(rand(N * K, 11, 0.1), [N, K]);
      const wq = quantize(w, { bits: bw, symmetric: false, granularity: { kind: 'perRowCluster', clusters: cm } }, undefined, { kernels: bs.js!.kernels });
      const xa = Tensor.fromArray(rand(M * K, 13, 3), [M, K]);
      const aq = quantize(xa, { bits: ba, symmetric: false, granularity: { kind: 'perCluster', clusters: cm } }, undefined, { kernels: bs.js!.kernels });
      const ref = bs.js!.kernels;
      const yRef = qlinearInt(aq, packQLinear(wq, { kernels: ref, heap: null }), null, { kernels: ref });
      // the integer formula in f64
      const wc = new Uint8Array(N * K), ac = new Uint8Array(M * K);
      ref.unpackCodes(N, K, wq.format, wq.qs, wc);
      ref.unpackCodes(M, K, aq.format, aq.qs, ac);
      const nSeg = cm.offsets.length - 1;
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let y = 0;
        for (let c = 0; c < nSeg; c++) {
          let dot = 0;
          for (let i = cm.offsets[c]!; i < cm.offsets[c + 1]!; i++) dot += (wc[n * K + i]! - wq.zero[n * nSeg + c]!) * (ac[m * K + i]! - aq.zero[c]!);
          y += wq.scale[n * nSeg + c]! * aq.scale[c]! * dot;
        }
        expect(Math.abs(yRef[m * N + n]! - y)).toBeLessThanOrEqual(1e-5 * (Math.abs(y) + 1));
      }
      for (const n of names) {
        const b = bs[n]!;
        const y = qlinearInt(aq, packQLinear(wq, { kernels: b.kernels, heap: b.heap }), null, { kernels: b.kernels, heap: b.heap });
        for (let i = 0; i < y.length; i++) if (!Object.is(y[i], yRef[i])) expect(`${n} y[${i}] = ${y[i]}`).toBe(`${yRef[i]}`);
      }
    });
  }

  it('qlinearIntF32 (quantizing inside the prep) equals quantize (perCluster) + qlinearInt bit for bit; bad input is a LowbitError', () => {
    for (const [label, bw, ba, k, N, M, K] of icases) {
      const cm0 = clusters(K, k, K + bw), cm = { perm: Int32Array.from({ length: K }, (_, i) => i), offsets: cm0.offsets };
      const w = Tensor.fromArray(rand(N * K, 11, 0.1), [N, K]);
      const x = rand(M * K, 13, 3);
      x[5] = 40; // an outlier (NaN and clamping are in the kernel conformance suite)
      const code = (fn: () => unknown) => { try { fn(); } catch (e) { expect(e).toBeInstanceOf(LowbitError); return (e as LowbitError).code; } return 'none'; };
      for (const n of names) {
        const b = bs[n]!, o = { kernels: b.kernels, heap: b.heap };
        const wq = quantize(w, { bits: bw, symmetric: false, granularity: { kind: 'perRowCluster', clusters: cm } }, undefined, o);
        const aq = quantize(Tensor.fromArray(x, [M, K]), { bits: ba, symmetric: false, granularity: { kind: 'perCluster', clusters: cm } }, undefined, o);
        const ql = packQLinear(wq, o);
        const want = qlinearInt(aq, ql, null, o);
        const got = qlinearIntF32(x, { bits: ba, offsets: cm.offsets, scale: aq.scale, zero: aq.zero }, ql, null, o);
        for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) expect(`${label} ${n} y[${i}] = ${got[i]}`).toBe(`${want[i]}`);
        if (n !== names[0]) continue;
        const act = { bits: ba, offsets: cm.offsets, scale: aq.scale, zero: aq.zero };
        expect(code(() => qlinearIntF32(x, { ...act, offsets: Int32Array.from([0, K]) }, ql, null, o))).toBe('E_ARG');
        expect(code(() => qlinearIntF32(x, { ...act, bits: 9 }, ql, null, o))).toBe('E_ARG');
        expect(code(() => qlinearIntF32(x, { ...act, scale: act.scale.subarray(1) }, ql, null, o))).toBe('E_SHAPE');
        expect(code(() => qlinearIntF32(x.subarray(1), act, ql, null, o))).toBe('E_SHAPE');
        const permuted = packQLinear(quantize(w, { bits: bw, symmetric: false, granularity: { kind: 'perRowCluster', clusters: cm0 } }, undefined, o), o);
        expect(code(() => qlinearIntF32(x, act, permuted, null, o))).toBe('E_ARG');
      }
    }
  });

  it('rejects bad input with LowbitError before any kernel runs', () => {
    const k = bs.js!.kernels;
    const w = Tensor.fromArray(rand(8 * 64, 1), [8, 64]);
    const wq = quantize(w, { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: 32 } }, undefined, { kernels: k });
    const code = (fn: () => unknown) => { try { fn(); } catch (e) { expect(e).toBeInstanceOf(LowbitError); return (e as LowbitError).code; } return 'none'; };
    expect(code(() => packQLinear({ ...wq, format: 'u2' }, { kernels: k }))).toBe('E_ARG'); // 4-bit codes in u2
    expect(code(() => packQLinear({ ...wq, qs: wq.qs.subarray(1) }, { kernels: k }))).toBe('E_SHAPE');
    expect(code(() => packQLinear({ ...wq, shape: [8, 32] }, { kernels: k }))).toBe('E_SHAPE');
    expect(code(() => packQLinear({ ...wq, scale: wq.scale.subarray(1) }, { kernels: k }))).toBe('E_SHAPE');
    expect(code(() => packQLinear({ ...wq, zero: wq.zero.subarray(2) }, { kernels: k }))).toBe('E_SHAPE');
    const ql = packQLinear(wq, { kernels: k, heap: null });
    expect(code(() => qlinear(new Float32Array(65), ql, null, { kernels: k }))).toBe('E_SHAPE');
    expect(code(() => qlinear(new Float32Array(64), ql, new Float32Array(7), { kernels: k }))).toBe('E_SHAPE');
    // activation codes out of range for the declared bits
    const act = new Uint8Array(2 * 64).fill(3); act[70] = 16;
    const aq: QuantizedTensor = { ...quantize(Tensor.fromArray(rand(128, 2), [2, 64]), { bits: 4, symmetric: false, granularity: { kind: 'perToken' } }, undefined, { kernels: k }) };
    expect(code(() => k.qPrepCodes(2, 64, act, 2, ql.segc, ql.gatherQ, new Float32Array(4).fill(1), new Uint8Array(4), 2, 4, new Uint8Array(2 * 4 * 128), new Float32Array(16)))).toBe('E_RANGE');
    expect(code(() => qlinearInt(aq, ql, null, { kernels: k }))).toBe('E_ARG'); // per-token offsets [0, 64] vs groups
    // scale count not matching segments, at kernel level
    expect(code(() => k.qPrepCodes(2, 64, new Uint8Array(128), 2, ql.segc, ql.gatherQ, new Float32Array(1).fill(1), new Uint8Array(4), 1, 4, new Uint8Array(2 * 4 * 128), new Float32Array(16)))).toBe('E_SHAPE');
    // the f32-in integer prep: short x, bits out of range, a zero point above the largest code (messages name the argument)
    const prepQ = (x: Float32Array, bits: number, zero: Uint8Array) => () =>
      k.qPrepQuant(2, 64, x, 2, ql.segc, ql.gatherQ, new Float32Array(2).fill(1), zero, 1, bits, new Uint8Array(2 * 4 * 128), new Float32Array(16));
    expect(() => prepQ(new Float32Array(127), 4, new Uint8Array(2))()).toThrow(/qPrepQuant: x has 127 elements, needs at least 128/);
    expect(code(prepQ(new Float32Array(128), 9, new Uint8Array(2)))).toBe('E_ARG');
    expect(() => prepQ(new Float32Array(128), 4, Uint8Array.from([0, 16]))()).toThrow(/qPrepQuant: zero\[1\] = 16 does not fit 4 bits/);
    // packed format and shape mismatch at kernel level
    expect(code(() => k.qmm(1, 8, ql.nSeg, ql.segc, 'u3', 0, ql.w, ql.rb, ql.wp, new Uint8Array(4 * 128), new Float32Array(8), null, new Float32Array(8), 8))).toBe('E_ARG');
    expect(code(() => k.qmm(1, 9, ql.nSeg, ql.segc, 'u4', 0, ql.w, ql.rb, ql.wp, new Uint8Array(4 * 128), new Float32Array(8), null, new Float32Array(9), 9))).toBe('E_SHAPE');
    expect(code(() => k.qmm(1, 8, ql.nSeg, ql.segc, 'u4', 0, ql.w, ql.rb - 1, ql.wp, new Uint8Array(4 * 128), new Float32Array(8), null, new Float32Array(8), 8))).toBe('E_SHAPE');
  });
});

describe('qlinear with inputs resident in WASM memory', () => {
  it('keeps working when its scratch allocation grows memory (views re-created, no E_DETACHED)', async () => {
    const b = await createBackend('simd', { initialMemoryBytes: 1 << 20 });
    const h = b.heap!;
    const K = 256, N = 64, M = 600; // activation scratch (M·K·8 bytes ≈ 1.2 MB) forces memory.grow
    const wt = Tensor.fromArray(Float32Array.from({ length: N * K }, (_, i) => Math.sin(i)), [N, K]);
    const q = quantize(wt, { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: 128 } }, undefined, { kernels: b.kernels });
    const w = packQLinear(q, { kernels: b.kernels, heap: h });
    const xHost = Float32Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.37));
    const px = h.alloc(4 * M * K), pb = h.alloc(4 * N);
    h.f32(px, M * K).set(xHost);
    h.f32(pb, N).fill(0.5);
    const before = h.stats().memoryBytes;
    const y = qlinear(h.f32(px, M * K), w, h.f32(pb, N), { kernels: b.kernels, heap: h });
    expect(h.stats().memoryBytes).toBeGreaterThan(before);
    const wd = dequantize(q, { kernels: b.kernels }).data as Float32Array;
    let maxErr = 0, maxY = 0;
    for (let m = 0; m < M; m += 97) for (let n = 0; n < N; n++) {
      let s = 0.5;
      for (let k = 0; k < K; k++) s += xHost[m * K + k]! * wd[n * K + k]!;
      maxErr = Math.max(maxErr, Math.abs(y[m * N + n]! - s));
      maxY = Math.max(maxY, Math.abs(s));
    }
    expect(maxErr / maxY).toBeLessThan(1e-5);
  });

  it('qlinearInt into a heap `out` while unpacking the activation codes grows memory (the view is re-created)', async () => {
    const b = await createBackend('simd', { initialMemoryBytes: 1 << 20 });
    const h = b.heap!, js = (await createBackend('js')).kernels;
    const K = 1024, N = 12, M = 600;
    const cm = { perm: Int32Array.from({ length: K }, (_, i) => i), offsets: Int32Array.from([0, 384, 1024]) };
    const wq = quantize(Tensor.fromArray(rand(N * K, 3, 0.1), [N, K]), { bits: 4, symmetric: false, granularity: { kind: 'perRowCluster', clusters: cm } }, undefined, { kernels: js });
    const aq = quantize(Tensor.fromArray(rand(M * K, 5, 2), [M, K]), { bits: 8, symmetric: false, granularity: { kind: 'perCluster', clusters: cm } }, undefined, { kernels: js });
    const want = qlinearInt(aq, packQLinear(wq, { kernels: js, heap: null }), null, { kernels: js });
    const w = packQLinear(wq, { kernels: b.kernels, heap: h });
    const py = h.alloc(4 * M * N);
    const before = h.stats().memoryBytes;
    const y = qlinearInt(aq, w, null, { kernels: b.kernels, heap: h, out: h.f32(py, M * N) });
    expect(h.stats().memoryBytes).toBeGreaterThan(before);
    expect(Array.from(y)).toEqual(Array.from(want));
    expect(Array.from(h.f32(py, M * N))).toEqual(Array.from(want));
  });

  it('writes into a caller-provided heap `out` with a reusable scratch arena, bit-identical to the allocating call', async () => {
    const b = await createBackend('simd', { initialMemoryBytes: 1 << 20 });
    const h = b.heap!;
    const K = 192, N = 36, M = 400;
    const code = (fn: () => unknown) => { try { fn(); } catch (e) { return (e as LowbitError).code; } return 'none'; };
    const wt = Tensor.fromArray(Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.7)), [N, K]);
    const q = quantize(wt, { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: 24 } }, undefined, { kernels: b.kernels });
    const w = packQLinear(q, { kernels: b.kernels, heap: h });
    const xHost = Float32Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.37) * (1 + (i % 7)));
    const bias = Float32Array.from({ length: N }, (_, i) => i * 0.25 - 3);
    const ref = qlinear(xHost, w, bias, { kernels: b.kernels, heap: h });
    const px = h.alloc(4 * M * K), pb = h.alloc(4 * N), py = h.alloc(4 * (M * N + 5));
    h.f32(px, M * K).set(xHost); h.f32(pb, N).set(bias);
    const scratch = new QLinearScratch(h);
    const before = h.stats().memoryBytes;
    for (const m of [1, 3, M]) { // the arena grows (and memory with it: views of x, bias, out re-created)
      const refM = m === M ? ref : qlinear(xHost.subarray(0, m * K), w, bias, { kernels: b.kernels, heap: h });
      const y = qlinear(h.f32(px, m * K), w, h.f32(pb, N), { kernels: b.kernels, heap: h, out: h.f32(py, M * N + 5), scratch });
      expect(y.length).toBe(m * N);
      expect(Array.from(h.f32(py, m * N))).toEqual(Array.from(refM));
    }
    expect(h.stats().memoryBytes).toBeGreaterThan(before);
    const jsOut = new Float32Array(M * N);
    expect(qlinear(xHost, w, bias, { kernels: b.kernels, heap: h, out: jsOut, scratch })).toEqual(jsOut);
    expect(Array.from(jsOut)).toEqual(Array.from(ref));
    expect(code(() => qlinear(xHost, w, bias, { kernels: b.kernels, heap: h, out: new Float32Array(M * N - 1) }))).toBe('E_SHAPE');
    // integer × integer path, same segments as the weight
    const xa = Tensor.fromArray(xHost.slice(0, 8 * K), [8, K]);
    const aq = quantize(xa, { bits: 8, symmetric: false, granularity: { kind: 'perGroup', groupSize: 24 } }, undefined, { kernels: b.kernels });
    const refInt = qlinearInt(aq, w, bias, { kernels: b.kernels, heap: h });
    const yInt = qlinearInt(aq, w, h.f32(pb, N), { kernels: b.kernels, heap: h, out: h.f32(py, 8 * N), scratch });
    expect(Array.from(yInt)).toEqual(Array.from(refInt));
    scratch.dispose();
    w.dispose();
  });
});
