// The bit-packed integer matmul family: signatures and argument checks. Twins: assembly/qmatmul.ts
// (WASM, lane layouts and the arithmetic in its header), src/ref/qmatmul.ts (plain TS, bit-exact;
// the weight-only prefill route within f32 rounding), src/wasm/qmatmul.ts (marshalling, routes,
// thread split). The kernel-ready weight layout and the
// user-facing entry (`qlinear`) are in src/quant/qlinear.ts.
//
// Shapes: a weight of N rows is stored as ceil(N/4)·4 packed rows of Kp codes (`rb` bytes each),
// each row quad interleaved block by block (src/quant/formats.ts quadInterleave);
// its columns are split into nSeg segments by `segc` (nSeg + 1 offsets in 16-code chunks, each
// segment a whole number of the format's blocks). Activations are prepared once per call into
// `act` (ACT_CHUNK_BYTES per 16 padded positions and token) and `ap` (4 f32 per token and segment).

import { LowbitError } from '../errors.js';
import { FORMATS, type PackedFormat } from '../quant/formats.js';
import { checkDims, checkLen, span } from './check.js';

/** Bytes of prepared activation per 16 padded positions (see assembly/qmatmul.ts). */
export const ACT_CHUNK_BYTES = 128;
/** Longest segment (codes, padded) the i32 integer parts are guaranteed not to overflow for. */
export const MAX_SEGMENT_CODES = 16384;

/** 0: weight-only (f32 activations, 21-bit split); 1: activation codes ≤ 127; 2: codes ≤ 255. */
export type QmmMode = 0 | 1 | 2;

export interface QMatmulKernels {
  /** The index of the first x[i] (i < n) outside lo..hi, or −1 (the preps' gather check; SIMD in WASM). */
  firstOutside(n: number, x: Int32Array, lo: number, hi: number): number;
  /**
   * Weight-only activation prep: x [M, K] f32 → act [M, Kc·128 B], ap [M, nSeg, 4] with
   * Kc = segc[nSeg]. gather[j] (Kc·16 entries) is the column of x at padded position j, or −1.
   */
  qPrepF32(M: number, K: number, x: Float32Array, nSeg: number, segc: Int32Array, gather: Int32Array,
    act: Uint8Array, ap: Float32Array): void;
  /**
   * Integer activation prep: codes [M, K] (one per byte, each < 2^bitsA, in the weight's column
   * order), scale/zero per (token % rowPeriod, segment) → act, ap.
   */
  qPrepCodes(M: number, K: number, codes: Uint8Array, nSeg: number, segc: Int32Array, gather: Int32Array,
    scale: Float32Array, zero: Uint8Array, rowPeriod: number, bitsA: number, act: Uint8Array, ap: Float32Array): void;
  /**
   * Integer activation prep straight from f32: x [M, K] (in the weight's column order) quantized with the static
   * scale/zero per (token % rowPeriod, segment) to bitsA-bit codes, code = clamp(round_half_even(x / s) + z, 0,
   * 2^bitsA − 1) as quantizePack, then laid out as qPrepCodes: the same act and ap as quantizePack → unpackCodes →
   * qPrepCodes, bit for bit, without the two intermediate arrays.
   */
  qPrepQuant(M: number, K: number, x: Float32Array, nSeg: number, segc: Int32Array, gather: Int32Array,
    scale: Float32Array, zero: Uint8Array, rowPeriod: number, bitsA: number, act: Uint8Array, ap: Float32Array): void;
  /** y[m·ldy + n] = Σ_g … (+ bias[n]) for n < N, m < M; `format` is the weight's. */
  qmm(M: number, N: number, nSeg: number, segc: Int32Array, format: PackedFormat, mode: QmmMode, w: Uint8Array, rb: number,
    wp: Float32Array, act: Uint8Array, ap: Float32Array, bias: Float32Array | null, y: Float32Array, ldy: number): void;
}

function checkSegc(kernel: string, nSeg: number, segc: Int32Array, chunksPerBlock: number): number {
  checkDims(kernel, { nSeg });
  checkLen(kernel, 'segc', segc, nSeg + 1);
  if (segc[0] !== 0) throw new LowbitError('E_ARG', `${kernel}: segc[0] must be 0, got ${segc[0]}`);
  for (let g = 0; g < nSeg; g++) {
    const a = segc[g]!, b = segc[g + 1]!;
    if (!(b > a) || b % chunksPerBlock !== 0) {
      throw new LowbitError('E_ARG', `${kernel}: segment ${g} (chunks ${a}..${b}) must be non-empty and end on a multiple of ${chunksPerBlock} chunks`);
    }
    if ((b - a) * 16 > MAX_SEGMENT_CODES) throw new LowbitError('E_ARG', `${kernel}: segment ${g} has ${(b - a) * 16} codes, more than ${MAX_SEGMENT_CODES}`);
  }
  return segc[nSeg]!;
}

