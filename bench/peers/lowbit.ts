// lowbit's side of the peer benchmark: the same shapes with the same quantization, run by lowbit's
// kernels with weights resident in WASM memory (as the decoder keeps them).
//
// f32: Kernels.sgemmNT. 4-bit and int8: the integer matmul kernels (src/kernels/qmatmul.ts) through
// src/quant/qlinear.ts (`packQLinear` once, then `qlinear` / `qlinearInt` per call). A producer that
// cannot run throws NotAvailable and the table says so instead of showing a number.

import type { Backend } from '../../src/runtime.js';
import { quantize, type QuantizedTensor } from '../../src/quant/index.js';
import { packQLinear, qlinear, qlinearInt, type QLinear } from '../../src/quant/qlinear.js';
import { Tensor } from '../../src/tensor.js';

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

/** Bytes a QLinear streams per call: packed codes + per (row quad, segment) parameters (12 f32). */
function qlinearBytes(w: QLinear): number {
  return w.codeBytes + w.wp.byteLength;
}

/**
 * 4-bit per-group (block) weights, f32 activations: lowbit's weight-only GEMV/GEMM (`qlinear`, the
 * u4 qmm kernel), weights resident in the backend's heap. Same codes/scales/zeros as ORT's MatMulNBits.
 */
export function lowbitQ4(b: Backend, M: number, _N: number, K: number, a: Float32Array, q: QuantizedTensor): Runner {
  if (!b.heap) throw new Error('lowbitQ4 needs a WASM backend');
  const opts = { kernels: b.kernels, heap: b.heap };
  const w = packQLinear(q, opts);
  if (a.length !== M * K) throw new Error('lowbitQ4: activation size');
  let y: Float32Array = new Float32Array(0);
  return {
    weightBytes: qlinearBytes(w),
    fn() { y = qlinear(a, w, null, opts); },
    output: () => y,
    release: () => w.dispose(),
  };
}

/**
 * W8A8, the equivalent of ORT's DynamicQuantizeLinear + MatMulInteger: activations quantized inside
 * the timed call to u8, asymmetric, one range per tensor (DynamicQuantizeLinear's scheme); weights
 * int8 symmetric per output channel (codes + 128 in u8 storage); `qlinearInt` runs the integer dots
 * (8-bit activation codes: mode 2, two i8 dots per 16 codes on the relaxed binary).
 */
export function lowbitI8(b: Backend, M: number, _N: number, K: number, a: Float32Array, q: QuantizedTensor): Runner {
  if (!b.heap) throw new Error('lowbitI8 needs a WASM backend');
  const opts = { kernels: b.kernels, heap: b.heap };
  const w = packQLinear(q, opts);
  const x = Tensor.fromArray(a, [M, K]);
  let y: Float32Array = new Float32Array(0);
  return {
    weightBytes: qlinearBytes(w),
    fn() {
      const aq = quantize(x, { bits: 8, symmetric: false, granularity: { kind: 'perTensor' } }, undefined, { kernels: b.kernels });
      y = qlinearInt(aq, w, null, opts);
    },
    output: () => y,
    release: () => w.dispose(),
  };
}
