// Reference bit-packed integer matmul in plain TypeScript: the oracle for assembly/qmatmul.ts.
// Same prepared-activation bytes (so `act`/`ap` compare bit for bit), the same integers per (row,
// segment) — weight-only: wrapping i32 H = Σ q·(u >> 7), L = Σ q·(u & 127); integer × integer: the
// exact P = Σ q·(u − o) — and the same f32 epilogue step by step with Math.fround, so outputs are
// bit-exact too. Codes are read through the format's reference unpacker, not the SIMD recipe. The WASM
// side computes the same integers by several routes (GEMV kernels, i16 and relaxed i8×i7, the
// integer GEMM and GEMV); integer sums are exact, so one twin covers them all. The weight-only
// prefill route (qgemm_f32: dequantize, f32 GEMM) is the one float route: within f32 rounding.

import type { QMatmulKernels } from '../kernels/qmatmul.js';
import { ACT_CHUNK_BYTES } from '../kernels/qmatmul.js';
import { packedRowBytes, quadRow } from '../quant/formats.js';
import { quantizeValue, roundHalfEven } from '../quant/round.js';
import { refQuant } from './quant.js';

const f = Math.fround;
const OFF20 = 1 << 20;

function putU(act: Uint8Array, base: number, j: number, u: number): void {
  const c = base + (j >> 4) * ACT_CHUNK_BYTES, l = j & 15;
  act[c + l] = u >> 14;
  act[c + 16 + l] = (u >> 7) & 127;
  act[c + 32 + l] = u & 127;
  const hi = u >> 7, lo = u & 127;
  act[c + 64 + 2 * l] = hi & 255; act[c + 65 + 2 * l] = hi >> 8;
  act[c + 96 + 2 * l] = lo; act[c + 97 + 2 * l] = 0;
}

/** u at padded position j of a prepared token row (from the hi/lo i16 planes). */
function getU(act: Uint8Array, base: number, j: number): [hi: number, lo: number] {
  const c = base + (j >> 4) * ACT_CHUNK_BYTES, l = j & 15;
  return [act[c + 64 + 2 * l]! | (act[c + 65 + 2 * l]! << 8), act[c + 96 + 2 * l]!];
}

export const refQMatmul: QMatmulKernels = {
  firstOutside(n, x, lo, hi) {
    for (let i = 0; i < n; i++) if (x[i]! < lo || x[i]! > hi) return i;
    return -1;
  },
  qPrepF32(M, K, x, nSeg, segc, gather, act, ap) {
    const Kc = segc[nSeg]!;
    for (let m = 0; m < M; m++) {
      const base = m * Kc * ACT_CHUNK_BYTES;
      for (let g = 0; g < nSeg; g++) {
        const j0 = segc[g]! * 16, j1 = segc[g + 1]! * 16;
        let mx = 0;
        for (let j = j0; j < j1; j++) {
          const src = gather[j]!;
          if (src >= 0) mx = Math.max(mx, Math.abs(x[m * K + src]!));
        }
        let s = f(mx / 1048575);
        if (mx === 0) s = 1;
        let d = 0;
        for (let j = j0; j < j1; j++) {
          const src = gather[j]!;
          let u = OFF20; // padding: x = 0
          if (src >= 0) {
            let r = roundHalfEven(f(x[m * K + src]! / s));
            r = r > -1048576 ? r : -1048576;
            r = r < 1048575 ? r : 1048575;
            u = r + OFF20;
            d += r;
          }
          putU(act, base, j, u);
        }
        const o = (m * nSeg + g) * 4;
        ap[o] = s; ap[o + 1] = f(d); ap[o + 2] = 8192; ap[o + 3] = 0;
      }
    }
  },

  qPrepCodes(M, K, codes, nSeg, segc, gather, scale, zero, rowPeriod, _bitsA, act, ap) {
    const Kc = segc[nSeg]!;
    for (let m = 0; m < M; m++) {
      const base = m * Kc * ACT_CHUNK_BYTES, pr = (m % rowPeriod) * nSeg;
      for (let g = 0; g < nSeg; g++) {
        const z = zero[pr + g]!;
        let d = 0;
        for (let j = segc[g]! * 16; j < segc[g + 1]! * 16; j++) {
          const src = gather[j]!;
          let u = 0;
          if (src >= 0) {
            u = codes[m * K + src]!;
            d += u - z;
          }
          putU(act, base, j, u);
        }
        const o = (m * nSeg + g) * 4;
        ap[o] = scale[pr + g]!; ap[o + 1] = f(d); ap[o + 2] = z >> 7; ap[o + 3] = z & 127;
      }
    }
  },

  qPrepQuant(M, K, x, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap) {
    // the codes quantizePack writes (src/ref/quant.ts: quantizeValue per element), then qPrepCodes
    const qmax = 2 ** bitsA - 1, codes = new Uint8Array(M * K).fill(0);
    for (let m = 0; m < M; m++) {
      const pr = (m % rowPeriod) * nSeg;
      for (let g = 0; g < nSeg; g++) {
        for (let j = segc[g]! * 16; j < segc[g + 1]! * 16; j++) {
          const src = gather[j]!;
          if (src >= 0) codes[m * K + src] = quantizeValue(x[m * K + src]!, scale[pr + g]!, zero[pr + g]!, qmax);
        }
      }
    }
    refQMatmul.qPrepCodes(M, K, codes, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap);
  },

  qmm(M, N, nSeg, segc, format, mode, w, rb, wp, act, ap, bias, y, ldy) {
    const Kc = segc[nSeg]!, Kp = Kc * 16, need = packedRowBytes(format, Kp);
    const codes = new Uint8Array(Kp), row = new Uint8Array(need);
    for (let n = 0; n < N; n++) {
      refQuant.unpackCodes(1, Kp, format, quadRow(format, Kp, w, rb, n, row), codes);
      const quad = n >> 2, lane = n & 3;
      for (let m = 0; m < M; m++) {
        const base = m * Kc * ACT_CHUNK_BYTES;
        let acc = 0;
        for (let g = 0; g < nSeg; g++) {
          let H = 0, L = 0;
          for (let j = segc[g]! * 16; j < segc[g + 1]! * 16; j++) {
            const q = codes[j]!;
            const [hi, lo] = getU(act, base, j);
            H = (H + q * hi) | 0;
            L = (L + q * lo) | 0;
          }
          const pw = (quad * nSeg + g) * 12, pa = (m * nSeg + g) * 4;
          const sw = wp[pw + lane]!, z = wp[pw + 4 + lane]!, Q = wp[pw + 8 + lane]! | 0;
          const sa = ap[pa]!, D = ap[pa + 1]!, Oh = ap[pa + 2]! | 0, Ol = ap[pa + 3]! | 0;
          let v: number;
          if (mode === 0) {
            const Hc = (H - Math.imul(Oh, Q)) | 0, Lc = (L - Math.imul(Ol, Q)) | 0;
            v = f(f(f(Hc) * 128) + f(Lc));
          } else {
            // codes ≤ 255: P = Σ q·(u − o) = 128·H + L − o·Q fits i32 exactly (|P| ≤ 255²·16384 < 2^31)
            v = f((Math.imul(H, 128) + L - Math.imul(Oh * 128 + Ol, Q)) | 0);
          }
          v = f(v - f(z * D));
          acc = f(acc + f(v * f(sw * sa)));
        }
        y[m * ldy + n] = bias ? f(acc + bias[n]!) : acc;
      }
    }
  },
};
