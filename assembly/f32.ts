// f32 kernels for the float decoder: GEMM/GEMV, elementwise ops, LayerNorm, softmax, gather, argmax.
// Row-major throughout; leading dimensions (lda, ldb, ldc) are in elements. Twins: src/ref/f32.ts.

import { madd, hsum } from './simd';
import { touchStart, touchStream } from './touch';
import { codes16, columnParams, deq4, dequantCols } from './codes';

// ---------------------------------------------------------------------------------------------
// GEMM, B transposed ("NT"): C[m, n] = Σ_k A[m, k] · B[n, k] (+ bias[n]).
// This is the Linear layer with HF weights [out, in], and Q·Kᵀ in attention.
// Micro-kernel: 2 rows of A × 4 rows of B, dot-product form, 8 v128 accumulators (plus 6 loaded
// vectors = 14 of x64's 16 xmm registers). Lane layout per accumulator: lanes hold partial sums of
// k ≡ 0,1,2,3 (mod 4); one horizontal sum at the end. N is blocked so a block of B stays in L2.
// ---------------------------------------------------------------------------------------------

const L2_BLOCK_BYTES: i32 = 256 * 1024;

/** Dot product of `K` floats at a and b (SIMD main loop + shared scalar tail). */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, K: i32): f32 {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const o = <usize>k << 2;
    acc0 = madd(v128.load(a + o), v128.load(b + o), acc0);
    acc1 = madd(v128.load(a + o + 16), v128.load(b + o + 16), acc1);
  }
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    acc0 = madd(v128.load(a + o), v128.load(b + o), acc0);
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; k < K; k++) s += load<f32>(a + (<usize>k << 2)) * load<f32>(b + (<usize>k << 2));
  return s;
}

// @ts-ignore: decorator
@inline function biasAt(bias: usize, n: i32): f32 {
  return bias ? load<f32>(bias + (<usize>n << 2)) : 0;
}

/** One row of A against 4 rows of B. */
// @ts-ignore: decorator
@inline function nt1x4(a: usize, b0: usize, ldb4: usize, K: i32, c: usize, bias: usize, n: i32): void {
  const b1 = b0 + ldb4, b2 = b1 + ldb4, b3 = b2 + ldb4;
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    const x = v128.load(a + o);
    c0 = madd(x, v128.load(b0 + o), c0);
    c1 = madd(x, v128.load(b1 + o), c1);
    c2 = madd(x, v128.load(b2 + o), c2);
    c3 = madd(x, v128.load(b3 + o), c3);
  }
  let s0 = hsum(c0), s1 = hsum(c1), s2 = hsum(c2), s3 = hsum(c3);
  for (; k < K; k++) {
    const o = <usize>k << 2;
    const x = load<f32>(a + o);
    s0 += x * load<f32>(b0 + o);
    s1 += x * load<f32>(b1 + o);
    s2 += x * load<f32>(b2 + o);
    s3 += x * load<f32>(b3 + o);
  }
  store<f32>(c, s0 + biasAt(bias, n));
  store<f32>(c, s1 + biasAt(bias, n + 1), 4);
  store<f32>(c, s2 + biasAt(bias, n + 2), 8);
  store<f32>(c, s3 + biasAt(bias, n + 3), 12);
}

/** Two rows of A against 4 rows of B. */
// @ts-ignore: decorator
@inline function nt2x4(a0: usize, a1: usize, b0: usize, ldb4: usize, K: i32, c0p: usize, c1p: usize, bias: usize, n: i32): void {
  const b1 = b0 + ldb4, b2 = b1 + ldb4, b3 = b2 + ldb4;
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
    let w = v128.load(b0 + o);
    c00 = madd(x0, w, c00); c10 = madd(x1, w, c10);
    w = v128.load(b1 + o);
    c01 = madd(x0, w, c01); c11 = madd(x1, w, c11);
    w = v128.load(b2 + o);
    c02 = madd(x0, w, c02); c12 = madd(x1, w, c12);
    w = v128.load(b3 + o);
    c03 = madd(x0, w, c03); c13 = madd(x1, w, c13);
  }
  let s00 = hsum(c00), s01 = hsum(c01), s02 = hsum(c02), s03 = hsum(c03);
  let s10 = hsum(c10), s11 = hsum(c11), s12 = hsum(c12), s13 = hsum(c13);
  for (; k < K; k++) {
    const o = <usize>k << 2;
    const x0 = load<f32>(a0 + o), x1 = load<f32>(a1 + o);
    const w0 = load<f32>(b0 + o), w1 = load<f32>(b1 + o), w2 = load<f32>(b2 + o), w3 = load<f32>(b3 + o);
    s00 += x0 * w0; s01 += x0 * w1; s02 += x0 * w2; s03 += x0 * w3;
    s10 += x1 * w0; s11 += x1 * w1; s12 += x1 * w2; s13 += x1 * w3;
  }
  const bb0 = biasAt(bias, n), bb1 = biasAt(bias, n + 1), bb2 = biasAt(bias, n + 2), bb3 = biasAt(bias, n + 3);
  store<f32>(c0p, s00 + bb0); store<f32>(c0p, s01 + bb1, 4); store<f32>(c0p, s02 + bb2, 8); store<f32>(c0p, s03 + bb3, 12);
  store<f32>(c1p, s10 + bb0); store<f32>(c1p, s11 + bb1, 4); store<f32>(c1p, s12 + bb2, 8); store<f32>(c1p, s13 + bb3, 12);
}

