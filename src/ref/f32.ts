// Reference f32 kernels in plain TypeScript loops: the oracle for assembly/f32.ts.
// Accumulation is in f64 and rounded once to f32, so the reference is at least as accurate as
// any SIMD summation order; conformance tolerances are stated relative to Σ|a·b|.

import type { F32Kernels } from '../kernels/f32.js';
import { roundHalfEven } from '../quant/round.js';
import { refQuant } from './quant.js';
import { bf16ToF32, f32ToBf16Bits } from '../io/tensor.js';

/** torch.finfo(float32).min: the score HF gives masked keys. */
const F32_MIN = -3.4028234663852886e38;


/** erf(x), Numerical Recipes' erfc Chebyshev fit (fractional error < 1.2e-7); same formula in assembly/f32.ts. */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

export const refF32: F32Kernels = {
  sgemmNT(M, N, K, a, lda, b, ldb, c, ldc, bias) {
    for (let m = 0; m < M; m++) {
      const ao = m * lda;
      for (let n = 0; n < N; n++) {
        const bo = n * ldb;
        let s = 0;
        for (let k = 0; k < K; k++) s += a[ao + k]! * b[bo + k]!;
        c[m * ldc + n] = s + (bias ? bias[n]! : 0);
      }
    }
  },

  sgemmNN(M, N, K, a, lda, b, ldb, c, ldc, bias) {
    const acc = new Float64Array(N);
    for (let m = 0; m < M; m++) {
      acc.fill(0);
      const ao = m * lda;
      for (let k = 0; k < K; k++) {
        const av = a[ao + k]!, bo = k * ldb;
        for (let n = 0; n < N; n++) acc[n]! += av * b[bo + n]!;
      }
      for (let n = 0; n < N; n++) c[m * ldc + n] = acc[n]! + (bias ? bias[n]! : 0);
    }
  },

  add(n, a, b, out) {
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
  },

  mul(n, a, b, out) {
    for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
  },

  addRow(rows, cols, x, row, out) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) out[o + c] = x[o + c]! + row[c]!;
    }
  },

  relu(n, x, out) {
    for (let i = 0; i < n; i++) out[i] = Math.max(x[i]!, 0);
  },

  gelu(n, x, out) {
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      out[i] = 0.5 * v * (1 + erf(v * Math.SQRT1_2));
    }
  },

  layerNorm(rows, cols, x, gamma, beta, eps, out) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let i = 0; i < cols; i++) s += x[o + i]!;
      const mean = s / cols;
      let ss = 0;
      for (let i = 0; i < cols; i++) { const d = x[o + i]! - mean; ss += d * d; }
      const rstd = 1 / Math.sqrt(ss / cols + eps);
      for (let i = 0; i < cols; i++) {
        let y = (x[o + i]! - mean) * rstd;
        if (gamma) y *= gamma[i]!;
        if (beta) y += beta[i]!;
        out[o + i] = y;
      }
    }
  },

  softmax(rows, cols, x, out, causal) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const n = causal < 0 ? cols : Math.min(cols, r + causal + 1);
      let mx = -Infinity;
      for (let i = 0; i < n; i++) { const v = x[o + i]!; if (v > mx || v !== v) mx = v; }
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(x[o + i]! - mx);
      for (let i = 0; i < n; i++) out[o + i] = Math.exp(x[o + i]! - mx) / s;
      for (let i = n; i < cols; i++) out[o + i] = 0;
    }
  },

  attention(H, hs, T, L, q, ldq, k, ldk, v, out, ldo, causal, keyMask, levels) {
    // the unfused decoder path, head by head: scores, mask, causal softmax, probability grid, P·V
    const att = new Float32Array(T * L), f = Math.fround, st = f(1 / levels);
    for (let h = 0; h < H; h++) {
      const ho = h * hs;
      this.sgemmNT(T, L, hs, q.subarray(ho), ldq, k.subarray(ho), ldk, att, L, null);
      if (keyMask) for (let t = 0; t < T; t++) for (let j = 0; j < L; j++) if (!keyMask[j]) att[t * L + j] = F32_MIN;
      this.softmax(T, L, att, att, causal);
      if (levels > 0) for (let i = 0; i < T * L; i++) att[i] = f(roundHalfEven(f(att[i]! * levels)) * st);
      this.sgemmNN(T, hs, L, att, L, v.subarray(ho), ldk, out.subarray(ho), ldo, null);
    }
  },

  attentionPacked(H, hs, T, L, q, ldq, k, v, out, ldo, causal, keyMask, levels) {
    // the unfused path: dequantize both caches to f32 rows, then attention
    const w = H * hs, kf = new Float32Array(L * w), vf = new Float32Array(L * w);
    refQuant.dequantizeUnpack(L, w, k.format, k.data, k.nSeg, k.offsets, k.scale, k.zero, 1, kf);
    refQuant.dequantizeUnpack(L, w, v.format, v.data, v.nSeg, v.offsets, v.scale, v.zero, 1, vf);
    refF32.attention(H, hs, T, L, q, ldq, kf, w, vf, out, ldo, causal, keyMask, levels);
  },

  attentionBf16(H, hs, T, L, q, ldq, k, ldk, v, out, ldo, causal, keyMask, levels) {
    // the unfused path: widen both caches to f32 (exact), then attention
    const n = (L - 1) * ldk + H * hs;
    refF32.attention(H, hs, T, L, q, ldq, bf16ToF32(k.subarray(0, n)), ldk, bf16ToF32(v.subarray(0, n)), out, ldo, causal, keyMask, levels);
  },

  toBf16(n, x, out) {
    for (let i = 0; i < n; i++) out[i] = f32ToBf16Bits(x[i]!);
  },

  gatherRows(n, dim, table, ids, out) {
    for (let i = 0; i < n; i++) out.set(table.subarray(ids[i]! * dim, ids[i]! * dim + dim), i * dim);
  },

  argmax(rows, cols, x, out) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let best = 0, bv = x[o]!;
      if (bv === bv) {
        for (let i = 1; i < cols; i++) {
          const v = x[o + i]!;
          if (v !== v) { best = i; break; }
          if (v > bv) { bv = v; best = i; }
        }
      }
      out[r] = best;
    }
  },

  peakF32(iters, fused) {
    const f = Math.fround, m = f(0.999999), a = f(1e-7);
    const x: number[] = [];
    for (let j = 0; j < 12; j++) {
      let v = f(j / 10);
      for (let i = 0; i < iters; i++) v = fused ? f(v * m + a) : j < 6 ? f(v + a) : f(v * m);
      x.push(v);
    }
    // the lane-sum order of assembly/f32.ts peak_f32 (4 identical lanes)
    const p = (u: number, w: number) => f(u + w);
    const s = p(p(p(x[0]!, x[1]!), p(x[2]!, x[3]!)), p(x[4]!, x[5]!));
    const t = p(p(p(x[6]!, x[7]!), p(x[8]!, x[9]!)), p(x[10]!, x[11]!));
    const u = p(s, t);
    return p(p(u, u), p(u, u));
  },
};
