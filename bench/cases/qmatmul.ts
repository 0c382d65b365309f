// Bit-packed matmul cases: weight-only GEMV (u4 g32/g128 4096², 768→3072 and 3072→768, u3/u2 g128),
// small-M weight-only GEMM (M = 4) and int x int GEMM (W8A8,
// W4A4, per-row-cluster), each against the f32 sgemmNT of the same shape on the same backend
// ('<backend> f32' peer). Weights resident; GB/s counts packed code bytes read.

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { seededFloats as rand } from '../data.js';
import { quantize } from '../../src/quant/quantize.js';
import { packQLinear, qlinear, qlinearInt, type QLinear } from '../../src/quant/qlinear.js';
import { Tensor } from '../../src/tensor.js';
import type { Bits, QuantizedTensor } from '../../src/quant/types.js';
import { place } from './f32.js';

/**
 * The f32 peer's operands copied into the backend's heap once; returns fresh views per call. It keeps byte offsets,
 * not views: placing the next operand may grow the memory, which detaches earlier views (a detached view's
 * byteOffset reads 0, and the GEMM then ran on whatever sat at address 0).
 */
function placed(b: Backend, arrays: Float32Array[]): () => Float32Array[] {
  if (!b.heap) return () => arrays;
  const at = arrays.map((a) => place(b, a).byteOffset);
  return () => at.map((p, i) => b.heap!.f32(p, arrays[i]!.length));
}

export function qmatmulCases(ctx: BenchContext): BenchCase[] {
  const cases: BenchCase[] = [];
  const runs: Array<[string, Backend]> = [
    ...Object.entries(ctx.backends).filter(([n, b]) => n !== 'js' && b).map(([n, b]) => [n, b!] as [string, Backend]),
    ...Object.entries(ctx.threaded).filter(([, b]) => b).map(([n, b]) => [`${n} 2T`, b!] as [string, Backend]),
  ];
  // [N, K, bits, group, M]: M = 1 GEMV (decode); M = 4 the GEMV kernel per token; M = 128 prefill
  // (src/wasm/qmatmul.ts qmmRoute: dequantized f32 panels + the f32 GEMM)
  const gemv: Array<[number, number, Bits, number, number]> = [[4096, 4096, 4, 128, 1], [4096, 4096, 4, 32, 1], [4096, 4096, 3, 128, 1],
    [4096, 4096, 2, 128, 1], [3072, 768, 4, 128, 1], [768, 3072, 4, 128, 1], [4096, 4096, 4, 128, 4], [4096, 4096, 4, 128, 128]];
  for (const [N, K, bits, g, M] of gemv) {
    if (ctx.quick && M > 1) continue;
    const group = `${M === 1 ? 'qgemv' : 'qgemm'} W${bits}A16 g${g} ${M}x${K}·${K}x${N}`;
    const w0 = rand(N * K, 2), x0 = rand(M * K, 1);
    for (const [name, b] of runs) {
      let ql: QLinear | null = null;
      cases.push({
        group, impl: name, peer: `${name} f32`, flops: 2 * M * N * K,
        setup() { ql ??= packQLinear(quantize(Tensor.fromArray(w0, [N, K]), { bits, symmetric: false, granularity: { kind: 'perGroup', groupSize: g } }, undefined, { kernels: b.kernels }), { kernels: b.kernels, heap: b.heap }); },
        fn() { qlinear(x0, ql!, null, { kernels: b.kernels, heap: b.heap }); },
        get bytes() { return ql ? ql.codeBytes : (N * K * bits) / 8; },
      } as BenchCase);
      let f32: (() => Float32Array[]) | null = null;
      cases.push({
        group, impl: `${name} f32`, flops: 2 * M * N * K, bytes: 4 * N * K,
        setup() { f32 ??= placed(b, [x0, w0, new Float32Array(M * N)]); },
        fn() { const [x, w, y] = f32!(); b.kernels.sgemmNT(M, N, K, x!, K, w!, K, y!, N, null); },
      });
    }
  }
  // integer × integer prefill, activations per cluster of `cl` channels (128: 32 RPTQ-sized segments; 4096: one)
  const gemm: Array<[number, number, number, Bits, Bits, number]> = [[128, 768, 768, 8, 8, 128], [128, 768, 768, 4, 4, 128],
    [128, 4096, 4096, 8, 8, 128], [128, 4096, 4096, 4, 4, 128], [128, 4096, 4096, 8, 8, 4096], [128, 4096, 4096, 4, 4, 4096]];
  for (const [M, N, K, bw, ba, cl] of gemm) {
    if (ctx.quick && K > 1000) continue;
    const group = `qgemm W${bw}A${ba} ${M}x${K}·${K}x${N}${cl === K ? ' 1 segment' : ` ${K / cl} clusters`}`;
    const nC = K / cl;
    const clusters = { perm: Int32Array.from({ length: K }, (_, i) => i), offsets: Int32Array.from({ length: nC + 1 }, (_, i) => i * cl) };
    const w0 = rand(N * K, 2), x0 = rand(M * K, 1);
    for (const [name, b] of runs) {
      let ql: QLinear | null = null, aq: QuantizedTensor | null = null;
      cases.push({
        group, impl: name, peer: `${name} f32`, flops: 2 * M * N * K,
        setup() {
          ql ??= packQLinear(quantize(Tensor.fromArray(w0, [N, K]), { bits: bw, symmetric: false, granularity: { kind: 'perRowCluster', clusters } }, undefined, { kernels: b.kernels }), { kernels: b.kernels, heap: b.heap });
          aq ??= quantize(Tensor.fromArray(x0, [M, K]), { bits: ba, symmetric: false, granularity: { kind: 'perCluster', clusters } }, undefined, { kernels: b.kernels });
        },
        fn() { qlinearInt(aq!, ql!, null, { kernels: b.kernels, heap: b.heap }); },
      });
      let f32: (() => Float32Array[]) | null = null;
      cases.push({
        group, impl: `${name} f32`, flops: 2 * M * N * K,
        setup() { f32 ??= placed(b, [x0, w0, new Float32Array(M * N)]); },
        fn() { const [x, w, y] = f32!(); b.kernels.sgemmNT(M, N, K, x!, K, w!, K, y!, N, null); },
      });
    }
  }
  return cases;
}
