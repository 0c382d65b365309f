// The f32 kernel family: signatures and argument checks. Twins: assembly/f32.ts (WASM),
// src/ref/f32.ts (plain TS), src/wasm/f32.ts (marshalling).

import { LowbitError } from '../errors.js';
import type { PackedFormat } from '../quant/formats.js';
import { packedRowBytes } from '../quant/formats.js';
import { checkDims, checkGemm, checkLen, span } from './check.js';
import { checkOffsets, checkParams, fmtBits } from './quant.js';

/**
 * L rows of `cols` codes bit-packed in `format` (src/quant/formats.ts), packedRowBytes(format, cols) bytes per row,
 * dequantized per column segment as dequantizeUnpack with rowPeriod 1: x[r, c] = scale[g]·(q[r, c] − zero[g]) for
 * offsets[g] <= c < offsets[g + 1]. The packed KV cache of the quantized decoder (src/models/opt/quantized.ts).
 */
export interface PackedRows {
  format: PackedFormat;
  data: Uint8Array;
  nSeg: number;
  offsets: Int32Array;
  scale: Float32Array;
  zero: Uint8Array;
}

/** f32 kernels for the float decoder (twins: assembly/f32.ts, src/ref/f32.ts). */
export interface F32Kernels {
  /** C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias[N]). Leading dimensions in elements. */
  sgemmNT(M: number, N: number, K: number, a: Float32Array, lda: number, b: Float32Array, ldb: number,
    c: Float32Array, ldc: number, bias: Float32Array | null): void;
  /** C[M,N] = A[M,K] · B[K,N] (+ bias[N]). Leading dimensions in elements. */
  sgemmNN(M: number, N: number, K: number, a: Float32Array, lda: number, b: Float32Array, ldb: number,
    c: Float32Array, ldc: number, bias: Float32Array | null): void;

