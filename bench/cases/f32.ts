// f32 GEMV/GEMM cases: each WASM backend against the js reference, with weights resident in WASM
// memory (as the decoder keeps them); 2-thread rows ('simd 2T') against the same binary on one
// thread; plus the single-core SIMD peak probe.

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { seededFloats as rand } from '../data.js';
import { packedRowBytes } from '../../src/quant/formats.js';

/** Copies `src` into the backend's heap (resident), or returns it for the js backend. */
export function place(b: Backend, src: Float32Array): Float32Array {
  if (!b.heap) return src;
  const p = b.heap.alloc(src.byteLength, 'bench operand');
  const v = b.heap.f32(p, src.length);
  v.set(src);
  return v;
}

export function f32Cases(ctx: BenchContext): BenchCase[] {
  const cases: BenchCase[] = [];
  const shapes: Array<[string, number, number, number]> = [
    ['gemv f32 1x768·768x3072', 1, 3072, 768],
    ['gemv f32 1x4096·4096x4096', 1, 4096, 4096],
    ['gemm f32 128x768·768x768', 128, 768, 768],
    // 154 MB of weights, far beyond L2/L3-resident sizes: its GB/s is the DRAM streaming rate that
    // bounds f32 decode (the decoder's roofline divides weight bytes per token by it)
    ['gemv f32 1x768·768x50272 (OPT LM head, 154 MB)', 1, 50272, 768],
  ];
  for (const [group, M, N, K] of shapes) {
    const a0 = rand(M * K, 1), w0 = rand(N * K, 2);
    const jsToo = N * K <= 4096 * 4096;
    const runs: Array<[string, Backend | undefined, string]> = [
      ...Object.entries(ctx.backends).map(([n, b]) => [n, b, 'js'] as [string, Backend | undefined, string]),
      ...Object.entries(ctx.threaded).map(([n, b]) => [`${n} 2T`, b, n] as [string, Backend | undefined, string]),
    ];
    for (const [name, b, peer] of runs) {
      if (!b || (name === 'js' && !jsToo)) continue;
      // operands are placed lazily (views are re-created, since other cases may grow memory)
      let args: { a: Float32Array; w: Float32Array; c: Float32Array } | null = null;
      let ptrs: number[] = [];
      const views = () => {
        if (!b.heap) return args!;
        return { a: b.heap.f32(ptrs[0]!, M * K), w: b.heap.f32(ptrs[1]!, N * K), c: b.heap.f32(ptrs[2]!, M * N) };
      };
      cases.push({
        group, impl: name, peer, flops: 2 * M * N * K, bytes: 4 * (M * K + N * K),
        setup() {
          if (args || ptrs.length) return;
          if (!b.heap) { args = { a: a0, w: w0, c: new Float32Array(M * N) }; return; }
          const a = place(b, a0);
          const pa = a.byteOffset;
          const pw = place(b, w0).byteOffset;
          const pc = b.heap.alloc(M * N * 4, 'bench out');
          ptrs = [pa, pw, pc];
        },
        fn() {
          const v = views();
          b.kernels.sgemmNT(M, N, K, v.a, K, v.w, K, v.c, N, null);
        },
      });
    }
  }
  // decode attention of one OPT-125m layer (12 heads × 64, one query, 128 cached keys): the fused
  // kernel against the per-head path it replaced (sgemmNT → softmax → sgemmNN, 36 calls), same backend
  {
    const H = 12, hs = 64, dim = H * hs, L = 129;
    const q0 = rand(dim, 5), k0 = rand(L * dim, 6), v0 = rand(L * dim, 7);
    for (const [name, b] of Object.entries(ctx.backends)) {
      if (!b?.heap) continue;
      let ptrs: number[] = [];
      const views = () => ({ q: b.heap!.f32(ptrs[0]!, dim), k: b.heap!.f32(ptrs[1]!, L * dim), v: b.heap!.f32(ptrs[2]!, L * dim),
        o: b.heap!.f32(ptrs[3]!, dim), att: b.heap!.f32(ptrs[4]!, L) });
      const setup = () => {
        if (ptrs.length) return;
        ptrs = [place(b, q0).byteOffset, place(b, k0).byteOffset, place(b, v0).byteOffset, b.heap!.alloc(dim * 4, 'bench out'), b.heap!.alloc(L * 4, 'bench att')];
      };
      const group = `attention decode 12×64 heads, 128 cached keys (${name})`, flops = 4 * dim * L, bytes = 8 * L * dim;
      cases.push({
        group, impl: 'per head (3 calls × 12)', flops, bytes, setup,
        fn() {
          const x = views();
          for (let h = 0; h < H; h++) {
            b.kernels.sgemmNT(1, L, hs, x.q.subarray(h * hs), dim, x.k.subarray(h * hs), dim, x.att, L, null);
            b.kernels.softmax(1, L, x.att, x.att, L - 1);
            b.kernels.sgemmNN(1, hs, L, x.att, L, x.v.subarray(h * hs), dim, x.o.subarray(h * hs), dim, null);
          }
        },
      });
      cases.push({
        group, impl: 'fused', peer: 'per head (3 calls × 12)', flops, bytes, setup,
        fn() { const x = views(); b.kernels.attention(H, hs, 1, L, x.q, dim, x.k, dim, x.v, x.o, dim, L - 1, null, 0); },
      });
    }
  }
  // decode attention over a 4-bit packed KV cache (OPT-125m layer, 512 cached keys, 4 clusters per head as RPTQ's
  // R2/R3): attentionPacked against the path it replaced (dequantizeUnpack of K and V into f32 rows, then attention),
  // same backend; the f32-cache attention at the same context for scale
  {
    const H = 12, hs = 64, dim = H * hs, L = 512, rb = packedRowBytes('u4', dim);
    const q0 = rand(dim, 8), kf0 = rand(L * dim, 9), vf0 = rand(L * dim, 10);
    const offsets = Int32Array.from({ length: 4 * H + 1 }, (_, i) => Math.round((i * dim) / (4 * H)));
    const scale = Float32Array.from({ length: 4 * H }, (_, i) => 0.01 + 0.001 * i), zero = Uint8Array.from({ length: 4 * H }, (_, i) => 4 + (i % 8));
    const codes = Uint8Array.from({ length: L * rb }, (_, i) => (i * 2654435761) >>> 24);
    for (const [name, b] of Object.entries(ctx.backends)) {
      if (!b?.heap) continue;
      const h = b.heap;
      let p: Record<string, number> | null = null;
      const setup = () => {
        if (p) return;
        const u8 = (src: Uint8Array) => { const q = h.alloc(src.length, 'bench cache'); h.u8(q, src.length).set(src); return q; };
        p = { q: place(b, q0).byteOffset, kf: place(b, kf0).byteOffset, vf: place(b, vf0).byteOffset, kp: u8(codes), vp: u8(codes),
          o: h.alloc(dim * 4, 'bench out'), ks: h.alloc(L * dim * 4, 'bench K rows'), vs: h.alloc(L * dim * 4, 'bench V rows') };
      };
      const rows = (ptr: number) => ({ format: 'u4' as const, data: h.u8(ptr, L * rb), nSeg: 4 * H, offsets, scale, zero });
      const group = `attention decode 12×64 heads, 512 cached keys, 4-bit packed cache (${name})`, flops = 4 * dim * L;
      cases.push({
        group, impl: 'f32 cache (attention)', flops, bytes: 8 * L * dim, setup,
        fn() { b.kernels.attention(H, hs, 1, L, h.f32(p!.q!, dim), dim, h.f32(p!.kf!, L * dim), dim, h.f32(p!.vf!, L * dim), h.f32(p!.o!, dim), dim, L - 1, null, 0); },
      });
      cases.push({
        group, impl: 'dequantize + attention', flops, bytes: 2 * L * rb, setup,
        fn() {
          const k = b.kernels, ks = h.f32(p!.ks!, L * dim), vs = h.f32(p!.vs!, L * dim);
          k.dequantizeUnpack(L, dim, 'u4', h.u8(p!.kp!, L * rb), 4 * H, offsets, scale, zero, 1, ks);
          k.dequantizeUnpack(L, dim, 'u4', h.u8(p!.vp!, L * rb), 4 * H, offsets, scale, zero, 1, vs);
          k.attention(H, hs, 1, L, h.f32(p!.q!, dim), dim, ks, dim, vs, h.f32(p!.o!, dim), dim, L - 1, null, 0);
        },
      });
      cases.push({
        group, impl: 'fused (attentionPacked)', peer: 'dequantize + attention', flops, bytes: 2 * L * rb, setup,
        fn() { b.kernels.attentionPacked(H, hs, 1, L, h.f32(p!.q!, dim), dim, rows(p!.kp!), rows(p!.vp!), h.f32(p!.o!, dim), dim, L - 1, null, 0); },
      });
    }
  }
  // single-core SIMD peak of each binary's op mix: the GEMM's "fraction of peak" divides by it
  const iters = 2_000_000;
  for (const name of ['simd', 'relaxed'] as const) {
    const b = ctx.backends[name];
    if (b) {
      cases.push({
        group: `peak f32 SIMD (${name === 'relaxed' ? 'fma' : 'mul+add'} chains, no loads)`, impl: name,
        flops: (name === 'relaxed' ? 96 : 48) * iters, fn: () => { b.kernels.peakF32(iters, name === 'relaxed'); },
      });
    }
  }
  return cases;
}