/** C[M,N] = A[M,K]·B[N,K]ᵀ (+ bias[N]); bias = 0 means none. Leading dims in elements. */
export function sgemm_nt(M: i32, N: i32, K: i32, a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, bias: usize): void {
  const lda4 = <usize>lda << 2, ldb4 = <usize>ldb << 2, ldc4 = <usize>ldc << 2;
  let nc = (L2_BLOCK_BYTES / max(1, K * 4)) & ~3;
  if (nc < 4) nc = 4;
  for (let n0 = 0; n0 < N; n0 += nc) {
    const n1 = min(N, n0 + nc);
    let m = 0;
    for (; m + 2 <= M; m += 2) {
      const a0 = a + <usize>m * lda4, a1 = a0 + lda4;
      const c0 = c + <usize>m * ldc4, c1 = c0 + ldc4;
      let n = n0;
      for (; n + 4 <= n1; n += 4) nt2x4(a0, a1, b + <usize>n * ldb4, ldb4, K, c0 + (<usize>n << 2), c1 + (<usize>n << 2), bias, n);
      for (; n < n1; n++) {
        const bn = b + <usize>n * ldb4, bv = biasAt(bias, n);
        store<f32>(c0 + (<usize>n << 2), dot(a0, bn, K) + bv);
        store<f32>(c1 + (<usize>n << 2), dot(a1, bn, K) + bv);
      }
    }
    for (; m < M; m++) {
      const a0 = a + <usize>m * lda4, c0 = c + <usize>m * ldc4;
      let n = n0;
      for (; n + 4 <= n1; n += 4) nt1x4(a0, b + <usize>n * ldb4, ldb4, K, c0 + (<usize>n << 2), bias, n);
      for (; n < n1; n++) store<f32>(c0 + (<usize>n << 2), dot(a0, b + <usize>n * ldb4, K) + biasAt(bias, n));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// GEMM, B not transposed ("NN"): C[m, n] = Σ_k A[m, k] · B[k, n] (+ bias[n]).
// Used for probabilities·V in attention and for general Tensor.matmul. Outer-product form:
// 4 rows × 8 columns, 8 accumulators; per k two vector loads of B and four splats of A.
// ---------------------------------------------------------------------------------------------

export function sgemm_nn(M: i32, N: i32, K: i32, a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, bias: usize): void {
  const lda4 = <usize>lda << 2, ldb4 = <usize>ldb << 2, ldc4 = <usize>ldc << 2;
  let m = 0;
  for (; m + 4 <= M; m += 4) {
    const a0 = a + <usize>m * lda4, a1 = a0 + lda4, a2 = a1 + lda4, a3 = a2 + lda4;
    const r0 = c + <usize>m * ldc4, r1 = r0 + ldc4, r2 = r1 + ldc4, r3 = r2 + ldc4;
    let n = 0;
    for (; n + 8 <= N; n += 8) {
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
      let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
      let bp = b + (<usize>n << 2);
      for (let k = 0; k < K; k++, bp += ldb4) {
        const o = <usize>k << 2;
        const w0 = v128.load(bp), w1 = v128.load(bp, 16);
        let s = v128.load32_splat(a0 + o);
        c00 = madd(s, w0, c00); c01 = madd(s, w1, c01);
        s = v128.load32_splat(a1 + o);
        c10 = madd(s, w0, c10); c11 = madd(s, w1, c11);
        s = v128.load32_splat(a2 + o);
        c20 = madd(s, w0, c20); c21 = madd(s, w1, c21);
        s = v128.load32_splat(a3 + o);
        c30 = madd(s, w0, c30); c31 = madd(s, w1, c31);
      }
      let bv0 = f32x4.splat(0), bv1 = f32x4.splat(0);
      if (bias) { bv0 = v128.load(bias + (<usize>n << 2)); bv1 = v128.load(bias + (<usize>n << 2), 16); }
      const o = <usize>n << 2;
      v128.store(r0 + o, f32x4.add(c00, bv0)); v128.store(r0 + o, f32x4.add(c01, bv1), 16);
      v128.store(r1 + o, f32x4.add(c10, bv0)); v128.store(r1 + o, f32x4.add(c11, bv1), 16);
      v128.store(r2 + o, f32x4.add(c20, bv0)); v128.store(r2 + o, f32x4.add(c21, bv1), 16);
      v128.store(r3 + o, f32x4.add(c30, bv0)); v128.store(r3 + o, f32x4.add(c31, bv1), 16);
    }
    for (; n < N; n++) {
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      let bp = b + (<usize>n << 2);
      for (let k = 0; k < K; k++, bp += ldb4) {
        const w = load<f32>(bp), o = <usize>k << 2;
        s0 += load<f32>(a0 + o) * w; s1 += load<f32>(a1 + o) * w;
        s2 += load<f32>(a2 + o) * w; s3 += load<f32>(a3 + o) * w;
      }
      const bv = biasAt(bias, n), o = <usize>n << 2;
      store<f32>(r0 + o, s0 + bv); store<f32>(r1 + o, s1 + bv);
      store<f32>(r2 + o, s2 + bv); store<f32>(r3 + o, s3 + bv);
    }
  }
  for (; m < M; m++) {
    const a0 = a + <usize>m * lda4, r0 = c + <usize>m * ldc4;
    let n = 0;
    for (; n + 8 <= N; n += 8) {
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
      let bp = b + (<usize>n << 2);
      for (let k = 0; k < K; k++, bp += ldb4) {
        const s = v128.load32_splat(a0 + (<usize>k << 2));
        c00 = madd(s, v128.load(bp), c00);
        c01 = madd(s, v128.load(bp, 16), c01);
      }
      let bv0 = f32x4.splat(0), bv1 = f32x4.splat(0);
      if (bias) { bv0 = v128.load(bias + (<usize>n << 2)); bv1 = v128.load(bias + (<usize>n << 2), 16); }
      v128.store(r0 + (<usize>n << 2), f32x4.add(c00, bv0));
      v128.store(r0 + (<usize>n << 2), f32x4.add(c01, bv1), 16);
    }
    for (; n < N; n++) {
      let s: f32 = 0;
      let bp = b + (<usize>n << 2);
      for (let k = 0; k < K; k++, bp += ldb4) s += load<f32>(a0 + (<usize>k << 2)) * load<f32>(bp);
      store<f32>(r0 + (<usize>n << 2), s + biasAt(bias, n));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

export function add_f32(n: i32, a: usize, b: usize, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

export function mul_f32(n: i32, a: usize, b: usize, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) * load<f32>(b + o));
  }
}

/** out[r, c] = x[r, c] + row[c] (bias add / broadcast over rows). */
export function add_row_f32(rows: i32, cols: i32, x: usize, row: usize, out: usize): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * (<usize>cols << 2);
    add_f32(cols, x + off, row, out + off);
  }
}

/** ReLU: max(x, 0). NaN propagates (f32x4.max returns NaN if either lane is NaN), like torch.relu. */
export function relu_f32(n: i32, x: usize, out: usize): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.max(v128.load(x + o), z));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(out + o, v != v ? v : (v > 0 ? v : 0));
  }
}

