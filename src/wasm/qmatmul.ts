// Bit-packed integer matmul on a WASM instance: marshal typed arrays, call assembly/qmatmul.ts.
// With a thread pool, qmm is split over weight rows at multiples of 4 (its row quads), so results
// are bit-identical for any thread count; the activation prep runs on the calling thread.

import type { QMatmulKernels } from '../kernels/qmatmul.js';
import { ACT_CHUNK_BYTES } from '../kernels/qmatmul.js';
import { span } from '../kernels/check.js';
import { FORMATS } from '../quant/formats.js';
import type { Heap } from './heap.js';
import { marshal } from './marshal.js';
import { splitCall, type RangeOp, type ThreadPool } from './pool.js';

/** Raw exports of assembly/qmatmul.ts. */
export interface QMatmulExports {
  qx_prep_f32(M: number, K: number, x: number, nSeg: number, segc: number, gather: number, act: number, ap: number): void;
  qx_prep_codes(M: number, K: number, codes: number, nSeg: number, segc: number, gather: number, scale: number, zero: number,
    rowPeriod: number, act: number, ap: number): void;
  qmm(M: number, N: number, nSeg: number, segc: number, bits: number, mode: number, w: number, rb: number, wp: number,
    act: number, ap: number, bias: number, y: number, ldy: number): void;
  qx_pack16(M: number, Kc: number, mode: number, act: number, a16: number): void;
  qgemm(M: number, N: number, nSeg: number, segc: number, bits: number, mode: number, w: number, rb: number, wp: number,
    a16: number, ap: number, bias: number, y: number, ldy: number, panel: number): void;
}

/**
 * Whether qmm runs as the register-blocked GEMM (qx_pack16 + qgemm) rather than the GEMV kernels
 * once per token. Measured (u4 / u8 weight, 4096², relaxed, 1 thread): integer × integer gains from
 * 2 tokens on (one i16 dot per 8 codes against the GEMV kernels' unpack per token); weight-only
 * needs two i16 dots (hi, lo) per 8 codes, which only beats the GEMV loop for u8 weights (generic
 * GEMV kernel) from 8 tokens (M = 128: 175 vs 236 ms); the u4/u3/u2 GEMV kernels tie with it.
 */
export function useQGemm(M: number, mode: number, bits: number): boolean {
  return mode === 0 ? bits === 8 && M >= 8 : M >= 2;
}

/** Instances (by exports) whose relaxed i8×i7 dot is switched off: weight-only u4 runs the i16 path. */
const relaxedDotOff = new WeakSet<object>();

/**
 * Switches the relaxed i8×i7 dot of the u4 weight-only kernel on or off for instance `ex` (the
 * runtime turns it off when its known-answer self-test fails, see src/selftest.ts). Results are
 * bit-identical either way; only speed differs. No effect on the baseline binary.
 */
export function setRelaxedDot(ex: object, on: boolean): void {
  if (on) relaxedDotOff.delete(ex);
  else relaxedDotOff.add(ex);
}

/** qmm (or qgemm, same leading arguments) split over weight rows at multiples of 4 (w, wp, bias and y advance with the row). */
export function qmmRanges(args: number[], nSeg: number, rb: number, fn: 'qmm' | 'qgemm' = 'qmm'): RangeOp {
  return { fn, args, count: 1, align: 4, advance: [[6, rb], [8, nSeg * 12], [11, 4], [12, 4]] };
}

export function wasmQMatmul(ex: QMatmulExports, h: Heap, pool: ThreadPool | null = null): QMatmulKernels {
  return {
    qPrepF32(M, K, x, nSeg, segc, gather, act, ap) {
      const Kc = segc[nSeg]!;
      marshal(h, [[x, 'in', M * K], [segc, 'in', nSeg + 1], [gather, 'in', Kc * 16], [act, 'out', M * Kc * ACT_CHUNK_BYTES],
        [ap, 'out', M * nSeg * 4]],
      (px, ps, pg, pa, pp) => ex.qx_prep_f32(M, K, px!, nSeg, ps!, pg!, pa!, pp!));
    },
    qPrepCodes(M, K, codes, nSeg, segc, gather, scale, zero, rowPeriod, _bitsA, act, ap) {
      const Kc = segc[nSeg]!, slots = Math.min(rowPeriod, M) * nSeg;
      marshal(h, [[codes, 'in', M * K], [segc, 'in', nSeg + 1], [gather, 'in', Kc * 16], [scale, 'in', slots], [zero, 'in', slots],
        [act, 'out', M * Kc * ACT_CHUNK_BYTES], [ap, 'out', M * nSeg * 4]],
      (pc, ps, pg, psc, pz, pa, pp) => ex.qx_prep_codes(M, K, pc!, nSeg, ps!, pg!, psc!, pz!, rowPeriod, pa!, pp!));
    },
    qmm(M, N, nSeg, segc, format, mode, w, rb, wp, act, ap, bias, y, ldy) {
      const Kc = segc[nSeg]!, quads = Math.ceil(N / 4);
      marshal(h, [[segc, 'in', nSeg + 1], [w, 'in', quads * 4 * rb], [wp, 'in', quads * nSeg * 12], [act, 'in', M * Kc * ACT_CHUNK_BYTES],
        [ap, 'in', M * nSeg * 4], [bias, 'in', N], [y, ldy === N ? 'out' : 'inout', span(M, N, ldy)]],
      (ps, pw, pwp, pa, pap, pb, py) => {
        const kmode = mode === 0 && relaxedDotOff.has(ex) ? 3 : mode;
        const bits = FORMATS[format].bits, flops = 2 * M * N * Kc * 16;
        if (!useQGemm(M, mode, bits)) {
          splitCall(pool, ex, qmmRanges([M, N, nSeg, ps!, bits, kmode, pw!, rb, pwp!, pa!, pap!, pb!, py!, ldy], nSeg, rb), flops);
          return;
        }
        // GEMM: compact i16 activation planes (shared) and one weight panel per thread
        const panelBytes = Kc * 128, threads = pool?.shouldSplit(flops) ? pool.threads : 1;
        const a16 = h.alloc(M * Kc * (mode === 0 ? 64 : 32), 'qgemm activations');
        try {
          const panel = h.alloc(panelBytes * threads, 'qgemm panels');
          try {
            ex.qx_pack16(M, Kc, mode, pa!, a16);
            const op = qmmRanges([M, N, nSeg, ps!, bits, kmode, pw!, rb, pwp!, a16, pap!, pb!, py!, ldy, panel], nSeg, rb, 'qgemm');
            op.perThread = [14, panelBytes];
            splitCall(pool, ex, op, flops);
          } finally { h.free(panel); }
        } finally { h.free(a16); }
      });
    },
  };
}