/** The checks qPrepCodes and qPrepQuant share (all but the activation values). */
function checkIntPrep(k: QMatmulKernels, kernel: string, M: number, K: number, nSeg: number, segc: Int32Array, gather: Int32Array,
  scale: Float32Array, zero: Uint8Array, rowPeriod: number, bitsA: number, act: Uint8Array, ap: Float32Array): void {
  checkDims(kernel, { M, K, rowPeriod, bitsA });
  if (bitsA < 2 || bitsA > 8) throw new LowbitError('E_ARG', `${kernel}: bitsA must be 2..8, got ${bitsA}`);
  if (rowPeriod < 1) throw new LowbitError('E_ARG', `${kernel}: rowPeriod must be at least 1, got ${rowPeriod}`);
  const Kc = checkSegc(kernel, nSeg, segc, 1);
  checkGather(k, kernel, K, Kc, gather);
  const qmax = 2 ** bitsA - 1, slots = Math.min(rowPeriod, M) * nSeg;
  checkLen(kernel, 'scale', scale, slots);
  checkLen(kernel, 'zero', zero, slots);
  for (let i = 0; i < slots; i++) {
    if (!(scale[i]! > 0) || scale[i] === Infinity) throw new LowbitError('E_ARG', `${kernel}: scale[${i}] must be finite and > 0, got ${scale[i]}`);
    if (zero[i]! > qmax) throw new LowbitError('E_RANGE', `${kernel}: zero[${i}] = ${zero[i]} does not fit ${bitsA} bits`);
  }
  checkLen(kernel, 'act', act, M * Kc * ACT_CHUNK_BYTES);
  checkLen(kernel, 'ap', ap, M * nSeg * 4);
}

function checkGather(k: QMatmulKernels, kernel: string, K: number, Kc: number, gather: Int32Array): void {
  checkLen(kernel, 'gather', gather, Kc * 16);
  const j = k.firstOutside(Kc * 16, gather, -1, K - 1);
  if (j >= 0) throw new LowbitError('E_RANGE', `${kernel}: gather[${j}] = ${gather[j]} is outside -1 .. ${K - 1}`);
}

/** The qmatmul kernels of `k`, each preceded by its argument checks. */
export function checkedQMatmul(k: QMatmulKernels): QMatmulKernels {
  return {
    firstOutside(n, x, lo, hi) {
      checkDims('firstOutside', { n });
      checkLen('firstOutside', 'x', x, n);
      if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo < -(2 ** 31) || hi >= 2 ** 31 || lo > hi) {
        throw new LowbitError('E_ARG', `firstOutside: lo ${lo} .. hi ${hi} must be int32 with lo <= hi`);
      }
      return k.firstOutside(n, x, lo, hi);
    },
    qPrepF32(M, K, x, nSeg, segc, gather, act, ap) {
      checkDims('qPrepF32', { M, K });
      const Kc = checkSegc('qPrepF32', nSeg, segc, 1);
      checkGather(k, 'qPrepF32', K, Kc, gather);
      checkLen('qPrepF32', 'x', x, M * K);
      checkLen('qPrepF32', 'act', act, M * Kc * ACT_CHUNK_BYTES);
      checkLen('qPrepF32', 'ap', ap, M * nSeg * 4);
      if (M > 0 && nSeg > 0) k.qPrepF32(M, K, x, nSeg, segc, gather, act, ap);
    },
    qPrepCodes(M, K, codes, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap) {
      checkIntPrep(k, 'qPrepCodes', M, K, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap);
      checkLen('qPrepCodes', 'codes', codes, M * K);
      const qmax = 2 ** bitsA - 1;
      for (let i = 0; i < M * K; i++) {
        if (codes[i]! > qmax) throw new LowbitError('E_RANGE', `qPrepCodes: activation code ${codes[i]} at ${i} does not fit ${bitsA} bits`);
      }
      if (M > 0 && nSeg > 0) k.qPrepCodes(M, K, codes, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap);
    },
    qPrepQuant(M, K, x, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap) {
      checkIntPrep(k, 'qPrepQuant', M, K, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap);
      checkLen('qPrepQuant', 'x', x, M * K);
      if (M > 0 && nSeg > 0) k.qPrepQuant(M, K, x, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap);
    },
    qmm(M, N, nSeg, segc, format, mode, w, rb, wp, act, ap, bias, y, ldy) {
      checkDims('qmm', { M, N, rb, ldy });
      const t = (FORMATS as Record<string, (typeof FORMATS)[PackedFormat] | undefined>)[format];
      if (!t) throw new LowbitError('E_ARG', `qmm: format must be u2, u3, u4 or u8, got '${format}'`);
      if (mode !== 0 && mode !== 1 && mode !== 2) throw new LowbitError('E_ARG', `qmm: mode must be 0, 1 or 2, got ${mode}`);
      const Kc = checkSegc('qmm', nSeg, segc, t.blockCodes / 16);
      const need = (Kc * 16 / t.blockCodes) * t.blockBytes;
      if (rb < need) throw new LowbitError('E_SHAPE', `qmm: row stride ${rb} bytes is less than the ${need} bytes of ${Kc * 16} ${format} codes`);
      if (ldy < N) throw new LowbitError('E_ARG', `qmm: ldy ${ldy} < N ${N}`);
      const quads = Math.ceil(N / 4);
      checkLen('qmm', 'w', w, quads * 4 * rb);
      checkLen('qmm', 'wp', wp, quads * nSeg * 12);
      checkLen('qmm', 'act', act, M * Kc * ACT_CHUNK_BYTES);
      checkLen('qmm', 'ap', ap, M * nSeg * 4);
      checkLen('qmm', 'bias', bias, N);
      checkLen('qmm', 'y', y, span(M, N, ldy));
      if (M > 0 && N > 0) k.qmm(M, N, nSeg, segc, format, mode, w, rb, wp, act, ap, bias, y, ldy);
    },
  };
}
