// Agreement with the references, as small hand-derivable cases plus a literal transcription:
// GPTQ (IST-DASLab/gptq quant.py `Quantizer.find_params` + `quantize`, perchannel, f32 tensors) and
// PyTorch's MinMaxObserver / MovingAverageMinMaxObserver (torch.ao.quantization.observer).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Tensor } from '../src/tensor.js';
import {
  quantize, dequantize, codesOf, roundHalfEven, qparamsFromRange, mseSearch,
  minMaxObserver, movingAverageMinMaxObserver, perChannelMinMaxObserver, movingAveragePerChannelMinMaxObserver,
  calibrate, qparamsFromStats, type QuantScheme,
} from '../src/quant/index.js';

const f = Math.fround;
const perRow = (bits: QuantScheme['bits'], range?: QuantScheme['range']): QuantScheme =>
  ({ bits, symmetric: false, granularity: { kind: 'perChannel', axis: 0 }, ...(range ? { range } : {}) });

/** GPTQ's find_params (asymmetric, perchannel, weight) + quantize, transcribed with f32 rounding of every tensor op. */
function gptqRow(row: Float32Array, bits: number, mse = false): { scale: number; zero: number; q: number[]; deq: number[] } {
  const maxq = 2 ** bits - 1;
  let xmin = Math.min(0, ...row), xmax = Math.max(0, ...row);
  if (xmin === 0 && xmax === 0) { xmin = -1; xmax = 1; }
  const quant = (x: number, s: number, z: number) => Math.min(Math.max(f(roundHalfEven(f(x / s)) + z), 0), maxq);
  let scale = f(f(xmax - xmin) / maxq), zero = roundHalfEven(f(-xmin / scale));
  if (mse) {
    let best = Infinity;
    for (let i = 0; i < Math.floor(0.8 * 100); i++) {
      const p = f(1 - i / 100), xmin1 = f(p * xmin), xmax1 = f(p * xmax);
      const s1 = f(f(xmax1 - xmin1) / maxq), z1 = roundHalfEven(f(-xmin1 / s1));
      let err = 0;
      for (const x of row) err += Math.abs(f(s1 * (quant(x, s1, z1) - z1)) - x) ** 2.4;
      if (err < best) { best = err; scale = s1; zero = z1; }
    }
  }
  const q = Array.from(row, (x) => quant(x, scale, zero));
  return { scale, zero, q, deq: q.map((v) => f(scale * (v - zero))) };
}

describe('GPTQ per-row asymmetric RTN', () => {
  it('row [-1, 0.5, 2, 3], 4 bits: s = fl(4/15), z = 4, codes [0, 6, 11, 15]', () => {
    const q = quantize(Tensor.fromArray(new Float32Array([-1, 0.5, 2, 3]), [1, 4]), perRow(4));
    expect(q.scale[0]).toBe(f(4 / 15));
    expect(q.zero[0]).toBe(4); // −(−1) / fl(4/15) = 3.7499998 → 4
    // 2 / fl(4/15) = 7.4999995 in f32, just below the tie 7.5, so 7 + 4 = 11 (exact arithmetic would give 12)
    expect(Array.from(codesOf(q))).toEqual([0, 6, 11, 15]);
    expect(Array.from(dequantize(q).data as Float32Array)).toEqual([-4, 2, 7, 11].map((k) => f(f(4 / 15) * k)));
  });

  it('ties round half to even: [0, 2.5, 3.5, 15] → [0, 2, 4, 15]; [-15, -2.5, -3.5, 0] → [0, 13, 11, 15]', () => {
    const a = quantize(Tensor.fromArray(new Float32Array([0, 2.5, 3.5, 15]), [1, 4]), perRow(4));
    expect(a.scale[0]).toBe(1);
    expect(Array.from(codesOf(a))).toEqual([0, 2, 4, 15]); // Math.round would give 3 for 2.5
    const b = quantize(Tensor.fromArray(new Float32Array([-15, -2.5, -3.5, 0]), [1, 4]), perRow(4));
    expect(b.zero[0]).toBe(15);
    expect(Array.from(codesOf(b))).toEqual([0, 13, 11, 15]); // −3.5 → −4 (Math.round: −3)
  });

  it('an all-zero row gets GPTQ\'s [−1, 1] range: s = fl(2/15), z = round(7.4999995) = 7, and 0 is exact', () => {
    const q = quantize(Tensor.fromArray(new Float32Array(5), [1, 5]), perRow(4));
    expect(q.scale[0]).toBe(f(2 / 15));
    expect(q.zero[0]).toBe(7);
    expect(Array.from(dequantize(q).data as Float32Array)).toEqual([0, 0, 0, 0, 0]);
  });

  it('matches the transcribed find_params + quantize element for element (min-max and mse)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 2, max: 8 }),
      fc.boolean(), fc.integer(), (rows, cols, bits, mse, seed) => {
        let s = seed >>> 0 || 1;
        const x = Float32Array.from({ length: rows * cols }, (_, i) => {
          s = (s * 1664525 + 1013904223) >>> 0;
          return i % 7 === 3 ? 0 : (s / 2 ** 32 - 0.3) * (1 + (i % cols));
        });
        if (seed % 5 === 0) x.fill(0, 0, cols); // an all-zero row
        const q = quantize(Tensor.fromArray(x, [rows, cols]), perRow(bits as QuantScheme['bits'], mse ? { kind: 'mse' } : undefined));
        const codes = codesOf(q), deq = dequantize(q).data as Float32Array;
        for (let r = 0; r < rows; r++) {
          const want = gptqRow(x.subarray(r * cols, r * cols + cols), bits, mse);
          expect(q.scale[r]).toBe(want.scale);
          expect(q.zero[r]).toBe(want.zero + 0); // torch.round(−0) = −0; a u8 zero point is 0
          expect(Array.from(codes.subarray(r * cols, r * cols + cols))).toEqual(want.q);
          expect(Array.from(deq.subarray(r * cols, r * cols + cols))).toEqual(want.deq);
        }
      }), { numRuns: 80 });
  });

  it('mse search never does worse than min-max in Σ|x − x\'|^2.4 and clips a lone outlier', () => {
    const x = new Float32Array(64).map((_, i) => Math.sin(i) * 0.1);
    x[10] = 1;
    const mm = qparamsFromRange(Math.min(...x), Math.max(...x), 3, false);
    const ms = mseSearch(x, Math.min(...x), Math.max(...x), 3, false);
    expect(ms.scale).toBeLessThan(mm.scale);
  });
});

