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
  qx_prep_quant(M: number, K: number, x: number, nSeg: number, segc: number, gather: number, scale: number, zero: number,
    rowPeriod: number, qmax: number, act: number, ap: number): void;
  qmm(M: number, N: number, nSeg: number, segc: number, bits: number, mode: number, w: number, rb: number, wp: number,
    act: number, ap: number, bias: number, y: number, ldy: number): void;
  qx_pack16(M: number, nSeg: number, segc: number, act: number, ap: number, a16: number): void;
  qgemm(M: number, N: number, nSeg: number, segc: number, bits: number, w: number, rb: number, wp: number,
    a16: number, ap: number, bias: number, y: number, ldy: number, panel: number): void;
  qx_pack8(M: number, nSeg: number, segc: number, act: number, ap: number, a8: number): void;
  qgemv_int(N: number, nSeg: number, segc: number, bits: number, w: number, rb: number, wp: number,
    a16: number, ap: number, bias: number, y: number): void;
  qgemm_u7(M: number, N: number, nSeg: number, segc: number, bits: number, w: number, rb: number, wp: number,
    a8: number, ap: number, bias: number, y: number, ldy: number, panel: number): void;
  is_relaxed(): number;
  first_outside_i32(n: number, x: number, lo: number, hi: number): number;
  qx_real_f32(M: number, nSeg: number, segc: number, act: number, real: number): number;
  qx_unpack_f32(M: number, nSeg: number, segc: number, act: number, ap: number, real: number, xf: number, ldx: number): void;
  qgemm_f32(M: number, N: number, nSeg: number, segc: number, bits: number, w: number, rb: number, wp: number,
    xf: number, bias: number, y: number, ldy: number, real: number, Kr: number, ldx: number, panel: number): void;
}

/**
 * Which kernel runs qmm on M tokens: 'gemv' (the GEMV kernels once per token), 'int' (qgemm, the
 * register-blocked integer GEMM, bit-identical) or 'f32' (qgemm_f32: dequantize, then the f32 GEMM;
 * equal within f32 rounding). Measured on u4 g128 4096² (relaxed, 1 thread): the integer GEMM wins
 * from 2 tokens; the weight-only f32 route (dequantizing 16.7 M weights costs ~2 ms per call) from 8
 * (M = 4: 5.9 vs 4.5 ms for 4 GEMVs; M = 8: 8.7 vs 9.2; M = 128: 88 vs 168 ms, f32 sgemm 85 ms).
 */
export function qmmRoute(M: number, mode: number): 'gemv' | 'int' | 'f32' {
  if (mode === 0) return M >= QGEMM_F32_MIN_M ? 'f32' : 'gemv';
  return 'int';
}
export const QGEMM_F32_MIN_M = 8;
/** Weight rows per dequantized panel of qgemm_f32 (assembly/qmatmul.ts QF_ROWS). */
const QF_ROWS = 16;

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

/** A qmm-shaped call split over weight rows (args[count]) at multiples of 4: w, wp, bias and y advance with the row. */
function rowRanges(fn: string, args: number[], nSeg: number, rb: number, w: number, wp: number, bias: number, y: number, count = 1): RangeOp {
  return { fn, args, count, align: 4, advance: [[w, rb], [wp, nSeg * 12], [bias, 4], [y, 4]] };
}

/** qmm split over weight rows at multiples of 4 (its row quads). */
export function qmmRanges(args: number[], nSeg: number, rb: number): RangeOp {
  return rowRanges('qmm', args, nSeg, rb, 6, 8, 11, 12);
}

