// The peer benchmark's protobuf/ONNX writer (bench/peers/): known wire encodings, and round trips
// through onnxruntime-web (the model loads and computes a hand-checked answer). ORT is a
// devDependency of the benchmark only; nothing under src/ imports it.

import { describe, expect, it, beforeAll } from 'vitest';
import { encodeVarint, encodeZigzag, Writer } from '../bench/peers/protobuf.js';
import { DataType, modelBytes, valueInfo, f32Tensor, DEFAULT_OPSETS } from '../bench/peers/onnx.js';
import { matmulF32Model, matmulIntegerModel, matmulNBitsModel, packNBits4 } from '../bench/peers/graphs.js';
import { dequantRef, f32Ref, relError } from '../bench/peers/accuracy.js';
import { codesOf, dequantize, quantize } from '../src/quant/index.js';
import { packQLinear, qlinear } from '../src/quant/qlinear.js';
import { refKernels } from '../src/ref/index.js';
import { Tensor } from '../src/tensor.js';
import { loadOrt, ortSession, OrtHost, type Ort } from '../bench/peers/ort.js';

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

describe('protobuf writer: wire encodings', () => {
  it('varints (base 128, little-endian groups, sign-extended negatives)', () => {
    expect(hex(encodeVarint(0))).toBe('00');
    expect(hex(encodeVarint(1))).toBe('01');
    expect(hex(encodeVarint(127))).toBe('7f');
    expect(hex(encodeVarint(128))).toBe('80 01');
    expect(hex(encodeVarint(150))).toBe('96 01');
    expect(hex(encodeVarint(300))).toBe('ac 02');
    expect(hex(encodeVarint(16384))).toBe('80 80 01');
    expect(hex(encodeVarint(2 ** 31))).toBe('80 80 80 80 08');
    expect(hex(encodeVarint(2 ** 32))).toBe('80 80 80 80 10');
    expect(hex(encodeVarint(2 ** 53 - 1))).toBe('ff ff ff ff ff ff ff 0f');
    expect(hex(encodeVarint(-1))).toBe('ff ff ff ff ff ff ff ff ff 01');
    expect(hex(encodeVarint(-2n))).toBe('fe ff ff ff ff ff ff ff ff 01');
    expect(hex(encodeVarint((1n << 64n) - 1n))).toBe('ff ff ff ff ff ff ff ff ff 01');
    expect(() => encodeVarint(1n << 64n)).toThrow(RangeError);
    expect(() => encodeVarint(2 ** 60)).toThrow(RangeError);
  });

  it('zigzag (sint32/sint64)', () => {
    expect(hex(encodeZigzag(0))).toBe('00');
    expect(hex(encodeZigzag(-1))).toBe('01');
    expect(hex(encodeZigzag(1))).toBe('02');
    expect(hex(encodeZigzag(-2))).toBe('03');
    expect(hex(encodeZigzag(2147483647))).toBe('fe ff ff ff 0f');
    expect(hex(encodeZigzag(-2147483648))).toBe('ff ff ff ff 0f');
  });

  it('fields: key = field << 3 | wire type', () => {
    // the encoding guide's examples: field 1 = 150; field 2 = "testing"; packed field 4 = [3, 270, 86942]
    expect(hex(new Writer().int(1, 150).finish())).toBe('08 96 01');
    expect(hex(new Writer().string(2, 'testing').finish())).toBe('12 07 74 65 73 74 69 6e 67');
    expect(hex(new Writer().packedVarints(4, [3, 270, 86942]).finish())).toBe('22 06 03 8e 02 9e a7 05');
    expect(hex(new Writer().float(3, 1).finish())).toBe('1d 00 00 80 3f');
    expect(hex(new Writer().fixed32(3, 0xdeadbeef).finish())).toBe('1d ef be ad de');
    expect(hex(new Writer().packedFloats(5, [1, -2]).finish())).toBe('2a 08 00 00 80 3f 00 00 00 c0');
    expect(hex(new Writer().int(16, true).finish())).toBe('80 01 01');
    expect(hex(new Writer().sint(1, -3).finish())).toBe('08 05');
    expect(hex(new Writer().message(7, (w) => w.int(1, 1)).finish())).toBe('3a 02 08 01');
    expect(new Writer().packedVarints(4, []).length).toBe(0);
  });

  it('grows past its initial buffer', () => {
    const big = new Uint8Array(100_000).map((_, i) => i & 0xff);
    const b = new Writer().bytes(9, big).finish();
    expect(hex(b.subarray(0, 4))).toBe('4a a0 8d 06'); // 100000 = 0x186a0
    expect(b.length).toBe(4 + 100_000);
    expect(b[4 + 99_999]).toBe(99_999 & 0xff);
  });
});