/**
 * erf(x) in f64: Numerical Recipes' erfc Chebyshev fit (fractional error < 1.2e-7),
 * the same formula as the TS twin in src/ref/f32.ts.
 */
function erf64(x: f64): f64 {
  const z = Math.abs(x);
  const t = 1.0 / (1.0 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1.0 - r : r - 1.0;
}

/** GELU (exact, erf form, PyTorch's default): 0.5 · x · (1 + erf(x / √2)). */
export function gelu_f32(n: i32, x: usize, out: usize): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    const v = <f64>load<f32>(x + o);
    store<f32>(out + o, <f32>(0.5 * v * (1.0 + erf64(v * 0.7071067811865476))));
  }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dim: y = (x − mean) / sqrt(var + eps) · gamma + beta, biased variance
// (torch.nn.functional.layer_norm). gamma/beta = 0 means none. Two passes: mean, then Σ(x−mean)².
// ---------------------------------------------------------------------------------------------

export function layer_norm_f32(rows: i32, cols: i32, x: usize, gamma: usize, beta: usize, eps: f32, out: usize): void {
  const inv = <f32>1.0 / <f32>cols;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * (<usize>cols << 2), yr = out + <usize>r * (<usize>cols << 2);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= cols; i += 4) acc = f32x4.add(acc, v128.load(xr + (<usize>i << 2)));
    let s = hsum(acc);
    for (; i < cols; i++) s += load<f32>(xr + (<usize>i << 2));
    const mean = s * inv;
    const mv = f32x4.splat(mean);
    acc = f32x4.splat(0);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const d = f32x4.sub(v128.load(xr + (<usize>i << 2)), mv);
      acc = madd(d, d, acc);
    }
    let ss = hsum(acc);
    for (; i < cols; i++) { const d = load<f32>(xr + (<usize>i << 2)) - mean; ss += d * d; }
    const rstd = <f32>1.0 / Mathf.sqrt(ss * inv + eps);
    const rv = f32x4.splat(rstd);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = <usize>i << 2;
      let y = f32x4.mul(f32x4.sub(v128.load(xr + o), mv), rv);
      if (gamma) y = f32x4.mul(y, v128.load(gamma + o));
      if (beta) y = f32x4.add(y, v128.load(beta + o));
      v128.store(yr + o, y);
    }
    for (; i < cols; i++) {
      const o = <usize>i << 2;
      let y = (load<f32>(xr + o) - mean) * rstd;
      if (gamma) y *= load<f32>(gamma + o);
      if (beta) y += load<f32>(beta + o);
      store<f32>(yr + o, y);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Softmax over the last dim, optionally causal: with causal >= 0, row r keeps columns
// c <= r + causal and writes 0 to the rest (so r + causal is the last visible key position).
// Max-subtracted; a fully masked row is impossible (column 0 is always visible when causal >= 0).
// ---------------------------------------------------------------------------------------------

/** y[0..n) = softmax(x[0..n)), max-subtracted (a NaN is taken as the max); x = y is allowed. */
// @ts-ignore: decorator
@inline function softmaxRow(x: usize, y: usize, n: i32): void {
  let mx: f32 = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > mx || v != v) mx = v;
  }
  let s: f32 = 0;
  for (let i = 0; i < n; i++) {
    const e = Mathf.exp(load<f32>(x + (<usize>i << 2)) - mx);
    store<f32>(y + (<usize>i << 2), e);
    s += e;
  }
  const inv = <f32>1.0 / s;
  for (let i = 0; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) * inv);
}

