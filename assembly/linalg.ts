// f64 dense linear algebra for GPTQ (arXiv 2210.17323): Cholesky, lower-triangular inverse and the
// upper Cholesky factor of H⁻¹ that IST-DASLab/gptq `fasterquant` gets from torch.linalg.cholesky,
// torch.cholesky_inverse and torch.linalg.cholesky(upper=True) (in float32 there; float64 here).
// Row-major n × n matrices, pointers are byte offsets. Twins: src/ref/linalg.ts.
//
// Blocking: rows are processed in blocks of NB; the bulk of the work (n³/6 multiply-adds in each
// of Cholesky and the inverse) is one "C −= X·Yᵀ" product over rows of X and Y that are contiguous in
// k (dot-product form, like sgemm_nt), K-blocked by KC so a 2 × 4 tile's operands stay in L1/L2.
// Micro-kernel lane layout (f64x2): accumulator lanes hold partial sums of k ≡ 0, 1 (mod 2); one
// horizontal sum per tile per K block.
// Tuning (Node 20, Xeon with FMA, n = 3072): 2 × 4 and 3 × 4 tiles, k unrolled by 2 or 4, KC 128..1024
// and NB 32 or 64 all measure the same within noise, ~8.5e9 multiply-adds/s in the simd build (two
// vector ops per multiply-add: the FP issue rate) and ~10e9/s with relaxed_madd; memory is not the limit.

const NB: i32 = 32; // rows per block (and columns per diagonal-solve block)
const KC: i32 = 256; // k elements per K block: a 2 × 4 tile reads 6 rows × 2 KiB

/** a·b + c on f64x2. Relaxed build: f64x2.relaxed_madd (fused or not, as the engine chooses). */
// @ts-ignore: decorator
@inline function madd2(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f64x2.relaxed_madd(a, b, c);
  return f64x2.add(f64x2.mul(a, b), c);
}

