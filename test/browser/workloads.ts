// Deterministic inputs and the kernel workloads test/browser/page.ts compares across backends,
// thread counts and threads of the browser (window, module Web Worker). Each workload returns its
// outputs by name; inputs follow test/qmatmul.test.ts.

import {
  linear, matmul, packQLinear, qlinear, qlinearInt, quantize, Tensor, type Backend, type Bits, type ClusterMap,
} from '../../src/index.js';
import { packedRowBytes } from '../../src/quant/formats.js';

/** Deterministic values in about ±scale/2 (LCG, as in test/qmatmul.test.ts). */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * scale * (1 + (i % 13) / 4);
  }
  return a;
}

/** A random cluster map of `k` clusters over `n` channels (shuffled permutation). */
export function clusters(n: number, k: number, seed: number): ClusterMap {
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const cuts = new Set<number>();
  while (cuts.size < k - 1) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    cuts.add(1 + (s % (n - 1)));
  }
  return { perm, offsets: Int32Array.from([0, ...[...cuts].sort((a, b) => a - b), n]) };
}

/** b [N, K] → bᵀ [K, N]. */
export function transpose(b: Float32Array, N: number, K: number): Float32Array {
  const t = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = b[n * K + k]!;
  return t;
}

// ---------------------------------------------------------------------------------------------
// Workloads: each returns named outputs, computed on the backend `init()` chose (public ops) or on `be`
// ---------------------------------------------------------------------------------------------

export const GEMM_SHAPES: Array<[M: number, N: number, K: number]> = [[1, 77, 129], [13, 77, 129], [1, 1024, 512], [48, 256, 384]];

/** f32 GEMV / GEMM through the public ops (`linear`: NT kernel with bias, `matmul`: NN kernel). */
export function f32Ops(): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [M, N, K] of GEMM_SHAPES) {
    const a = rand(M * K, M + N, 2), b = rand(N * K, K, 1), bias = rand(N, 3);
    out.set(`linear ${M}x${N}x${K}`, linear(Tensor.fromArray(a, [M, K]), Tensor.fromArray(b, [N, K]), Tensor.fromArray(bias, [N])).data.slice() as Float32Array);
    out.set(`matmul ${M}x${N}x${K}`, matmul(Tensor.fromArray(a, [M, K]), Tensor.fromArray(transpose(b, N, K), [K, N])).data.slice() as Float32Array);
  }
  return out;
}

export const Q_SHAPES: Array<[M: number, N: number, K: number]> = [[3, 13, 256], [17, 11, 384], [1, 512, 512], [24, 256, 512]];

/** Weight-only W4 g32 `qlinear` (GEMV route qmm for M < 8, dequantize-then-GEMM for M ≥ 8). */
export function qlinearW4(be: Backend | null): Map<string, Float32Array> {
  const opts = be ? { kernels: be.kernels, heap: be.heap } : {};
  const out = new Map<string, Float32Array>();
  for (const [M, N, K] of Q_SHAPES) {
    const wq = quantize(Tensor.fromArray(rand(N * K, 7 + N, 0.1), [N, K]), { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: 32 } }, undefined, opts);
    const x = rand(M * K, 3 + M, 2);
    x[1] = 40; // an outlier
    out.set(`qlinear W4g32 ${M}x${N}x${K}`, qlinear(x, packQLinear(wq, opts), rand(N, 5), opts).slice());
  }
  return out;
}

export const INT_CASES: Array<[label: string, wBits: Bits, aBits: Bits, clusters: number, M: number, N: number, K: number]> = [
  ['W4A8', 4, 8, 6, 1, 10, 130], ['W4A8', 4, 8, 6, 5, 10, 130], ['W4A4', 4, 4, 3, 4, 7, 90], ['W8A8', 8, 8, 4, 9, 5, 100],
  ['W4A8', 4, 8, 8, 1, 512, 512], ['W4A4', 4, 4, 8, 16, 256, 512],
];

/** Integer × integer `qlinearInt`: per (row × cluster) weights, per-cluster activation codes. */
export function qlinearIntCases(be: Backend | null): Map<string, Float32Array> {
  const opts = be ? { kernels: be.kernels, heap: be.heap } : {};
  const out = new Map<string, Float32Array>();
  for (const [label, bw, ba, k, M, N, K] of INT_CASES) {
    const cm = clusters(K, k, K + bw);
    const wq = quantize(Tensor.fromArray(rand(N * K, 11, 0.1), [N, K]), { bits: bw, symmetric: false, granularity: { kind: 'perRowCluster', clusters: cm } }, undefined, opts);
    const aq = quantize(Tensor.fromArray(rand(M * K, 13, 3), [M, K]), { bits: ba, symmetric: false, granularity: { kind: 'perCluster', clusters: cm } }, undefined, opts);
    out.set(`qlinearInt ${label} ${M}x${N}x${K}`, qlinearInt(aq, packQLinear(wq, opts), rand(N, 9), opts).slice());
  }
  return out;
}