export function softmax_f32(rows: i32, cols: i32, x: usize, out: usize, causal: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * (<usize>cols << 2), yr = out + <usize>r * (<usize>cols << 2);
    const n = causal < 0 ? cols : min(cols, r + causal + 1);
    softmaxRow(xr, yr, n);
    for (let i = n; i < cols; i++) store<f32>(yr + (<usize>i << 2), 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Fused multi-head attention over a KV cache (decode and prefill of one sequence), one call per
// layer instead of 3 kernel calls per head. For head h and query row t:
//   s_j = q[t, h]·k[j, h] for visible keys j < n_t (n_t = min(L, causal + t + 1), or L when causal < 0),
//         −3.4028235e38 (f32 min, HF's mask value) where keyMask[j] = 0;
//   p = softmax(s) (max-subtracted, as softmax_f32); with levels > 0, p ← round_half_even(p·levels)·(1/levels)
//         (RPTQ's fixed probability grid, in f32 as the quantized decoder rounds);
//   out[t, h] = Σ_j p_j·v[j, h].
// Rows: q/out T rows of H·hs values at strides ldq/ldo; k/v L rows at stride ldk. att: H·L f32 of
// scratch (head h uses att + h·L, so a call split over heads needs no shared scratch). The cache is
// walked row by row for all heads at once: in decode it is not cache-resident (the weights stream
// through between layers), and one forward stream reads it ~3× faster than 64-float pieces 3 KB
// apart per head (OPT-125m at context 128, measured inside the decoder).
// Twin: src/ref/f32.ts attention (sgemmNT → mask → softmax → grid → sgemmNN, the unfused path).
// ---------------------------------------------------------------------------------------------

export function attention_f32(H: i32, hs: i32, T: i32, L: i32, q: usize, ldq: i32, k: usize, ldk: i32, v: usize,
  out: usize, ldo: i32, causal: i32, keyMask: usize, levels: i32, att: usize): void {
  const ldk4 = <usize>ldk << 2;
  attentionCore(H, hs, T, L, q, ldq, k, ldk4, v, ldk4, out, ldo, causal, keyMask, levels, att, 0, 0, 0, 0, 0);
}

// Attention over a bit-packed KV cache (the presets with a low-bit KV cache, src/models/opt/quantized.ts):
// the same result as dequantize_unpack of the L rows of K and V followed by attention_f32, bit for bit,
// without the f32 copy of the cache. Each cache row is dequantized when the walk reaches it, for this
// call's columns only (the value dequantize_unpack writes): in registers inside the dot and the P·V
// update when hs and the first column are multiples of 16, otherwise into an L1-resident row of scratch
// (assembly/codes.ts dequantCols); the walk, the dots and the accumulation are attention_f32's. The
// page-ahead touches cover the packed rows (test/touch.conformance.test.ts).
// kv (14 i32): K's packed rows, row bytes, bits, nSeg, offsets, scale, zero (u8), then V's seven.
// q0: q of the whole call; a thread's call on heads h0.. has q advanced by h0·hs floats, so its first
// cache column is c0 = (q − q0) / 4 (a column index would not do: the thread pool advances only non-zero
// arguments). scratch: 5·H·hs f32 (the row, then per-column scale and zero of K, then of V).
export function attention_packed(H: i32, hs: i32, T: i32, L: i32, q: usize, ldq: i32, q0: usize, kv: usize,
  out: usize, ldo: i32, causal: i32, keyMask: usize, levels: i32, att: usize, scratch: usize): void {
  const w = H * hs, w4 = <usize>w << 2, c0 = <i32>((q - q0) >> 2);
  const kcs = scratch + w4, kcz = kcs + w4, vcs = kcz + w4, vcz = vcs + w4;
  columnParams(load<i32>(kv, 12), load<i32>(kv, 16), load<i32>(kv, 20), load<i32>(kv, 24), c0, w, kcs, kcz);
  columnParams(load<i32>(kv, 40), load<i32>(kv, 44), load<i32>(kv, 48), load<i32>(kv, 52), c0, w, vcs, vcz);
  attentionCore(H, hs, T, L, q, ldq, load<i32>(kv), load<i32>(kv, 4), load<i32>(kv, 28), load<i32>(kv, 32), out, ldo,
    causal, keyMask, levels, att, load<i32>(kv, 8), load<i32>(kv, 36), c0, scratch, kcs);
}

// Attention over a bf16 cache (the float-KV recipes with kvFloat 'bf16', src/models/opt/quantized.ts): k/v are L
// rows of bf16 bits (the upper half of an f32) at a stride of ldk elements, read at half the bytes of an f32 cache.
// The same result, bit for bit, as widening both to f32 (bits << 16, exact) and attention_f32: each row is widened
// for this call's H·hs columns into `row` (H·hs f32 of scratch, L1-resident) when the walk reaches it, and the dots
// and the accumulation are attention_f32's. scratch: the row (H·hs f32), then with several query rows (prefill) the
// call's columns of all L rows of K and then of V, widened once (2·L·H·hs f32), on which attention_f32's walk runs
// (row by row, every query row would widen every key row again: OPT-125m, 128-token prefill, 27 → 38 ms of attention).
// A thread's call on heads h0.. has q, k, v, out, att and scratch advanced.
export function attention_bf16(H: i32, hs: i32, T: i32, L: i32, q: usize, ldq: i32, k: usize, ldk: i32, v: usize,
  out: usize, ldo: i32, causal: i32, keyMask: usize, levels: i32, att: usize, scratch: usize): void {
  const ldk2 = <usize>ldk << 1;
  if (T == 1) {
    attentionCore(H, hs, T, L, q, ldq, k, ldk2, v, ldk2, out, ldo, causal, keyMask, levels, att, 16, 16, 0, scratch, 0);
    return;
  }
  const w = H * hs, w4 = <usize>w << 2, kw = scratch + w4, vw = kw + <usize>L * w4;
  for (let j = 0; j < L; j++) {
    bf16Row(k + <usize>j * ldk2, w, kw + <usize>j * w4);
    bf16Row(v + <usize>j * ldk2, w, vw + <usize>j * w4);
  }
  attentionCore(H, hs, T, L, q, ldq, kw, w4, vw, w4, out, ldo, causal, keyMask, levels, att, 0, 0, 0, 0, 0);
}

// w bf16 values at src widened to f32 at dst (f32 bits = bf16 bits << 16, exact): 8 per step, one i16 interleave
// with zero (punpcklwd / punpckhwd) per 4 values.
// @ts-ignore: decorator
@inline function bf16Row(src: usize, w: i32, dst: usize): void {
  const z = i32x4.splat(0);
  let i = 0;
  for (; i + 8 <= w; i += 8) {
    const x = v128.load(src + (<usize>i << 1)), o = dst + (<usize>i << 2);
    v128.store(o, i8x16.shuffle(z, x, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23));
    v128.store(o, i8x16.shuffle(z, x, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31), 16);
  }
  for (; i < w; i++) store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
}

// f32 bits u → bf16 bits as src/io/tensor.ts f32ToBf16Bits (the safetensors BF16 encoder): (u + 0x7fff +
// ((u >> 16) & 1)) >> 16, round half to even on the dropped 16 bits (PyTorch's round_to_nearest_even; ±inf stays,
// overflow rounds to ±inf); a NaN keeps its sign and top payload bits and is made quiet: (u >> 16) | 0x40.
// @ts-ignore: decorator
@inline function bf16x4(u: v128): v128 {
  const r = i32x4.shr_u(i32x4.add(u, i32x4.add(i32x4.splat(0x7fff), v128.and(i32x4.shr_u(u, 16), i32x4.splat(1)))), 16);
  return v128.bitselect(v128.or(i32x4.shr_u(u, 16), i32x4.splat(0x40)), r, f32x4.ne(u, u));
}

/** out[i] = bf16 bits of x[i] (bf16x4's rounding), 8 per step. Twin: src/ref/f32.ts toBf16. */
export function f32_to_bf16(n: i32, x: usize, out: usize): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a = x + (<usize>i << 2);
    v128.store(out + (<usize>i << 1), i16x8.narrow_i32x4_u(bf16x4(v128.load(a)), bf16x4(v128.load(a, 16))));
  }
  for (; i < n; i++) {
    const u = load<u32>(x + (<usize>i << 2)), f = reinterpret<f32>(u);
    store<u16>(out + (<usize>i << 1), <u16>(f != f ? (u >> 16) | 0x40 : (u + 0x7fff + ((u >> 16) & 1)) >> 16));
  }
}