export function wasmQMatmul(ex: QMatmulExports, h: Heap, pool: ThreadPool | null = null): QMatmulKernels {
  return {
    firstOutside(n, x, lo, hi) {
      let r = -1;
      marshal(h, [[x, 'in', n]], (px) => { r = ex.first_outside_i32(n, px!, lo, hi); });
      return r;
    },
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
    qPrepQuant(M, K, x, nSeg, segc, gather, scale, zero, rowPeriod, bitsA, act, ap) {
      const Kc = segc[nSeg]!, slots = Math.min(rowPeriod, M) * nSeg;
      marshal(h, [[x, 'in', M * K], [segc, 'in', nSeg + 1], [gather, 'in', Kc * 16], [scale, 'in', slots], [zero, 'in', slots],
        [act, 'out', M * Kc * ACT_CHUNK_BYTES], [ap, 'out', M * nSeg * 4]],
      (px, ps, pg, psc, pz, pa, pp) => ex.qx_prep_quant(M, K, px!, nSeg, ps!, pg!, psc!, pz!, rowPeriod, 2 ** bitsA - 1, pa!, pp!));
    },
    qmm(M, N, nSeg, segc, format, mode, w, rb, wp, act, ap, bias, y, ldy) {
      const Kc = segc[nSeg]!, quads = Math.ceil(N / 4);
      marshal(h, [[segc, 'in', nSeg + 1], [w, 'in', quads * 4 * rb], [wp, 'in', quads * nSeg * 12], [act, 'in', M * Kc * ACT_CHUNK_BYTES],
        [ap, 'in', M * nSeg * 4], [bias, 'in', N], [y, ldy === N ? 'out' : 'inout', span(M, N, ldy)]],
      (ps, pw, pwp, pa, pap, pb, py) => {
        const kmode = mode === 0 && relaxedDotOff.has(ex) ? 3 : mode;
        const bits = FORMATS[format].bits, flops = 2 * M * N * Kc * 16, route = qmmRoute(M, mode);
        if (route === 'gemv') {
          splitCall(pool, ex, qmmRanges([M, N, nSeg, ps!, bits, kmode, pw!, rb, pwp!, pa!, pap!, pb!, py!, ldy], nSeg, rb), flops);
          return;
        }
        if (M === 1) {
          // integer GEMV: the compact u − o plane, weights unpacked in registers
          const xa = h.alloc(Kc * 32, 'qgemv activations');
          try {
            ex.qx_pack16(1, nSeg, ps!, pa!, pap!, xa);
            splitCall(pool, ex, rowRanges('qgemv_int', [N, nSeg, ps!, bits, pw!, rb, pwp!, xa, pap!, pb!, py!], nSeg, rb, 4, 6, 9, 10, 0), flops);
          } finally { h.free(xa); }
          return;
        }
        // GEMM: one shared activation buffer, one weight panel per thread
        const threads = pool?.shouldSplit(flops) ? pool.threads : 1;
        if (route === 'f32') {
          // dequantize, then the f32 GEMM, over the compact columns (each segment's droppable tail left out)
          const real = h.alloc(nSeg * 4, 'qgemm_f32 segment lengths');
          try {
            const Kr = ex.qx_real_f32(M, nSeg, ps!, pa!, real), ldx = Kr + 16;
            // x̂ and the per-thread panels in one block, each panel on a cache line
            const xfBytes = Math.ceil((M * ldx * 4) / 64) * 64, panelBytes = Math.ceil((QF_ROWS * ldx * 4) / 64) * 64;
            const xf = h.alloc(xfBytes + panelBytes * threads, 'qgemm_f32 activations and panels'), panel = xf + xfBytes;
            try {
              ex.qx_unpack_f32(M, nSeg, ps!, pa!, pap!, real, xf, ldx);
              const op = rowRanges('qgemm_f32', [M, N, nSeg, ps!, bits, pw!, rb, pwp!, xf, pb!, py!, ldy, real, Kr, ldx, panel], nSeg, rb, 5, 7, 9, 10);
              op.perThread = [op.args.length - 1, panelBytes];
              splitCall(pool, ex, op, flops);
            } finally { h.free(xf); }
          } finally { h.free(real); }
          return;
        }
        // relaxed binary, codes ≤ 127 and weight codes ≤ 15: the i8×i7 dot (unless its self-test failed)
        const u7 = mode === 1 && bits <= 4 && ex.is_relaxed() === 1 && !relaxedDotOff.has(ex);
        // per thread: the unpacked row quad, then the kernel's per-segment ends (panelEnds)
        const panelBytes = Math.ceil(((u7 ? Kc * 64 : Kc * 128) + nSeg * 4) / 64) * 64;
        // the compact activations and the per-thread panels in one block, each panel on a cache line
        const xaBytes = Math.ceil((M * Kc * (u7 ? 16 : 32)) / 64) * 64;
        const xa = h.alloc(xaBytes + panelBytes * threads, 'qgemm activations and panels'), panel = xa + xaBytes;
        try {
          if (u7) ex.qx_pack8(M, nSeg, ps!, pa!, pap!, xa);
          else ex.qx_pack16(M, nSeg, ps!, pa!, pap!, xa);
          const op = rowRanges(u7 ? 'qgemm_u7' : 'qgemm', [M, N, nSeg, ps!, bits, pw!, rb, pwp!, xa, pap!, pb!, py!, ldy, panel], nSeg, rb, 5, 7, 10, 11);
          op.perThread = [op.args.length - 1, panelBytes];
          splitCall(pool, ex, op, flops);
        } finally { h.free(xa); }
      });
    },
  };
}
