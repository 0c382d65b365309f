// f32 kernels on a WASM instance: marshal typed arrays, call assembly/f32.ts exports. With a thread
// pool, GEMV/GEMM are split over output ranges cut where assembly/f32.ts's tiling already cuts, so
// results are bit-identical for any thread count (see ntRanges / nnRanges).

import type { F32Kernels } from '../kernels/f32.js';
import { span } from '../kernels/check.js';
import { FORMATS, packedRowBytes } from '../quant/formats.js';
import type { Heap } from './heap.js';
import { marshal } from './marshal.js';
import { splitCall, type RangeOp, type ThreadPool } from './pool.js';

/** Raw exports of assembly/f32.ts: pointers are byte offsets into linear memory. */
export interface F32Exports {
  sgemm_nt(M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, bias: number): void;
  sgemm_nn(M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, bias: number): void;
  add_f32(n: number, a: number, b: number, out: number): void;
  mul_f32(n: number, a: number, b: number, out: number): void;
  add_row_f32(rows: number, cols: number, x: number, row: number, out: number): void;
  relu_f32(n: number, x: number, out: number): void;
  gelu_f32(n: number, x: number, out: number): void;
  layer_norm_f32(rows: number, cols: number, x: number, gamma: number, beta: number, eps: number, out: number): void;
  softmax_f32(rows: number, cols: number, x: number, out: number, causal: number): void;
  gather_rows_f32(n: number, dim: number, table: number, ids: number, out: number): void;
  argmax_f32(rows: number, cols: number, x: number, out: number): void;
  attention_f32(H: number, hs: number, T: number, L: number, q: number, ldq: number, k: number, ldk: number, v: number,
    out: number, ldo: number, causal: number, keyMask: number, levels: number, att: number): void;
  attention_packed(H: number, hs: number, T: number, L: number, q: number, ldq: number, q0: number, kv: number,
    out: number, ldo: number, causal: number, keyMask: number, levels: number, att: number, scratch: number): void;
  attention_bf16(H: number, hs: number, T: number, L: number, q: number, ldq: number, k: number, ldk: number, v: number,
    out: number, ldo: number, causal: number, keyMask: number, levels: number, att: number, scratch: number): void;
  f32_to_bf16(n: number, x: number, out: number): void;
  peak_f32(iters: number): number;
  peak_f32_flops_per_iter(): number;
}

/**
 * sgemm_nt split for threads. By columns of C (rows of B, the weight's output rows) at multiples of
 * 4: the kernel computes columns in groups of 4 from each block start (a multiple of 4) and only the
 * last N % 4 columns with its scalar `dot`, so every element sees the same instructions whatever the
 * cut. (Equal chunks beat chunks rounded to the kernel's L2 column block `nc`: 128x768·768x768 runs
 * 1.97x on 2 threads with equal chunks, 1.75x with nc-rounded ones, which split 768 columns 5 ways.)
 * When N is too narrow to share (Q·Kᵀ of a short context), by rows of C at even boundaries
 * instead: rows are computed in pairs.
 */
export function ntRanges(threads: number, M: number, N: number, K: number, pa: number, lda: number, pb: number, ldb: number, pc: number, ldc: number, pz: number): RangeOp {
  const args = [M, N, K, pa, lda, pb, ldb, pc, ldc, pz];
  if (N >= 8 * threads || M < 2 * threads) {
    return { fn: 'sgemm_nt', args, count: 1, align: 4, advance: [[5, ldb * 4], [7, 4], [9, 4]] };
  }
  return { fn: 'sgemm_nt', args, count: 0, align: 2, advance: [[3, lda * 4], [7, ldc * 4]] };
}

/**
 * sgemm_nn split: by rows of C at multiples of 4 (its 4-row tiles; the M % 4 rows left use a
 * one-row loop and stay in the last chunk), or for few rows by columns at multiples of 8 (its
 * 8-column tiles; the N % 8 scalar tail stays in the last chunk).
 */
export function nnRanges(threads: number, M: number, N: number, K: number, pa: number, lda: number, pb: number, ldb: number, pc: number, ldc: number, pz: number): RangeOp {
  const args = [M, N, K, pa, lda, pb, ldb, pc, ldc, pz];
  if (M >= 8 * threads || N < 16 * threads) return { fn: 'sgemm_nn', args, count: 0, align: 4, advance: [[3, lda * 4], [7, ldc * 4]] };
  return { fn: 'sgemm_nn', args, count: 1, align: 8, advance: [[5, 4], [7, 4], [9, 4]] };
}

/**
 * attention_f32 split for threads by heads (each head's rows, columns and scratch att + h·L are its
 * own), so every output element sees the same instructions whatever the cut. One range of heads per
 * thread (align = ⌈H / threads⌉): every chunk walks all L cache rows, so finer chunks repeat the per-row
 * work (OPT-125m layer, 128 keys, warm, relaxed: 2 threads with 2-head chunks 35–37 µs vs 33 µs on one).
 */