// dot(a, dequantCols(row's columns col .. col + K)) for K a multiple of 16 and col a multiple of 16: dot's
// accumulators and order (acc0 lanes k..k+3, acc1 k+4..k+7 per 8), the values dequantized in registers.
// @ts-ignore: decorator
@inline function dotPacked(a: usize, bits: i32, row: usize, col: i32, K: i32, ps: usize, pz: usize): f32 {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  for (let k = 0; k < K; k += 16) {
    const c = codes16(bits, row, (col + k) >> 4), o = <usize>k << 2;
    acc0 = madd(v128.load(a + o), deq4(c, 0, ps + o, pz + o), acc0);
    acc1 = madd(v128.load(a + o, 16), deq4(c, 1, ps + o, pz + o), acc1);
    acc0 = madd(v128.load(a + o, 32), deq4(c, 2, ps + o, pz + o), acc0);
    acc1 = madd(v128.load(a + o, 48), deq4(c, 3, ps + o, pz + o), acc1);
  }
  return hsum(f32x4.add(acc0, acc1));
}

// k/v: row j at k + j·kStride (bytes). kBits = vBits = 0: f32 rows, head h at column h·hs. 16: bf16 rows, head h
// at column h·hs, widened into `row`. Otherwise packed rows of kBits/vBits codes, dequantized for columns
// c0 .. c0 + H·hs into `row` through the per-column parameters at cs (K scale, K zero, V scale, V zero, H·hs each).
function attentionCore(H: i32, hs: i32, T: i32, L: i32, q: usize, ldq: i32, k: usize, kStride: usize, v: usize, vStride: usize,
  out: usize, ldo: i32, causal: i32, keyMask: usize, levels: i32, att: usize,
  kBits: i32, vBits: i32, c0: i32, row: usize, cs: usize): void {
  const ldq4 = <usize>ldq << 2, ldo4 = <usize>ldo << 2, hs4 = <usize>hs << 2, L4 = <usize>L << 2, w = H * hs, w4 = <usize>w << 2;
  const lv = <f32>levels, st = <f32>1.0 / lv;
  // packed K and V with whole 16-code runs per head (hs and c0 multiples of 16, as in every OPT): dequantize in
  // registers inside the dot and the P·V update (the same values in the same order as through `row`)
  const fused = kBits != 0 && kBits < 16 && vBits != 0 && vBits < 16 && (hs & 15) == 0 && (c0 & 15) == 0;
  for (let t = 0; t < T; t++) {
    const qr = q + <usize>t * ldq4, orow = out + <usize>t * ldo4;
    const n = causal < 0 ? L : min(L, causal + t + 1);
    // the cache comes from DRAM in decode: page-ahead touches (assembly/touch.ts) on K and V; OPT-125m
    // at context 128, relaxed, 1 thread: attention 1.09–1.16 → 0.94–1.10 ms per token (alternating runs)
    // (the last row's bytes this call reads: a whole packed row, or its H·hs columns of f32 or bf16)
    const kEnd = n > 0 ? <usize>(n - 1) * kStride + (kBits == 16 ? <usize>w << 1 : kBits != 0 ? kStride : w4) : 0;
    const vEnd = n > 0 ? <usize>(n - 1) * vStride + (vBits == 16 ? <usize>w << 1 : vBits != 0 ? vStride : w4) : 0;
    let tk = touchStart(k), tv = touchStart(v);
    // scores, key rows in order (each row read once, all heads: one forward stream over the cache)
    for (let j = 0; j < n; j++) {
      tk = touchStream(tk, k + <usize>(j + 1) * kStride, k + kEnd);
      let kr = k + <usize>j * kStride;
      const masked = keyMask != 0 && load<u8>(keyMask + <usize>j) == 0;
      if (fused && !masked) {
        for (let h = 0; h < H; h++) store<f32>(att + <usize>h * L4 + (<usize>j << 2), dotPacked(qr + <usize>h * hs4, kBits, kr, c0 + h * hs, hs, cs + <usize>h * hs4, cs + w4 + <usize>h * hs4));
        continue;
      }
      if (kBits == 16 && !masked) { bf16Row(kr, w, row); kr = row; }
      else if (kBits != 0 && !masked) { dequantCols(kBits, kr, c0, w, cs, cs + w4, row); kr = row; }
      for (let h = 0; h < H; h++) {
        const sj = masked ? <f32>-3.4028234663852886e38 : dot(qr + <usize>h * hs4, kr + <usize>h * hs4, hs);
        store<f32>(att + <usize>h * L4 + (<usize>j << 2), sj);
      }
    }
    // softmax per head (max-subtracted, as softmax_f32), then the optional probability grid
    for (let h = 0; h < H; h++) {
      const a = att + <usize>h * L4;
      softmaxRow(a, a, n);
      if (levels > 0) for (let j = 0; j < n; j++) store<f32>(a + (<usize>j << 2), nearest<f32>(load<f32>(a + (<usize>j << 2)) * lv) * st);
    }
    // out[t, h] = Σ_j p_hj·v[j, h], value rows in order, accumulated in the output row (L1-resident)
    for (let h = 0; h < H; h++) memory.fill(orow + <usize>h * hs4, 0, hs4);
    for (let j = 0; j < n; j++) {
      tv = touchStream(tv, v + <usize>(j + 1) * vStride, v + vEnd);
      let vr = v + <usize>j * vStride;
      if (fused) {
        for (let h = 0; h < H; h++) {
          const pj = f32x4.splat(load<f32>(att + <usize>h * L4 + (<usize>j << 2))), oh = orow + <usize>h * hs4;
          const ps = cs + 2 * w4 + <usize>h * hs4;
          for (let d = 0; d < hs; d += 16) {
            const c = codes16(vBits, vr, (c0 + h * hs + d) >> 4), o = <usize>d << 2;
            v128.store(oh + o, madd(pj, deq4(c, 0, ps + o, ps + w4 + o), v128.load(oh + o)));
            v128.store(oh + o, madd(pj, deq4(c, 1, ps + o, ps + w4 + o), v128.load(oh + o, 16)), 16);
            v128.store(oh + o, madd(pj, deq4(c, 2, ps + o, ps + w4 + o), v128.load(oh + o, 32)), 32);
            v128.store(oh + o, madd(pj, deq4(c, 3, ps + o, ps + w4 + o), v128.load(oh + o, 48)), 48);
          }
        }
        continue;
      }
      if (vBits == 16) { bf16Row(vr, w, row); vr = row; }
      else if (vBits != 0) { dequantCols(vBits, vr, c0, w, cs + 2 * w4, cs + 3 * w4, row); vr = row; }
      for (let h = 0; h < H; h++) {
        const pf = load<f32>(att + <usize>h * L4 + (<usize>j << 2)), pj = f32x4.splat(pf);
        const vh = vr + <usize>h * hs4, oh = orow + <usize>h * hs4;
        let d = 0;
        for (; d + 4 <= hs; d += 4) {
          const o = <usize>d << 2;
          v128.store(oh + o, madd(pj, v128.load(vh + o), v128.load(oh + o)));
        }
        for (; d < hs; d++) {
          const o = <usize>d << 2;
          store<f32>(oh + o, load<f32>(oh + o) + pf * load<f32>(vh + o));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Gather and argmax
// ---------------------------------------------------------------------------------------------

/** out[i, :] = table[ids[i], :]. Ids are validated by the TS caller. */
export function gather_rows_f32(n: i32, dim: i32, table: usize, ids: usize, out: usize): void {
  const rowBytes = <usize>dim << 2;
  for (let i = 0; i < n; i++) {
    const id = load<i32>(ids + (<usize>i << 2));
    memory.copy(out + <usize>i * rowBytes, table + <usize>id * rowBytes, rowBytes);
  }
}

/** out[r] = index of the first maximum of row r; a NaN counts as the maximum (torch.argmax). */
export function argmax_f32(rows: i32, cols: i32, x: usize, out: usize): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * (<usize>cols << 2);
    let best = 0;
    let bv = load<f32>(xr);
    if (bv == bv) {
      for (let i = 1; i < cols; i++) {
        const v = load<f32>(xr + (<usize>i << 2));
        if (v != v) { best = i; break; }
        if (v > bv) { bv = v; best = i; }
      }
    }
    store<i32>(out + (<usize>r << 2), best);
  }
}

// ---------------------------------------------------------------------------------------------
// Peak f32 SIMD throughput probe (the benchmark's "fraction of peak" divides by it). No loads,
// 12 independent dependency chains (12 + 2 constants fit x64's 16 xmm registers without spills)
// so the FP ports, not latency, bound it:
//   relaxed build: 12 chains x ← fma(x, m, a)           (2 flops per op, 96 flops per iteration)
//   baseline build: 6 chains x ← x + a, 6 chains y ← y·m (1 flop per op, 48 flops per iteration)
// This is the op mix each build's GEMM runs (fused multiply-add, or independent mul and add).
// Returns the sum of all lanes so the work cannot be optimised away.
// ---------------------------------------------------------------------------------------------

export function peak_f32(iters: i32): f32 {
  const m = f32x4.splat(<f32>0.999999), a = f32x4.splat(<f32>1e-7);
  let x0 = f32x4.splat(0.0), x1 = f32x4.splat(0.1), x2 = f32x4.splat(0.2), x3 = f32x4.splat(0.3);
  let x4 = f32x4.splat(0.4), x5 = f32x4.splat(0.5), y0 = f32x4.splat(0.6), y1 = f32x4.splat(0.7);
  let y2 = f32x4.splat(0.8), y3 = f32x4.splat(0.9), y4 = f32x4.splat(1.0), y5 = f32x4.splat(1.1);
  for (let i = 0; i < iters; i++) {
    if (ASC_FEATURE_RELAXED_SIMD) {
      x0 = madd(x0, m, a); x1 = madd(x1, m, a); x2 = madd(x2, m, a); x3 = madd(x3, m, a);
      x4 = madd(x4, m, a); x5 = madd(x5, m, a); y0 = madd(y0, m, a); y1 = madd(y1, m, a);
      y2 = madd(y2, m, a); y3 = madd(y3, m, a); y4 = madd(y4, m, a); y5 = madd(y5, m, a);
    } else {
      x0 = f32x4.add(x0, a); x1 = f32x4.add(x1, a); x2 = f32x4.add(x2, a);
      x3 = f32x4.add(x3, a); x4 = f32x4.add(x4, a); x5 = f32x4.add(x5, a);
      y0 = f32x4.mul(y0, m); y1 = f32x4.mul(y1, m); y2 = f32x4.mul(y2, m);
      y3 = f32x4.mul(y3, m); y4 = f32x4.mul(y4, m); y5 = f32x4.mul(y5, m);
    }
  }
  const s = f32x4.add(f32x4.add(f32x4.add(x0, x1), f32x4.add(x2, x3)), f32x4.add(x4, x5));
  const t = f32x4.add(f32x4.add(f32x4.add(y0, y1), f32x4.add(y2, y3)), f32x4.add(y4, y5));
  return hsum(f32x4.add(s, t));
}

/** Flops per iteration of peak_f32 in this build. */
export function peak_f32_flops_per_iter(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 96 : 48;
}