  /** out = a + b, elementwise over n. */
  add(n: number, a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** out = a · b, elementwise over n. */
  mul(n: number, a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** out[r, c] = x[r, c] + row[c]. */
  addRow(rows: number, cols: number, x: Float32Array, row: Float32Array, out: Float32Array): void;
  /** out = max(x, 0); NaN propagates. */
  relu(n: number, x: Float32Array, out: Float32Array): void;
  /** out = 0.5 x (1 + erf(x/√2)). */
  gelu(n: number, x: Float32Array, out: Float32Array): void;
  /** Row-wise LayerNorm, biased variance, eps inside the sqrt (torch.nn.functional.layer_norm). */
  layerNorm(rows: number, cols: number, x: Float32Array, gamma: Float32Array | null, beta: Float32Array | null,
    eps: number, out: Float32Array): void;
  /** Row-wise softmax. causal >= 0 keeps columns c <= r + causal and zeroes the rest; causal < 0: no mask. */
  softmax(rows: number, cols: number, x: Float32Array, out: Float32Array, causal: number): void;
  /**
   * Multi-head attention of T query rows over L cached keys, all H heads of width hs in one call.
   * Per head h and query t: s_j = q[t, h]·k[j, h] for keys j < min(L, causal + t + 1) (all L when
   * causal < 0), f32 min where keyMask[j] = 0 (HF's mask value); p = softmax(s); with levels > 0,
   * p = round_half_even(p·levels)/levels (RPTQ's fixed probability grid); out[t, h] = Σ_j p_j·v[j, h].
   * q/out: T rows at strides ldq/ldo; k/v: L rows at stride ldk; head h is columns h·hs .. h·hs + hs.
   * The same result as sgemmNT → mask → softmax → grid → sgemmNN per head (the twin), in one call.
   */
  attention(H: number, hs: number, T: number, L: number, q: Float32Array, ldq: number, k: Float32Array, ldk: number,
    v: Float32Array, out: Float32Array, ldo: number, causal: number, keyMask: Uint8Array | null, levels: number): void;
  /**
   * attention over a packed cache: k and v are L packed rows of H·hs columns (PackedRows). The same result, bit
   * for bit, as dequantizeUnpack of both into f32 rows followed by attention(…, ldk = H·hs, …), without the f32
   * copy (twin: exactly that composition in src/ref/f32.ts).
   */
  attentionPacked(H: number, hs: number, T: number, L: number, q: Float32Array, ldq: number, k: PackedRows, v: PackedRows,
    out: Float32Array, ldo: number, causal: number, keyMask: Uint8Array | null, levels: number): void;
  /**
   * attention over a bf16 cache: k and v are L rows of bf16 bits (the upper 16 bits of an f32) at stride ldk. The same
   * result, bit for bit, as widening both to f32 (bits << 16, exact) and attention(…), at half the cache bytes (twin:
   * exactly that composition in src/ref/f32.ts). With T > 1 the call's columns are widened once into transient f32 rows.
   */
  attentionBf16(H: number, hs: number, T: number, L: number, q: Float32Array, ldq: number, k: Uint16Array, ldk: number,
    v: Uint16Array, out: Float32Array, ldo: number, causal: number, keyMask: Uint8Array | null, levels: number): void;
  /**
   * out[i] = x[i] as bf16 bits, as src/io/tensor.ts f32ToBf16Bits: (u + 0x7fff + ((u >> 16) & 1)) >> 16 with u the f32
   * bits (round half to even, PyTorch's round_to_nearest_even; ±inf stays, overflow rounds to ±inf); a NaN stays a
   * quiet NaN with its sign and top payload bits ((u >> 16) | 0x40).
   */
  toBf16(n: number, x: Float32Array, out: Uint16Array): void;
  /** out[i, :] = table[ids[i], :]. */
  gatherRows(n: number, dim: number, table: Float32Array, ids: Int32Array, out: Float32Array): void;
  /** out[r] = first index of the maximum of row r (a NaN counts as the maximum). */
  argmax(rows: number, cols: number, x: Float32Array, out: Int32Array): void;
  /**
   * Peak-throughput probe (see assembly/f32.ts peak_f32): 12 chains × 4 lanes, x₀ = 0, 0.1, …, 1.1.
   * fused (relaxed build): every chain x ← x·0.999999 + 1e-7 as one fma (96 flops/iter); otherwise
   * chains 0–5 x ← x + 1e-7 and chains 6–11 x ← x·0.999999 (48 flops/iter). Returns the sum of all lanes.
   * The WASM backends ignore `fused` and run their build's variant.
   */
  peakF32(iters: number, fused: boolean): number;
}


/** The checks attention and attentionPacked share: shapes, strides, q/out/keyMask lengths, causal, levels. */
function checkAttention(kernel: string, H: number, hs: number, T: number, L: number, q: Float32Array, ldq: number, ldk: number,
  out: Float32Array, ldo: number, causal: number, keyMask: Uint8Array | null, levels: number): void {
  checkDims(kernel, { H, hs, T, L, ldq, ldk, ldo, levels });
  if (L < 1 || H < 1 || hs < 1) throw new LowbitError('E_SHAPE', `${kernel}: needs H, hs and L >= 1, got H ${H}, hs ${hs}, L ${L}`);
  const w = H * hs;
  for (const [name, ld] of [['ldq', ldq], ['ldk', ldk], ['ldo', ldo]] as const) {
    if (ld < w) throw new LowbitError('E_SHAPE', `${kernel}: ${name} ${ld} is less than the ${H} heads × ${hs} = ${w} columns`);
  }
  checkLen(kernel, 'q', q, span(T, w, ldq));
  checkLen(kernel, 'out', out, span(T, w, ldo));
  checkLen(kernel, 'keyMask', keyMask, L);
  if (!Number.isSafeInteger(causal)) throw new LowbitError('E_ARG', `${kernel}: causal offset must be an integer, got ${causal}`);
  if (levels > 65535) throw new LowbitError('E_ARG', `${kernel}: levels must be at most 65535 (16-bit probabilities), got ${levels}`);
}

/** `rows` packed rows of `cols` codes: format, segments, parameters (every scale finite > 0, zero <= qmax) and data length. */
function checkPackedRows(kernel: string, name: string, p: PackedRows, rows: number, cols: number): void {
  if (!p || typeof p !== 'object' || !(p.data instanceof Uint8Array) || !(p.offsets instanceof Int32Array) ||
    !(p.scale instanceof Float32Array) || !(p.zero instanceof Uint8Array)) {
    throw new LowbitError('E_ARG', `${kernel}: ${name} must be packed rows { format, data: Uint8Array, nSeg, offsets: Int32Array, scale: Float32Array, zero: Uint8Array }`);
  }
  const bits = fmtBits(kernel, p.format);
  checkOffsets(`${kernel} ${name}`, cols, p.nSeg, p.offsets);
  checkParams(`${kernel} ${name}`, rows, cols, p.nSeg, 1, p.scale, p.zero, 2 ** bits - 1);
  checkLen(kernel, `${name}.data`, p.data, rows * packedRowBytes(p.format, cols));
}

/** bf16 data travels as raw bits in a Uint16Array (a Float32Array here would be read as bits, silently wrong). */
function checkU16(kernel: string, name: string, a: unknown): void {
  if (!(a instanceof Uint16Array)) throw new LowbitError('E_DTYPE', `${kernel}: ${name} must be a Uint16Array of bf16 bits, got ${a == null ? String(a) : (a as object).constructor?.name ?? typeof a}`);
}

function checkUnary(kernel: string, n: number, x: Float32Array, out: Float32Array): void {
  checkDims(kernel, { n });
  checkLen(kernel, 'x', x, n);
  checkLen(kernel, 'out', out, n);
}

/** The f32 kernels of `k`, each preceded by its argument checks. */
export function checkedF32(k: F32Kernels): F32Kernels {
  return {
    sgemmNT(M, N, K, a, lda, b, ldb, c, ldc, bias) {
      checkGemm('sgemmNT', true, M, N, K, a, lda, b, ldb, c, ldc, bias);
      k.sgemmNT(M, N, K, a, lda, b, ldb, c, ldc, bias);
    },
    sgemmNN(M, N, K, a, lda, b, ldb, c, ldc, bias) {
      checkGemm('sgemmNN', false, M, N, K, a, lda, b, ldb, c, ldc, bias);
      k.sgemmNN(M, N, K, a, lda, b, ldb, c, ldc, bias);
    },
    add(n, a, b, out) {
      checkUnary('add', n, a, out);
      checkLen('add', 'b', b, n);
      k.add(n, a, b, out);
    },
    mul(n, a, b, out) {
      checkUnary('mul', n, a, out);
      checkLen('mul', 'b', b, n);
      k.mul(n, a, b, out);
    },
    addRow(rows, cols, x, row, out) {
      checkDims('addRow', { rows, cols });
      checkUnary('addRow', rows * cols, x, out);
      checkLen('addRow', 'row', row, cols);
      k.addRow(rows, cols, x, row, out);
    },
    relu(n, x, out) {
      checkUnary('relu', n, x, out);
      k.relu(n, x, out);
    },
    gelu(n, x, out) {
      checkUnary('gelu', n, x, out);
      k.gelu(n, x, out);
    },
    layerNorm(rows, cols, x, gamma, beta, eps, out) {
      checkDims('layerNorm', { rows, cols });
      checkUnary('layerNorm', rows * cols, x, out);
      checkLen('layerNorm', 'gamma', gamma, cols);
      checkLen('layerNorm', 'beta', beta, cols);
      if (!(eps > 0) || !Number.isFinite(eps)) throw new LowbitError('E_ARG', `layerNorm: eps must be finite and > 0, got ${eps}`);
      k.layerNorm(rows, cols, x, gamma, beta, eps, out);
    },
    softmax(rows, cols, x, out, causal) {
      checkDims('softmax', { rows, cols });
      checkUnary('softmax', rows * cols, x, out);
      if (!Number.isSafeInteger(causal)) throw new LowbitError('E_ARG', `softmax: causal offset must be an integer, got ${causal}`);
      k.softmax(rows, cols, x, out, causal);
    },
    attention(H, hs, T, L, q, ldq, kc, ldk, v, out, ldo, causal, keyMask, levels) {
      checkAttention('attention', H, hs, T, L, q, ldq, ldk, out, ldo, causal, keyMask, levels);
      const w = H * hs;
      checkLen('attention', 'k', kc, span(L, w, ldk));
      checkLen('attention', 'v', v, span(L, w, ldk));
      k.attention(H, hs, T, L, q, ldq, kc, ldk, v, out, ldo, causal, keyMask, levels);
    },
    attentionPacked(H, hs, T, L, q, ldq, kc, v, out, ldo, causal, keyMask, levels) {
      checkAttention('attentionPacked', H, hs, T, L, q, ldq, H * hs, out, ldo, causal, keyMask, levels);
      checkPackedRows('attentionPacked', 'k', kc, L, H * hs);
      checkPackedRows('attentionPacked', 'v', v, L, H * hs);
      k.attentionPacked(H, hs, T, L, q, ldq, kc, v, out, ldo, causal, keyMask, levels);
    },
    attentionBf16(H, hs, T, L, q, ldq, kc, ldk, v, out, ldo, causal, keyMask, levels) {
      checkAttention('attentionBf16', H, hs, T, L, q, ldq, ldk, out, ldo, causal, keyMask, levels);
      const w = H * hs;
      checkU16('attentionBf16', 'k', kc);
      checkU16('attentionBf16', 'v', v);
      checkLen('attentionBf16', 'k', kc, span(L, w, ldk));
      checkLen('attentionBf16', 'v', v, span(L, w, ldk));
      k.attentionBf16(H, hs, T, L, q, ldq, kc, ldk, v, out, ldo, causal, keyMask, levels);
    },
    toBf16(n, x, out) {
      checkDims('toBf16', { n });
      checkU16('toBf16', 'out', out);
      checkLen('toBf16', 'x', x, n);
      checkLen('toBf16', 'out', out, n);
      k.toBf16(n, x, out);
    },
    gatherRows(n, dim, table, ids, out) {
      checkDims('gatherRows', { n, dim });
      checkLen('gatherRows', 'ids', ids, n);
      checkLen('gatherRows', 'out', out, n * dim);
      // with dim 0 nothing is read; the op layer (embedding) still checks ids against the table's rows
      const vocab = dim === 0 ? Infinity : Math.floor(table.length / dim);
      for (let i = 0; i < n && dim > 0; i++) {
        const id = ids[i]!;
        if (id < 0 || id >= vocab) {
          throw new LowbitError('E_RANGE', `gatherRows: ids[${i}] = ${id} is outside the table's ${vocab} rows`);
        }
      }
      k.gatherRows(n, dim, table, ids, out);
    },
    argmax(rows, cols, x, out) {
      checkDims('argmax', { rows, cols });
      if (cols === 0 && rows > 0) throw new LowbitError('E_SHAPE', 'argmax: rows have 0 columns');
      checkLen('argmax', 'x', x, rows * cols);
      checkLen('argmax', 'out', out, rows);
      k.argmax(rows, cols, x, out);
    },
    peakF32(iters, fused) {
      checkDims('peakF32', { iters });
      return k.peakF32(iters, fused);
    },
  };
}
