// f32 kernels on a WASM instance: marshal typed arrays, call assembly/f32.ts exports.

import type { F32Kernels } from '../kernels/f32.js';
import { span } from '../kernels/check.js';
import type { Heap } from './heap.js';
import { marshal } from './marshal.js';

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
  peak_f32(iters: number): number;
  peak_f32_flops_per_iter(): number;
}

/** The f32 kernels on one instance (unchecked: src/kernels/ adds the checks). */
export function wasmF32(ex: F32Exports, h: Heap): F32Kernels {
  return {
    sgemmNT(M, N, K, a, lda, b, ldb, c, ldc, bias) {
      marshal(h, [[a, 'in', span(M, K, lda)], [b, 'in', span(N, K, ldb)], [c, ldc === N ? 'out' : 'inout', span(M, N, ldc)], [bias, 'in', N]],
        (pa, pb, pc, pz) => ex.sgemm_nt(M, N, K, pa!, lda, pb!, ldb, pc!, ldc, pz!));
    },
    sgemmNN(M, N, K, a, lda, b, ldb, c, ldc, bias) {
      marshal(h, [[a, 'in', span(M, K, lda)], [b, 'in', span(K, N, ldb)], [c, ldc === N ? 'out' : 'inout', span(M, N, ldc)], [bias, 'in', N]],
        (pa, pb, pc, pz) => ex.sgemm_nn(M, N, K, pa!, lda, pb!, ldb, pc!, ldc, pz!));
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