/**
 * Decode attention over a packed KV cache (12 heads × 64, 96 cached keys, 4 clusters per head as RPTQ's R2/R3), u4 and
 * u3: attentionPacked, and the same backend's dequantizeUnpack + attention it must equal bit for bit; and over a bf16
 * cache, attentionBf16 against widening + attention.
 */
export function packedAttention(be: Backend): Map<string, [Float32Array, Float32Array]> {
  const k = be.kernels, H = 12, hs = 64, w = H * hs, L = 96, out = new Map<string, [Float32Array, Float32Array]>();
  for (const format of ['u4', 'u3'] as const) {
    const rb = packedRowBytes(format, w), qmax = format === 'u4' ? 15 : 7;
    const offsets = Int32Array.from({ length: 4 * H + 1 }, (_, i) => Math.round((i * w) / (4 * H)));
    const rows = (seed: number) => ({
      format, data: Uint8Array.from({ length: L * rb }, (_, i) => ((i + seed) * 2654435761) >>> 24), nSeg: 4 * H, offsets,
      scale: rand(4 * H, seed).map((v) => 0.01 + Math.abs(v)), zero: Uint8Array.from({ length: 4 * H }, (_, i) => (i * 5 + seed) % (qmax + 1)),
    });
    const kc = rows(1), vc = rows(2), q = rand(w, 3);
    const got = new Float32Array(w), want = new Float32Array(w), kf = new Float32Array(L * w), vf = new Float32Array(L * w);
    k.attentionPacked(H, hs, 1, L, q, w, kc, vc, got, w, L - 1, null, 255);
    k.dequantizeUnpack(L, w, format, kc.data, kc.nSeg, offsets, kc.scale, kc.zero, 1, kf);
    k.dequantizeUnpack(L, w, format, vc.data, vc.nSeg, offsets, vc.scale, vc.zero, 1, vf);
    k.attention(H, hs, 1, L, q, w, kf, w, vf, want, w, L - 1, null, 255);
    out.set(`attentionPacked ${format}`, [got, want]);
  }
  // a bf16 cache (recipe.kvFloat 'bf16'): attentionBf16 against toBf16 → widen (bits << 16) → attention
  const q = rand(w, 4), kf = rand(L * w, 5), vf = rand(L * w, 6), kb = new Uint16Array(L * w), vb = new Uint16Array(L * w);
  k.toBf16(L * w, kf, kb);
  k.toBf16(L * w, vf, vb);
  const widen = (b: Uint16Array) => { const f = new Float32Array(b.length), u = new Uint32Array(f.buffer); b.forEach((x, i) => { u[i] = x << 16; }); return f; };
  const got = new Float32Array(w), want = new Float32Array(w);
  k.attentionBf16(H, hs, 1, L, q, w, kb, w, vb, got, w, L - 1, null, 255);
  k.attention(H, hs, 1, L, q, w, widen(kb), w, widen(vb), want, w, L - 1, null, 255);
  out.set('attentionBf16', [got, want]);
  return out;
}

/** Every workload on the current backend (public ops and `qlinear` defaults: the backend `init()` chose). */
export function allWorkloads(): Map<string, Float32Array> {
  return new Map([...f32Ops(), ...qlinearW4(null), ...qlinearIntCases(null)]);
}

/**
 * The library clamps threads to navigator.hardwareConcurrency: on a 1-CPU machine the page and its
 * module worker report 2 (the getter of `nav`'s prototype is replaced) so the 2-thread pool is still tested.
 */
export function atLeastTwoCpus(nav: object): void {
  if ((nav as { hardwareConcurrency: number }).hardwareConcurrency < 2) {
    Object.defineProperty(Object.getPrototypeOf(nav), 'hardwareConcurrency', { get: () => 2, configurable: true });
  }
}

/**
 * The RPTQ browser check: W4A4KV on the tiny OPT fixture, with calibration ids, a probe and a greedy prompt. The
 * runner (Node, simd backend) quantizes with it and serves the file, the probe's logits and the greedy tokens; the
 * page quantizes again and runs the served file.
 */
export const RPTQ_CASE = {
  preset: 'W4A4KV' as const,
  overrides: { calibration: { samples: 4, seqLen: 32, seed: 0 }, kmeans: { nInit: 2, seed: 0 } },
  probe: [2, 17, 301, 44, 9, 250, 133, 7, 480, 61, 5, 399],
  prompt: [2, 88, 14, 203],
  steps: 10,
};

/** RPTQ_CASE's calibration text: `n` ids below `vocab` (LCG). */
export function rptqCalibration(n: number, vocab: number): Int32Array {
  let s = 12345;
  return Int32Array.from({ length: n }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return 4 + (s % (vocab - 4)); });
}