describe('PyTorch observers', () => {
  const b = (v: number[], shape?: number[]) => Tensor.fromArray(new Float32Array(v), shape ?? [v.length]);

  it('MinMaxObserver keeps the running min and max', () => {
    const st = calibrate(minMaxObserver(), [b([-1, 2]), b([-3, 0.5]), b([1, 4])]);
    expect([st.min[0], st.max[0], st.batches]).toEqual([-3, 4, 3]);
  });

  it('MovingAverageMinMaxObserver: first batch as-is, then m ← m + 0.01·(batch − m) in f32', () => {
    const obs = movingAverageMinMaxObserver();
    const s1 = obs.update(null, b([-1, 2]));
    expect([s1.min[0], s1.max[0]]).toEqual([-1, 2]);
    const s2 = obs.update(s1, b([-3, 4]));
    // -1 + 0.01·(-3 - -1) = -1.02, 2 + 0.01·(4 - 2) = 2.02
    expect(s2.min[0]).toBe(f(-1 + f(f(0.01) * -2)));
    expect(s2.max[0]).toBeCloseTo(2.02, 6);
    const s3 = obs.update(s2, b([0.5, 1]));
    expect(s3.min[0]).toBeCloseTo(-1.0048, 6); // -1.02 + 0.01·(0.5 + 1.02)
    expect(s3.max[0]).toBeCloseTo(2.0098, 6); // 2.02 + 0.01·(1 − 2.02)
    expect([s1.min[0], s1.batches]).toEqual([-1, 1]); // earlier stats objects are untouched
  });

  it('per-channel variants reduce over every axis but ch_axis (default 0)', () => {
    const x1 = b([1, -2, 3, 4, 5, -6], [2, 3]), x2 = b([0, 0, 10, -10, 0, 0], [2, 3]);
    const mm = calibrate(perChannelMinMaxObserver(), [x1, x2]);
    expect([Array.from(mm.min), Array.from(mm.max)]).toEqual([[-2, -10], [10, 5]]);
    const ma = calibrate(movingAveragePerChannelMinMaxObserver(), [x1, x2]);
    expect(ma.min[0]).toBeCloseTo(-2 + 0.01 * (0 - -2), 6);
    expect(ma.max[0]).toBeCloseTo(3 + 0.01 * (10 - 3), 6);
    expect(ma.min[1]).toBeCloseTo(-6 + 0.01 * (-10 - -6), 6);
    expect(ma.max[1]).toBeCloseTo(5 + 0.01 * (0 - 5), 6);
    const ax1 = calibrate(perChannelMinMaxObserver({ axis: 1 }), [x1]);
    expect([Array.from(ax1.min), Array.from(ax1.max)]).toEqual([[1, -2, -6], [4, 5, 3]]);
  });

  it('8-bit asymmetric qparams from stats equal PyTorch quint8 calculate_qparams (away from its eps clamp)', () => {
    const st = calibrate(minMaxObserver(), [b([-1, 2]), b([-3, 0.5])]);
    const p = qparamsFromStats(st, 8, false);
    // scale = (2 − (−3)) / 255, zero_point = 0 − round(−3 / scale) = round(153) = 153
    expect(p.scale[0]).toBe(f(5 / 255));
    expect(p.zero[0]).toBe(153);
  });
});
