// lowbit's side of the peer benchmark: the same shapes with the same quantization, run by lowbit's
// kernels with weights resident in WASM memory (as the decoder keeps them).
//
// f32: Kernels.sgemmNT. 4-bit and int8: the integer matmul kernels (src/quant/qlinear.ts,
// src/kernels/qmatmul.ts) are being written in parallel; until they are in the tree these producers
// throw NotAvailable and the table says so instead of showing a number.

import type { Backend } from '../../src/runtime.js';
import type { QuantizedTensor } from '../../src/quant/index.js';

/** One prepared benchmark subject: `fn` runs one matmul, `output()` reads its last result. */
export interface Runner {
  fn: () => void | Promise<void>;
  output: () => Float32Array;
  /** Bytes of weights (+ their quantization parameters) the call streams. */
  weightBytes: number;
  /** Set when the subject was timed elsewhere (an ORT host thread); `fn` is then not called. */
  timing?: { median: number; samples: number };
  release?: () => void | Promise<void>;
}

export class NotAvailable extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'NotAvailable';
  }
}

/** Copies `src` into `b`'s heap; returns the pointer. */
function put(b: Backend, src: Float32Array): number {
  const p = b.heap!.alloc(src.byteLength, 'peers operand');
  b.heap!.f32(p, src.length).set(src);
  return p;
}

/** f32 C = A · Wᵀ with A, W and C resident in the backend's WASM memory. */
export function lowbitF32(b: Backend, M: number, N: number, K: number, a: Float32Array, w: Float32Array): Runner {
  if (!b.heap) throw new Error('lowbitF32 needs a WASM backend');
  const pa = put(b, a), pw = put(b, w), pc = b.heap.alloc(M * N * 4, 'peers out');
  const h = b.heap;
  return {
    weightBytes: 4 * N * K,
    fn() {
      b.kernels.sgemmNT(M, N, K, h.f32(pa, M * K), K, h.f32(pw, N * K), K, h.f32(pc, M * N), N, null);
    },
    output: () => h.f32(pc, M * N).slice(),
    release() {
      h.free(pc); h.free(pw); h.free(pa);
    },
  };
}

const QLINEAR = 'src/quant/qlinear.ts / src/kernels/qmatmul.ts';

/** 4-bit per-group (block) weights, f32 activations: lowbit's 4-bit GEMV/GEMM. */
export function lowbitQ4(_b: Backend, _M: number, _N: number, _K: number, _a: Float32Array, _q: QuantizedTensor): Runner {
  // TODO(issue 4): wire in the 4-bit kernel once it lands (same codes/scales/zeros as ORT's MatMulNBits).
  throw new NotAvailable(`lowbit 4-bit matmul not yet available (${QLINEAR} not in the tree)`);
}

/** int8 weights (per output channel, symmetric) × int8 activations: lowbit's integer GEMM. */
export function lowbitI8(_b: Backend, _M: number, _N: number, _K: number, _a: Float32Array, _q: QuantizedTensor): Runner {
  // TODO(issue 4): wire in the int8 kernel once it lands.
  throw new NotAvailable(`lowbit int8 matmul not yet available (${QLINEAR} not in the tree)`);
}