describe('ONNX models through onnxruntime-web (WASM backend)', () => {
  let ort: Ort;
  beforeAll(async () => {
    ort = await loadOrt(2);
  });

  const feed = (a: Float32Array, M: number, K: number) => ({ A: new ort.Tensor('float32', a, [M, K]) });

  it('2x3 · 3x2 MatMul gives the hand result, in this thread (2-thread ORT) and in a 1-thread ORT host', async () => {
    // W [N=2, K=3] (lowbit's [out, in]); ORT's B is Wᵀ
    const w = new Float32Array([1, 2, 3, 4, 5, 6]);
    const a = new Float32Array([1, 0, -1, 0.5, 2, 3]);
    const want = [1 - 3, 4 - 6, 0.5 + 4 + 9, 2 + 10 + 18];
    const s = await ortSession(ort, matmulF32Model(2, 2, 3, w), 2);
    expect(Array.from(await s.run(feed(a, 2, 3)))).toEqual(want);
    await s.release();
    expect(ort.env.wasm.numThreads).toBe(2);
    // the benchmark's host: its own ORT instance with numThreads 1, in a worker thread
    const host = new OrtHost(1);
    try {
      const r = await host.measure(matmulF32Model(2, 2, 3, w), 2, 3, a, true, 4);
      expect(r.numThreads).toBe(1);
      expect(Array.from(r.output)).toEqual(want);
    } finally {
      await host.terminate();
    }
  });

  it('a bad model is rejected by ORT (the writer is what makes models load)', async () => {
    const g = {
      name: 'bad', nodes: [{ opType: 'MatMul', inputs: ['A', 'B'], outputs: ['Y'] }],
      initializers: [f32Tensor('B', [4, 2], new Float32Array(8))],
      inputs: [valueInfo('A', DataType.FLOAT, [2, 3])], outputs: [valueInfo('Y', DataType.FLOAT, [2, 2])],
    };
    await expect(ortSession(ort, modelBytes(g, DEFAULT_OPSETS), 1)).rejects.toThrow();
  });

  it('MatMulNBits 1x32 · 32x2, block 32: nibble order low = even k, high = odd k', async () => {
    const K = 32, N = 2;
    // row 0: code k & 15; row 1: code 15 − (k & 15) ^ (k >> 4)
    const codes = new Uint8Array(N * K);
    for (let k = 0; k < K; k++) {
      codes[k] = k & 15;
      codes[K + k] = (15 - (k & 15)) ^ (k >> 4);
    }
    const scale = new Float32Array([0.5, 0.125]), zero = new Uint8Array([8, 3]);
    const nb = packNBits4(N, K, 32, codes, scale, zero);
    // spec packing by hand: byte j of row 0 = code 2j | code 2j+1 << 4
    expect(nb.b[0]).toBe(0x10);
    expect(nb.b[1]).toBe(0x32);
    expect(nb.b[8]).toBe(0x10);
    expect(nb.zeroPoints[0]).toBe(8);
    expect(nb.zeroPoints[1]).toBe(3);
    const a = new Float32Array(K).map((_, k) => (k + 1) * (k % 3 === 0 ? -1 : 1) / 8);
    const want = dequantRef(1, N, K, 32, a, codes, scale, zero);
    const s = await ortSession(ort, matmulNBitsModel(1, N, K, 32, nb), 1);
    const y = await s.run(feed(a, 1, K));
    expect(relError(y, want)).toBeLessThan(1e-6);
    // a wrong nibble order would give a different answer
    const swapped = codes.slice();
    for (let i = 0; i < swapped.length; i += 2) [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
    const wrong = dequantRef(1, N, K, 32, a, swapped, scale, zero);
    expect(Math.abs(wrong[0]! - want[0]!)).toBeGreaterThan(0.1);
    await s.release();
  });

  it('MatMulNBits 2x96 · 96x3, block 32 and 128: packed zero points per row (odd block count, padding)', async () => {
    const M = 2, K = 96, N = 3;
    const codes = new Uint8Array(N * K).map((_, i) => (i * 7 + (i >> 5)) & 15);
    const a = new Float32Array(M * K).map((_, i) => Math.sin(i * 0.37));
    for (const bs of [32, 128]) {
      const kb = Math.ceil(K / bs);
      const scale = new Float32Array(N * kb).map((_, i) => 0.01 * (i + 1));
      const zero = new Uint8Array(N * kb).map((_, i) => (i * 5 + 1) & 15);
      const nb = packNBits4(N, K, bs, codes, scale, zero);
      expect(nb.zeroPoints.length).toBe(N * Math.ceil(kb / 2));
      if (bs === 32) expect(nb.zeroPoints[0]).toBe(zero[0]! | (zero[1]! << 4));
      const want = dequantRef(M, N, K, bs, a, codes, scale, zero);
      const s = await ortSession(ort, matmulNBitsModel(M, N, K, bs, nb), 2);
      const y = await s.run(feed(a, M, K));
      expect(relError(y, want), `block ${bs}`).toBeLessThan(1e-5);
      await s.release();
    }
  });

  it('lowbit-quantized 4-bit weights: MatMulNBits and lowbit qlinear both compute what dequantize() says they hold', async () => {
    // the benchmark's path: lowbit quantize (per group, asymmetric) → codes → MatMulNBits packing
    const M = 2, N = 8, K = 256;
    const kernels = refKernels();
    const w = new Float32Array(N * K).map((_, i) => Math.sin(i * 1.7) * (1 + (i % 5)));
    const a = new Float32Array(M * K).map((_, i) => Math.cos(i * 0.3));
    for (const bs of [32, 128]) {
      const q = quantize(Tensor.fromArray(w, [N, K]), { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: bs } }, undefined, { kernels });
      const nb = packNBits4(N, K, bs, codesOf(q, { kernels }), q.scale, q.zero);
      const deq = dequantize(q, { kernels }).data as Float32Array;
      const want = f32Ref(M, N, K, a, deq);
      const s = await ortSession(ort, matmulNBitsModel(M, N, K, bs, nb), 2);
      const y = await s.run(feed(a, M, K));
      expect(relError(y, want), `ORT block ${bs}`).toBeLessThan(1e-5);
      await s.release();
      // and lowbit's own 4-bit kernel (js twin) on the same QuantizedTensor
      const mine = qlinear(a, packQLinear(q, { kernels, heap: null }), null, { kernels, heap: null });
      expect(relError(mine, want), `lowbit block ${bs}`).toBeLessThan(1e-5);
    }
  });

  it('DynamicQuantizeLinear + MatMulInteger matches the ONNX-spec integer reference', async () => {
    const M = 2, K = 8, N = 3;
    const codes = new Int8Array(N * K).map((_, i) => ((i * 37) % 255) - 127);
    const sb = new Float32Array([0.01, 0.02, 0.005]);
    const a = new Float32Array(M * K).map((_, i) => Math.cos(i) * 2 - 0.3);
    // DynamicQuantizeLinear (ONNX Operators.md): range widened to include 0, uint8, round half to even
    let lo = 0, hi = 0;
    for (const v of a) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const sa = Math.fround((hi - lo) / 255);
    const za = Math.min(255, Math.max(0, roundEven(-lo / sa)));
    const want = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const q = Math.min(255, Math.max(0, roundEven(a[m * K + k]! / sa) + za));
          acc += (q - za) * codes[n * K + k]!;
        }
        want[m * N + n] = acc * sa * sb[n]!;
      }
    }
    const s = await ortSession(ort, matmulIntegerModel(M, N, K, codes, sb), 1);
    const y = await s.run(feed(a, M, K));
    expect(relError(y, want)).toBeLessThan(1e-5);
    await s.release();
  });
});

function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