export function attentionRanges(args: number[], hs: number, L: number, threads = 1): RangeOp {
  const align = Math.max(1, Math.ceil(args[0]! / threads));
  return { fn: 'attention_f32', args, count: 0, align, advance: [[4, hs * 4], [6, hs * 4], [8, hs * 4], [9, hs * 4], [14, L * 4]] };
}

/**
 * attention_packed split for threads by heads: as attentionRanges, plus the per-thread scratch (5·hs f32 per head);
 * q0 (arg 6) stays the whole call's q, so the kernel finds its first column from q − q0; the packed rows and their
 * descriptor are shared, read-only.
 */
export function attentionPackedRanges(args: number[], hs: number, L: number, threads = 1): RangeOp {
  const align = Math.max(1, Math.ceil(args[0]! / threads));
  return { fn: 'attention_packed', args, count: 0, align, advance: [[4, hs * 4], [8, hs * 4], [13, L * 4], [14, 5 * hs * 4]] };
}

/** Scratch f32 per head of attention_bf16: the widened row, and with several query rows (T > 1) all L rows of K and V. */
export function bf16ScratchPerHead(hs: number, T: number, L: number): number {
  return hs * (T > 1 ? 1 + 2 * L : 1);
}

/**
 * attention_bf16 split for threads by heads: as attentionRanges, with k and v advancing by hs bf16 values (2 bytes) per
 * head, and each thread's scratch (bf16ScratchPerHead f32 per head).
 */
export function attentionBf16Ranges(args: number[], hs: number, L: number, threads = 1): RangeOp {
  const align = Math.max(1, Math.ceil(args[0]! / threads));
  return {
    fn: 'attention_bf16', args, count: 0, align,
    advance: [[4, hs * 4], [6, hs * 2], [8, hs * 2], [9, hs * 4], [14, L * 4], [15, bf16ScratchPerHead(hs, args[2]!, L) * 4]],
  };
}

