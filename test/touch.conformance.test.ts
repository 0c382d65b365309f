// Page-ahead touches (assembly/touch.ts) stay inside the arrays they stream: the GEMV kernels' codes
// and scales, attention's K and V. Each array in turn is placed flush against the end of linear
// memory, where a touch one byte past it would trap (WebAssembly bounds check); the kernels must run
// there and give the same result as elsewhere (the GEMVs: the js twin's, bit for bit).

import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/runtime.js';
import { instantiate, type WasmFlavor } from '../src/wasm/loader.js';
import { quantize } from '../src/quant/quantize.js';
import { packQLinear, qlinear } from '../src/quant/qlinear.js';
import { FORMATS, packedRowBytes } from '../src/quant/formats.js';
import { ACT_CHUNK_BYTES } from '../src/kernels/qmatmul.js';
import { Tensor } from '../src/tensor.js';
import type { Bits } from '../src/quant/types.js';
import { rand } from './browser/workloads.js';

// the WASM flavours named in LOWBIT_BACKENDS (the relaxed run sets it to relaxed; js has no touches)
const flavors = (process.env.LOWBIT_BACKENDS ?? 'js,simd').split(',').map((s) => s.trim()).filter((s) => s !== 'js') as WasmFlavor[];

describe.each(flavors)('GEMV page-ahead touches (%s)', (flavor) => {
  // 16 KiB+ of codes and several pages of scales, so every stream crosses pages; N not a multiple of 4
  const N = 250, K = 992, M = 1;
  for (const bits of [2, 3, 4, 8] as Bits[]) {
    for (const at of ['w', 'wp'] as const) {
      it(`u${bits}, ${at} flush with the end of memory: no trap, bit-identical to js`, async () => {
        const js = await createBackend('js');
        const w = rand(N * K, 3 + bits), x = rand(M * K, 5);
        const q = quantize(Tensor.fromArray(w, [N, K]), { bits, symmetric: false, granularity: { kind: 'perGroup', groupSize: 32 } },
          undefined, { kernels: js.kernels });
        const ql = packQLinear(q, { kernels: js.kernels, heap: null });
        const want = qlinear(x, ql, null, { kernels: js.kernels, heap: null });
        const Kc = ql.segc[ql.nSeg]!;
        const act = new Uint8Array(M * Kc * ACT_CHUNK_BYTES), ap = new Float32Array(M * ql.nSeg * 4);
        js.kernels.qPrepF32(M, K, x, ql.nSeg, ql.segc, ql.gatherX, act, ap);

        const inst = await instantiate(flavor, { initialMemoryBytes: 4 << 20 });
        const h = inst.heap, ex = inst.exports;
        const put = (a: Uint8Array, p: number) => { h.u8(p, a.byteLength).set(a); return p; };
        const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
        const wB = bytes(ql.w), wpB = bytes(ql.wp);
        const ps = put(bytes(ql.segc), h.alloc(ql.segc.byteLength));
        const pa = put(act, h.alloc(act.byteLength)), pap = put(bytes(ap), h.alloc(ap.byteLength));
        const py = h.alloc(N * 4);
        const end = h.stats().memoryBytes;
        expect(h.stats().top + wB.length + wpB.length).toBeLessThan(end);
        // the tested array ends exactly at the last byte of memory; the other is heap-allocated
        const pw = at === 'w' ? put(wB, end - wB.length) : put(wB, h.alloc(wB.length));
        const pwp = at === 'wp' ? put(wpB, end - wpB.length) : put(wpB, h.alloc(wpB.length));
        expect(at === 'w' ? pw + wB.length : pwp + wpB.length).toBe(end);

        ex.qmm(M, N, ql.nSeg, ps, FORMATS[ql.format].bits, 0, pw, ql.rb, pwp, pa, pap, 0, py, N);
        expect(Array.from(h.f32(py, N))).toEqual(Array.from(want));

        // the one-token integer GEMV (qgemv_int) walks the same two streams: same result as with both
        // arrays in the middle of the heap
        const a16 = h.alloc(Kc * 32);
        ex.qx_pack16(1, ql.nSeg, ps, pa, pap, a16);
        const gemvInt = (w: number, wp: number) => {
          h.f32(py, N).fill(NaN);
          ex.qgemv_int(N, ql.nSeg, ps, FORMATS[ql.format].bits, w, ql.rb, wp, a16, pap, 0, py);
          return Array.from(h.f32(py, N));
        };
        const atEnd = gemvInt(pw, pwp);
        const inside = gemvInt(put(wB, h.alloc(wB.length)), put(wpB, h.alloc(wpB.length)));
        expect(atEnd.every(Number.isFinite)).toBe(true);
        expect(atEnd).toEqual(inside);
      });
    }
  }
});