// @ts-ignore: decorator
@inline function hsum2(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

// @ts-ignore: decorator
@inline function at(p: usize, i: i32): usize {
  return p + (<usize>i << 3);
}

/** Σ_{k ∈ [k0, k1)} x[k]·y[k] (f64x2 main loop, shared scalar tail). */
// @ts-ignore: decorator
@inline function dot(x: usize, y: usize, k0: i32, k1: i32): f64 {
  let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
  let k = k0;
  for (; k + 4 <= k1; k += 4) {
    const o = <usize>k << 3;
    s0 = madd2(v128.load(x + o), v128.load(y + o), s0);
    s1 = madd2(v128.load(x + o, 16), v128.load(y + o, 16), s1);
  }
  for (; k + 2 <= k1; k += 2) {
    const o = <usize>k << 3;
    s0 = madd2(v128.load(x + o), v128.load(y + o), s0);
  }
  let s = hsum2(f64x2.add(s0, s1));
  for (; k < k1; k++) s += load<f64>(at(x, k)) * load<f64>(at(y, k));
  return s;
}

/** c[0..3] −= Σ_k x[k]·y_q[k] over k ∈ [k0, k1), for 4 rows y_q = y0 + q·ldy8. */
// @ts-ignore: decorator
@inline function sub1x4(x: usize, y0: usize, ldy8: usize, k0: i32, k1: i32, c: usize): void {
  const y1 = y0 + ldy8, y2 = y1 + ldy8, y3 = y2 + ldy8;
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
  let k = k0;
  for (; k + 2 <= k1; k += 2) {
    const o = <usize>k << 3;
    const u = v128.load(x + o);
    a0 = madd2(u, v128.load(y0 + o), a0);
    a1 = madd2(u, v128.load(y1 + o), a1);
    a2 = madd2(u, v128.load(y2 + o), a2);
    a3 = madd2(u, v128.load(y3 + o), a3);
  }
  let s0 = hsum2(a0), s1 = hsum2(a1), s2 = hsum2(a2), s3 = hsum2(a3);
  if (k < k1) {
    const o = <usize>k << 3, u = load<f64>(x + o);
    s0 += u * load<f64>(y0 + o); s1 += u * load<f64>(y1 + o);
    s2 += u * load<f64>(y2 + o); s3 += u * load<f64>(y3 + o);
  }
  store<f64>(c, load<f64>(c) - s0);
  store<f64>(c, load<f64>(c, 8) - s1, 8);
  store<f64>(c, load<f64>(c, 16) - s2, 16);
  store<f64>(c, load<f64>(c, 24) - s3, 24);
}

/** Two rows x0, x1 against 4 rows of y: 8 f64x2 accumulators + 2 loaded x vectors + 1 y vector. */
// @ts-ignore: decorator
@inline function sub2x4(x0: usize, x1: usize, y0: usize, ldy8: usize, k0: i32, k1: i32, c0: usize, c1: usize): void {
  const y1 = y0 + ldy8, y2 = y1 + ldy8, y3 = y2 + ldy8;
  let a00 = f64x2.splat(0), a01 = f64x2.splat(0), a02 = f64x2.splat(0), a03 = f64x2.splat(0);
  let a10 = f64x2.splat(0), a11 = f64x2.splat(0), a12 = f64x2.splat(0), a13 = f64x2.splat(0);
  let k = k0;
  for (; k + 2 <= k1; k += 2) {
    const o = <usize>k << 3;
    const u0 = v128.load(x0 + o), u1 = v128.load(x1 + o);
    let w = v128.load(y0 + o);
    a00 = madd2(u0, w, a00); a10 = madd2(u1, w, a10);
    w = v128.load(y1 + o);
    a01 = madd2(u0, w, a01); a11 = madd2(u1, w, a11);
    w = v128.load(y2 + o);
    a02 = madd2(u0, w, a02); a12 = madd2(u1, w, a12);
    w = v128.load(y3 + o);
    a03 = madd2(u0, w, a03); a13 = madd2(u1, w, a13);
  }
  let s00 = hsum2(a00), s01 = hsum2(a01), s02 = hsum2(a02), s03 = hsum2(a03);
  let s10 = hsum2(a10), s11 = hsum2(a11), s12 = hsum2(a12), s13 = hsum2(a13);
  if (k < k1) {
    const o = <usize>k << 3;
    const u0 = load<f64>(x0 + o), u1 = load<f64>(x1 + o);
    const w0 = load<f64>(y0 + o), w1 = load<f64>(y1 + o), w2 = load<f64>(y2 + o), w3 = load<f64>(y3 + o);
    s00 += u0 * w0; s01 += u0 * w1; s02 += u0 * w2; s03 += u0 * w3;
    s10 += u1 * w0; s11 += u1 * w1; s12 += u1 * w2; s13 += u1 * w3;
  }
  store<f64>(c0, load<f64>(c0) - s00); store<f64>(c0, load<f64>(c0, 8) - s01, 8);
  store<f64>(c0, load<f64>(c0, 16) - s02, 16); store<f64>(c0, load<f64>(c0, 24) - s03, 24);
  store<f64>(c1, load<f64>(c1) - s10); store<f64>(c1, load<f64>(c1, 8) - s11, 8);
  store<f64>(c1, load<f64>(c1, 16) - s12, 16); store<f64>(c1, load<f64>(c1, 24) - s13, 24);
}

/**
 * C[m, j] −= Σ_k X[m, k]·Y[j, k] for m < M, j < N, k ∈ [start(j), K): start(j) = 0, or with `tri`
 * start(j) = j (Y[j, k] is then only read on and above its diagonal). ld* in elements.
 * Tiles of 2 rows × 4 columns; for a 4-column group at j0 the `tri` head k ∈ [j, j0 + 4) is done
 * scalar first, so the vector loop starts at j0 + 4 for all four columns.
 */
function gemm_nt_sub(M: i32, N: i32, K: i32, x: usize, ldx: i32, y: usize, ldy: i32, c: usize, ldc: i32, tri: bool): void {
  const ldx8 = <usize>ldx << 3, ldy8 = <usize>ldy << 3, ldc8 = <usize>ldc << 3;
  const N4 = N & ~3;
  if (tri) {
    for (let j = 0; j < N; j++) {
      const g = j < N4 ? (j & ~3) + 4 : j + 1; // end of j's column group
      const kEnd = min(g, K);
      const yj = y + <usize>j * ldy8;
      for (let m = 0; m < M; m++) {
        const xm = x + <usize>m * ldx8;
        let s: f64 = 0;
        for (let k = j; k < kEnd; k++) s += load<f64>(at(xm, k)) * load<f64>(at(yj, k));
        const cp = at(c + <usize>m * ldc8, j);
        store<f64>(cp, load<f64>(cp) - s);
      }
    }
  }
  for (let kb = 0; kb < K; kb += KC) {
    const kb1 = min(K, kb + KC);
    for (let j = 0; j < N4; j += 4) {
      const s = tri ? max(kb, j + 4) : kb;
      if (s >= kb1) continue;
      const yj = y + <usize>j * ldy8;
      let m = 0;
      for (; m + 2 <= M; m += 2) {
        const x0 = x + <usize>m * ldx8, c0 = at(c + <usize>m * ldc8, j);
        sub2x4(x0, x0 + ldx8, yj, ldy8, s, kb1, c0, c0 + ldc8);
      }
      if (m < M) sub1x4(x + <usize>m * ldx8, yj, ldy8, s, kb1, at(c + <usize>m * ldc8, j));
    }
    for (let j = N4; j < N; j++) {
      const s = tri ? max(kb, j + 1) : kb;
      if (s >= kb1) continue;
      const yj = y + <usize>j * ldy8;
      for (let m = 0; m < M; m++) {
        const cp = at(c + <usize>m * ldc8, j);
        store<f64>(cp, load<f64>(cp) - dot(x + <usize>m * ldx8, yj, s, kb1));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cholesky (torch.linalg.cholesky): A = L·Lᵀ, L lower with positive diagonal.
// Left-looking by blocks of NB rows I = [i0, i1): for each column block J = [j0, j1) ⊆ [0, i1),
//   A[I, J] −= L[I, 0:j0]·L[J, 0:j0]ᵀ                       (gemm_nt_sub, K = j0)
//   L[i, j] = (A[i, j] − L[i, j0:j]·L[j, j0:j]) / L[j, j]   (in-block solve, j in order)
// and on the diagonal block L[i, i] = √(A[i, i] − L[i, i0:i]·L[i, i0:i]), rows in order.
// ---------------------------------------------------------------------------------------------

/**
 * In-place lower Cholesky factor of the n × n matrix at `a` (only its lower triangle is read); the
 * strict upper triangle is zeroed. Returns -1, or the first row (in order) whose pivot is not
 * positive and finite; `a` is then partially overwritten. n³/6 multiply-adds.
 */
export function cholesky_f64(n: i32, a: usize): i32 {
  const n8 = <usize>n << 3;
  for (let i0 = 0; i0 < n; i0 += NB) {
    const i1 = min(n, i0 + NB), ib = i1 - i0;
    const rI = a + <usize>i0 * n8;
    for (let j0 = 0; j0 <= i0; j0 += NB) {
      const j1 = min(i1, j0 + NB), jb = j1 - j0;
      if (j0 > 0) gemm_nt_sub(ib, jb, j0, rI, n, a + <usize>j0 * n8, n, at(rI, j0), n, false);
      if (j0 < i0) {
        for (let i = i0; i < i1; i++) {
          const ri = a + <usize>i * n8;
          for (let j = j0; j < j1; j++) {
            const rj = a + <usize>j * n8;
            const v = load<f64>(at(ri, j)) - dot(ri, rj, j0, j);
            store<f64>(at(ri, j), v / load<f64>(at(rj, j)));
          }
        }
      } else {
        for (let i = i0; i < i1; i++) {
          const ri = a + <usize>i * n8;
          for (let j = i0; j <= i; j++) {
            const rj = a + <usize>j * n8;
            const v = load<f64>(at(ri, j)) - dot(ri, rj, i0, j);
            if (j == i) {
              if (!(v > 0) || v == Infinity) return i;
              store<f64>(at(ri, i), Math.sqrt(v));
            } else {
              store<f64>(at(ri, j), v / load<f64>(at(rj, j)));
            }
          }
          memory.fill(at(ri, i + 1), 0, <usize>(n - i - 1) << 3);
        }
      }
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Lower-triangular inverse M = L⁻¹: row i of M is (e_i − Σ_{k<i} L[i,k]·M[k, :]) / L[i,i].
// By blocks of NB rows I = [i0, i1), with Mᵀ kept in the (free) strict upper triangle so that
// M[k, j] for fixed j is the contiguous row a[j, j:]:
//   T[i, j] = −Σ_{k=j}^{i0−1} L[i, k]·M[k, j]       (gemm_nt_sub with tri, K = i0; T in scratch)
//   T[i, :] −= Σ_{k=i0}^{i−1} L[i, k]·M[k, :]        (in-block axpys, rows in order)
//   M[i, 0:i+1] = (T[i, 0:i+1] + e_i) / L[i, i]
// then the block's columns of Mᵀ are written into the upper triangle. n³/6 multiply-adds.
// ---------------------------------------------------------------------------------------------

/** y[0:len] −= c·x[0:len] (f64x2 main loop, shared scalar tail). */
// @ts-ignore: decorator
@inline function axpy_sub(len: i32, c: f64, x: usize, y: usize): void {
  const cv = f64x2.splat(c);
  let j = 0;
  for (; j + 4 <= len; j += 4) {
    const o = <usize>j << 3;
    v128.store(y + o, f64x2.sub(v128.load(y + o), f64x2.mul(cv, v128.load(x + o))));
    v128.store(y + o, f64x2.sub(v128.load(y + o, 16), f64x2.mul(cv, v128.load(x + o, 16))), 16);
  }
  for (; j < len; j++) store<f64>(at(y, j), load<f64>(at(y, j)) - c * load<f64>(at(x, j)));
}

/** The blocked inverse; on return the lower triangle holds M and the strict upper triangle Mᵀ. */
function trinv_blocked(n: i32, a: usize, scratch: usize): void {
  const n8 = <usize>n << 3;
  for (let i0 = 0; i0 < n; i0 += NB) {
    const i1 = min(n, i0 + NB), ib = i1 - i0;
    const rI = a + <usize>i0 * n8;
    memory.fill(scratch, 0, <usize>ib * n8);
    if (i0 > 0) gemm_nt_sub(ib, i0, i0, rI, n, a, n, scratch, n, true);
    for (let i = i0; i < i1; i++) {
      const ri = a + <usize>i * n8, t = scratch + <usize>(i - i0) * n8;
      for (let k = i0; k < i; k++) axpy_sub(k + 1, load<f64>(at(ri, k)), a + <usize>k * n8, t);
      const d = 1 / load<f64>(at(ri, i));
      store<f64>(at(t, i), load<f64>(at(t, i)) + 1);
      const dv = f64x2.splat(d);
      let j = 0;
      for (; j + 2 <= i + 1; j += 2) v128.store(ri + (<usize>j << 3), f64x2.mul(v128.load(t + (<usize>j << 3)), dv));
      for (; j <= i; j++) store<f64>(at(ri, j), load<f64>(at(t, j)) * d);
    }
    // Mᵀ of the block into the upper triangle: a[j, i] = M[i, j] for i in I, j < i
    for (let j = 0; j < i1; j++) {
      const rj = a + <usize>j * n8;
      for (let i = max(i0, j + 1); i < i1; i++) store<f64>(at(rj, i), load<f64>(at(a + <usize>i * n8, j)));
    }
  }
}

/**
 * In-place inverse of the lower-triangular n × n L at `a` (positive diagonal; the strict upper
 * triangle is ignored and zeroed on return). `scratch` holds NB · n f64 (linalg_scratch_f64s(n)).
 */
export function trinv_lower_f64(n: i32, a: usize, scratch: usize): void {
  trinv_blocked(n, a, scratch);
  const n8 = <usize>n << 3;
  for (let i = 0; i + 1 < n; i++) memory.fill(at(a + <usize>i * n8, i + 1), 0, <usize>(n - i - 1) << 3);
}

/** f64 elements of scratch trinv_lower_f64 and upper_chol_inv_f64 need for n. */
export function linalg_scratch_f64s(n: i32): i32 {
  return NB * n;
}

/**
 * U = upper Cholesky factor of H⁻¹ (H⁻¹ = Uᵀ·U) for the n × n SPD `h`, written to `u` (u may equal h).
 * With J the reversal: J·H·J = L'·L'ᵀ gives U = J·L'⁻¹·J, and reversing a row-major n × n array
 * end to end is exactly X ↦ J·X·J. Returns -1, or the row of H (in H's order) whose pivot failed.
 */
export function upper_chol_inv_f64(n: i32, h: usize, u: usize, scratch: usize): i32 {
  const nn = <usize>n * <usize>n;
  reverse_into(nn, h, u);
  const bad = cholesky_f64(n, u);
  if (bad >= 0) return n - 1 - bad;
  trinv_blocked(n, u, scratch);
  reverse_into(nn, u, u);
  // the lower triangle now holds J·Mᵀ·J (the mirror of U): zero it
  const n8 = <usize>n << 3;
  for (let i = 1; i < n; i++) memory.fill(u + <usize>i * n8, 0, <usize>i << 3);
  return -1;
}

/** dst[p] = src[len − 1 − p] for p < len (in place when dst == src). */
function reverse_into(len: usize, src: usize, dst: usize): void {
  if (len == 0) return;
  if (src == dst) {
    let p = src, q = src + ((len - 1) << 3);
    for (; p < q; p += 8, q -= 8) {
      const t = load<f64>(p);
      store<f64>(p, load<f64>(q));
      store<f64>(q, t);
    }
    return;
  }
  for (let p: usize = 0; p < len; p++) store<f64>(dst + (p << 3), load<f64>(src + ((len - 1 - p) << 3)));
}