/** The f32 kernels on one instance (unchecked: src/kernels/ adds the checks). */
export function wasmF32(ex: F32Exports, h: Heap, pool: ThreadPool | null = null): F32Kernels {
  return {
    sgemmNT(M, N, K, a, lda, b, ldb, c, ldc, bias) {
      marshal(h, [[a, 'in', span(M, K, lda)], [b, 'in', span(N, K, ldb)], [c, ldc === N ? 'out' : 'inout', span(M, N, ldc)], [bias, 'in', N]],
        (pa, pb, pc, pz) => splitCall(pool, ex, ntRanges(pool?.threads ?? 1, M, N, K, pa!, lda, pb!, ldb, pc!, ldc, pz!), 2 * M * N * K));
    },
    sgemmNN(M, N, K, a, lda, b, ldb, c, ldc, bias) {
      marshal(h, [[a, 'in', span(M, K, lda)], [b, 'in', span(K, N, ldb)], [c, ldc === N ? 'out' : 'inout', span(M, N, ldc)], [bias, 'in', N]],
        (pa, pb, pc, pz) => splitCall(pool, ex, nnRanges(pool?.threads ?? 1, M, N, K, pa!, lda, pb!, ldb, pc!, ldc, pz!), 2 * M * N * K));
    },
    add(n, a, b, out) {
      marshal(h, [[a, 'in', n], [b, 'in', n], [out, 'out', n]], (pa, pb, po) => ex.add_f32(n, pa!, pb!, po!));
    },
    mul(n, a, b, out) {
      marshal(h, [[a, 'in', n], [b, 'in', n], [out, 'out', n]], (pa, pb, po) => ex.mul_f32(n, pa!, pb!, po!));
    },
    addRow(rows, cols, x, row, out) {
      const n = rows * cols;
      marshal(h, [[x, 'in', n], [row, 'in', cols], [out, 'out', n]], (px, pr, po) => ex.add_row_f32(rows, cols, px!, pr!, po!));
    },
    relu(n, x, out) {
      marshal(h, [[x, 'in', n], [out, 'out', n]], (px, po) => ex.relu_f32(n, px!, po!));
    },
    gelu(n, x, out) {
      marshal(h, [[x, 'in', n], [out, 'out', n]], (px, po) => ex.gelu_f32(n, px!, po!));
    },
    layerNorm(rows, cols, x, gamma, beta, eps, out) {
      const n = rows * cols;
      marshal(h, [[x, 'in', n], [gamma, 'in', cols], [beta, 'in', cols], [out, 'out', n]],
        (px, pg, pb, po) => ex.layer_norm_f32(rows, cols, px!, pg!, pb!, eps, po!));
    },
    softmax(rows, cols, x, out, causal) {
      const n = rows * cols;
      marshal(h, [[x, 'in', n], [out, 'out', n]], (px, po) => ex.softmax_f32(rows, cols, px!, po!, causal));
    },
    attention(H, hs, T, L, q, ldq, k, ldk, v, out, ldo, causal, keyMask, levels) {
      const w = H * hs;
      marshal(h, [[q, 'in', span(T, w, ldq)], [k, 'in', span(L, w, ldk)], [v, 'in', span(L, w, ldk)], [out, ldo === w ? 'out' : 'inout', span(T, w, ldo)],
        [keyMask, 'in', L]],
      (pq, pk, pv, po, pm) => {
        // per-head score rows: heap scratch that is never copied out
        const pa = h.alloc(H * L * 4, 'attention scores');
        try {
          splitCall(pool, ex, attentionRanges([H, hs, T, L, pq!, ldq, pk!, ldk, pv!, po!, ldo, causal, pm!, levels, pa], hs, L, pool?.threads ?? 1), 4 * H * hs * T * L);
        } finally { h.free(pa); }
      });
    },
    attentionPacked(H, hs, T, L, q, ldq, k, v, out, ldo, causal, keyMask, levels) {
      const w = H * hs;
      marshal(h, [[q, 'in', span(T, w, ldq)], [out, ldo === w ? 'out' : 'inout', span(T, w, ldo)], [keyMask, 'in', L],
        [k.data, 'in', L * packedRowBytes(k.format, w)], [k.offsets, 'in', k.nSeg + 1], [k.scale, 'in', k.nSeg], [k.zero, 'in', k.nSeg],
        [v.data, 'in', L * packedRowBytes(v.format, w)], [v.offsets, 'in', v.nSeg + 1], [v.scale, 'in', v.nSeg], [v.zero, 'in', v.nSeg]],
      (pq, po, pm, kd, ko, ks, kz, vd, vo, vs, vz) => {
        // one heap scratch block, never copied out: the descriptor (14 i32), per-head score rows, per-thread row scratch
        const line = (n: number) => Math.ceil(n / 64) * 64, attB = line(H * L * 4);
        const pkv = h.alloc(64 + attB + 5 * w * 4, 'attention scratch'), pa = pkv + 64, ps = pa + attB;
        try {
          h.i32(pkv, 14).set([kd!, packedRowBytes(k.format, w), FORMATS[k.format].bits, k.nSeg, ko!, ks!, kz!,
            vd!, packedRowBytes(v.format, w), FORMATS[v.format].bits, v.nSeg, vo!, vs!, vz!]);
          splitCall(pool, ex, attentionPackedRanges([H, hs, T, L, pq!, ldq, pq!, pkv, po!, ldo, causal, pm!, levels, pa, ps], hs, L, pool?.threads ?? 1), 4 * H * hs * T * L);
        } finally { h.free(pkv); }
      });
    },
    attentionBf16(H, hs, T, L, q, ldq, k, ldk, v, out, ldo, causal, keyMask, levels) {
      const w = H * hs;
      marshal(h, [[q, 'in', span(T, w, ldq)], [k, 'in', span(L, w, ldk)], [v, 'in', span(L, w, ldk)], [out, ldo === w ? 'out' : 'inout', span(T, w, ldo)],
        [keyMask, 'in', L]],
      (pq, pk, pv, po, pm) => {
        // one heap scratch block, never copied out: per-head score rows, then per head the widened row and, with several
        // query rows, K and V widened once
        const attB = Math.ceil(H * L * 4 / 64) * 64, pa = h.alloc(attB + H * bf16ScratchPerHead(hs, T, L) * 4, 'attention scratch');
        try {
          splitCall(pool, ex, attentionBf16Ranges([H, hs, T, L, pq!, ldq, pk!, ldk, pv!, po!, ldo, causal, pm!, levels, pa, pa + attB], hs, L, pool?.threads ?? 1), 4 * H * hs * T * L);
        } finally { h.free(pa); }
      });
    },
    toBf16(n, x, out) {
      marshal(h, [[x, 'in', n], [out, 'out', n]], (px, po) => ex.f32_to_bf16(n, px!, po!));
    },
    gatherRows(n, dim, table, ids, out) {
      marshal(h, [[table, 'in', table.length], [ids, 'in', n], [out, 'out', n * dim]],
        (pt, pi, po) => ex.gather_rows_f32(n, dim, pt!, pi!, po!));
    },
    argmax(rows, cols, x, out) {
      marshal(h, [[x, 'in', rows * cols], [out, 'out', rows]], (px, po) => ex.argmax_f32(rows, cols, px!, po!));
    },
    peakF32(iters) {
      return ex.peak_f32(iters);
    },
  };
}