describe.each(flavors)('attention page-ahead touches (%s)', (flavor) => {
  it('K and V flush with the end of memory: no trap, same output as inside the heap', async () => {
    const H = 4, hs = 64, L = 40, D = H * hs, T = 1;
    const q = rand(T * D, 7), k = rand(L * D, 8), v = rand(L * D, 9);
    const inst = await instantiate(flavor, { initialMemoryBytes: 4 << 20 });
    const h = inst.heap, ex = inst.exports;
    const put = (a: Float32Array, p: number) => { h.f32(p, a.length).set(a); return p; };
    const pq = put(q, h.alloc(q.byteLength)), po = h.alloc(T * D * 4), patt = h.alloc(H * L * 4);
    const run = (pk: number, pv: number) => {
      h.f32(po, T * D).fill(NaN);
      ex.attention_f32(H, hs, T, L, pq, D, pk, D, pv, po, D, -1, 0, 0, patt);
      return Array.from(h.f32(po, T * D));
    };
    const inside = run(put(k, h.alloc(k.byteLength)), put(v, h.alloc(v.byteLength)));
    const end = h.stats().memoryBytes;
    expect(h.stats().top + k.byteLength + v.byteLength).toBeLessThan(end);
    // V ends at the last byte of memory, K just before it
    const atEnd = run(put(k, end - v.byteLength - k.byteLength), put(v, end - v.byteLength));
    expect(inside.every(Number.isFinite)).toBe(true);
    expect(atEnd).toEqual(inside);
  });

  for (const T of [1, 2]) it(`bf16 K and V flush with the end of memory, T = ${T} (${T === 1 ? 'rows widened one by one' : 'widened once'}), whole call and a thread's call on the last heads: no trap, same output`, async () => {
    const H = 4, hs = 64, L = 40, D = H * hs, h0 = 2, perHead = hs * (T > 1 ? 1 + 2 * L : 1);
    const q = rand(T * D, 7), bits = Uint16Array.from(rand(2 * L * D, 8), (x) => (x * 30000) & 0x3fff | 0x3c00);
    const inst = await instantiate(flavor, { initialMemoryBytes: 4 << 20 });
    const h = inst.heap, ex = inst.exports, kvB = L * D * 2;
    const pq = h.alloc(T * D * 4), po = h.alloc(T * D * 4), patt = h.alloc(H * L * 4), prow = h.alloc(H * perHead * 4);
    h.f32(pq, T * D).set(q);
    const put = (p: number, part: number) => { new Uint16Array(h.u8(p, kvB).buffer, p, L * D).set(bits.subarray(part * L * D, (part + 1) * L * D)); return p; };
    // heads hA.. (a thread's call: q, k, v, out, att and scratch advanced by hA heads); the heads' columns of each row
    const run = (pk: number, pv: number, hA: number) => {
      h.f32(po, T * D).fill(NaN);
      ex.attention_bf16(H - hA, hs, T, L, pq + hA * hs * 4, D, pk + hA * hs * 2, D, pv + hA * hs * 2, po + hA * hs * 4, D, -1, 0, 0,
        patt + hA * L * 4, prow + hA * perHead * 4);
      return Array.from(h.f32(po, T * D)).filter((_, i) => i % D >= hA * hs);
    };
    const pk = put(h.alloc(kvB), 0), pv = put(h.alloc(kvB), 1);
    const inside = run(pk, pv, 0), insideLast = run(pk, pv, h0);
    const end = h.stats().memoryBytes;
    expect(h.stats().top + 2 * kvB).toBeLessThan(end);
    // V's rows end at the last byte of memory, K's just before them
    const ek = put(end - 2 * kvB, 0), ev = put(end - kvB, 1);
    expect(inside.every(Number.isFinite)).toBe(true);
    expect(run(ek, ev, 0)).toEqual(inside);
    expect(run(ek, ev, h0)).toEqual(insideLast);
    // the last heads' call computes exactly the whole call's columns of those heads
    expect(insideLast).toEqual(inside.filter((_, i) => i % D >= h0 * hs));
  });

  it('packed K and V (u4, u3; fused and row paths) flush with the end of memory: no trap, same output as inside the heap', async () => {
    const H = 4, L = 40, T = 1;
    const inst = await instantiate(flavor, { initialMemoryBytes: 4 << 20 });
    const h = inst.heap, ex = inst.exports;
    for (const [bits, hs] of [[4, 64], [3, 64], [4, 24], [3, 20]] as const) {
      const D = H * hs, rb = packedRowBytes(bits === 4 ? 'u4' : 'u3', D), nSeg = 2 * H;
      const codes = Uint8Array.from({ length: L * rb }, (_, i) => (i * 2654435761) >>> 24);
      const pq = h.alloc(T * D * 4), po = h.alloc(T * D * 4), patt = h.alloc(H * L * 4), ps = h.alloc(5 * D * 4);
      h.f32(pq, T * D).set(rand(T * D, 7));
      const poff = h.alloc((nSeg + 1) * 4), psc = h.alloc(nSeg * 4), pz = h.alloc(nSeg), pkv = h.alloc(14 * 4);
      h.i32(poff, nSeg + 1).set(Int32Array.from({ length: nSeg + 1 }, (_, i) => Math.round((i * D) / nSeg)));
      h.f32(psc, nSeg).set(Float32Array.from({ length: nSeg }, (_, i) => 0.01 * (i + 1)));
      h.u8(pz, nSeg).set(Uint8Array.from({ length: nSeg }, (_, i) => i % 4));
      const run = (pk: number, pv: number) => {
        h.i32(pkv, 14).set([pk, rb, bits, nSeg, poff, psc, pz, pv, rb, bits, nSeg, poff, psc, pz]);
        h.f32(po, T * D).fill(NaN);
        ex.attention_packed(H, hs, T, L, pq, D, pq, pkv, po, D, -1, 0, 0, patt, ps);
        return Array.from(h.f32(po, T * D));
      };
      const put = (p: number) => { h.u8(p, codes.length).set(codes); return p; };
      const inside = run(put(h.alloc(codes.length)), put(h.alloc(codes.length)));
      const end = h.stats().memoryBytes;
      expect(h.stats().top + 2 * codes.length).toBeLessThan(end);
      // V's rows end at the last byte of memory, K's just before them
      const atEnd = run(put(end - 2 * codes.length), put(end - codes.length));
      expect(inside.every(Number.isFinite), `u${bits} hs ${hs}`).toBe(true);
      expect(atEnd, `u${bits} hs ${hs}`).toEqual(inside);
    }
  });
});
