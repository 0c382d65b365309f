// Accuracy properties of quantize/dequantize across every granularity, bit width, symmetry and
// range method (fast-check), plus the degenerate inputs that must never divide by zero.

import { describe, expect, it, beforeAll } from 'vitest';
import fc from 'fast-check';
import { Tensor } from '../src/tensor.js';
import { createBackend, type Backend } from '../src/runtime.js';
import {
  quantize, dequantize, codesOf, type QuantScheme, type Granularity, type ClusterMap, type QuantizedTensor, type RangeMethod,
} from '../src/quant/index.js';
import { floats, pattern } from './conformance/gen.js';

type Bits = QuantScheme['bits'];
const RUNS = { numRuns: 150 };

function rng(seed: number) {
  let s = (seed * 2654435761) >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
}

/** A random ClusterMap of n channels into k clusters (random permutation, random cut points). */
function randomClusters(n: number, k: number, seed: number): ClusterMap {
  const r = rng(seed);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [perm[i], perm[j]] = [perm[j]!, perm[i]!]; }
  const cuts = new Set<number>();
  while (cuts.size < k - 1) cuts.add(1 + Math.floor(r() * (n - 1)));
  return { perm, offsets: Int32Array.from([0, ...[...cuts].sort((a, b) => a - b), n]) };
}

const shapeArb = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 45 }));

function granularityArb(rows: number, cols: number): fc.Arbitrary<Granularity> {
  const divisors = Array.from({ length: cols }, (_, i) => i + 1).filter((d) => cols % d === 0);
  return fc.oneof(
    fc.constant<Granularity>({ kind: 'perTensor' }),
    fc.constantFrom<Granularity>({ kind: 'perChannel', axis: 0 }, { kind: 'perChannel', axis: -1 }),
    fc.constantFrom(...divisors).map<Granularity>((groupSize) => ({ kind: 'perGroup', groupSize })),
    fc.constant<Granularity>({ kind: 'perToken' }),
    fc.tuple(fc.integer({ min: 1, max: cols }), fc.integer(), fc.boolean()).map<Granularity>(([k, seed, row]) =>
      ({ kind: row ? 'perRowCluster' : 'perCluster', clusters: randomClusters(cols, k, seed) })),
  ).filter(() => rows > 0);
}

const rangeArb: fc.Arbitrary<RangeMethod> = fc.oneof(
  fc.constant<RangeMethod>({ kind: 'minmax' }), fc.constant<RangeMethod>({ kind: 'minmax' }),
  fc.constant<RangeMethod>({ kind: 'mse', grid: 20 }),
  fc.integer({ min: 80, max: 100 }).map<RangeMethod>((p) => ({ kind: 'percentile', p })),
);

const caseArb = shapeArb.chain(([rows, cols]) => fc.record({
  rows: fc.constant(rows), cols: fc.constant(cols),
  granularity: granularityArb(rows, cols),
  bits: fc.integer({ min: 2, max: 8 }) as fc.Arbitrary<Bits>,
  symmetric: fc.boolean(),
  range: rangeArb,
  pat: pattern, seed: fc.integer(),
}));

/** For every element (original flat index), its slot's scale and zero. */
function slotOf(q: QuantizedTensor): (i: number) => { s: number; z: number } {
  const nSeg = q.offsets.length - 1, cols = q.cols;
  const inv = new Int32Array(cols), segOf = new Int32Array(cols);
  for (let j = 0; j < cols; j++) inv[q.perm ? q.perm[j]! : j] = j;
  for (let s = 0; s < nSeg; s++) for (let j = q.offsets[s]!; j < q.offsets[s + 1]!; j++) segOf[j] = s;
  return (i) => {
    const r = Math.floor(i / cols), j = inv[i % cols]!;
    const p = (r % q.rowPeriod) * nSeg + segOf[j]!;
    return { s: q.scale[p]!, z: q.zero[p]! };
  };
}

describe('quantization accuracy properties', () => {
  it('inside the clipping range [−z·s, (2^b−1−z)·s], |x − x\'| ≤ s/2 (+ f32 rounding); min-max clips nothing', () => {
    fc.assert(fc.property(caseArb, (c) => {
      const x = floats(c.rows * c.cols, c.pat, c.seed, 10, c.cols);
      const scheme: QuantScheme = { bits: c.bits, symmetric: c.symmetric, granularity: c.granularity, range: c.range };
      const q = quantize(Tensor.fromArray(x, [c.rows, c.cols]), scheme);
      const y = dequantize(q).data as Float32Array;
      const slot = slotOf(q), qmax = 2 ** c.bits - 1;
      for (let i = 0; i < x.length; i++) {
        const { s, z } = slot(i);
        const lo = -z * s, hi = (qmax - z) * s, v = x[i]!;
        const inside = v >= lo - s / 2 && v <= hi + s / 2;
        if (c.range.kind === 'minmax') expect(inside, `element ${i} outside the min-max grid`).toBe(true);
        if (!inside) continue;
        const tol = s / 2 + 2 ** -22 * (Math.abs(v) + Math.abs(y[i]!) + Math.abs(lo) + Math.abs(hi));
        expect(Math.abs(v - y[i]!), `element ${i}: x=${v} x'=${y[i]} s=${s} z=${z}`).toBeLessThanOrEqual(tol);
      }
    }), RUNS);
  });

  it('quantize ∘ dequantize ∘ quantize is idempotent (same parameters give the same bytes)', () => {
    fc.assert(fc.property(caseArb, (c) => {
      const x = floats(c.rows * c.cols, c.pat, c.seed, 10, c.cols);
      const scheme: QuantScheme = { bits: c.bits, symmetric: c.symmetric, granularity: c.granularity, range: c.range };
      const q1 = quantize(Tensor.fromArray(x, [c.rows, c.cols]), scheme);
      const q2 = quantize(dequantize(q1), scheme, { scale: q1.scale, zero: q1.zero });
      expect(Array.from(q2.qs)).toEqual(Array.from(q1.qs));
      expect(Array.from(dequantize(q2).data as Float32Array)).toEqual(Array.from(dequantize(q1).data as Float32Array));
    }), RUNS);
  });

  it('more bits: every scale at least halves, and the squared error of random data does not grow', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 7 }), fc.boolean(), fc.integer(), fc.integer({ min: 64, max: 300 }),
      (bits, symmetric, seed, n) => {
        const x = floats(n, 'random', seed);
        const run = (b: number) => {
          const q = quantize(Tensor.fromArray(x, [1, n]), { bits: b as Bits, symmetric, granularity: { kind: 'perTensor' } });
          const y = dequantize(q).data as Float32Array;
          return { s: q.scale[0]!, err: x.reduce((a, v, i) => a + (v - y[i]!) ** 2, 0) };
        };
        const a = run(bits), b = run(bits + 1);
        expect(b.s).toBeLessThanOrEqual(a.s / 2 * (1 + 2 ** -20));
        expect(b.err).toBeLessThanOrEqual(a.err);
      }), RUNS);
  });

  it('(documented) elementwise error can grow with bits: grids of b and b+1 bits are not nested', () => {
    const x = Tensor.fromArray(new Float32Array([0, 1 / 3, 1]), [1, 3]);
    const err = (b: Bits) => Math.abs((dequantize(quantize(x, { bits: b, symmetric: false, granularity: { kind: 'perTensor' } })).data as Float32Array)[1]! - 1 / 3);
    expect(err(2)).toBeLessThan(1e-7); // 1/3 is on the 2-bit grid {0, 1/3, 2/3, 1}
    expect(err(3)).toBeGreaterThan(0.04); // nearest 3-bit level is 2/7
  });

  it('per-cluster error ≤ per-tensor error when channels have heterogeneous ranges (RPTQ Fig. 1)', () => {
    fc.assert(fc.property(fc.integer({ min: 4, max: 24 }), fc.integer({ min: 8, max: 32 }), fc.integer({ min: 2, max: 8 }),
      fc.integer({ min: 2, max: 8 }), fc.integer(), (cols, rows, bits, kWant, seed) => {
        const r = rng(seed), k = Math.min(kWant, cols);
        const range = Float32Array.from({ length: cols }, () => 10 ** (r() * 3 - 1)); // 0.1 .. 100
        const shift = Float32Array.from({ length: cols }, (_, c) => (r() - 0.5) * range[c]!);
        const x = Float32Array.from({ length: rows * cols }, (_, i) => shift[i % cols]! + (r() - 0.5) * range[i % cols]!);
        // clusters by sorted range, as k-means on [min, max] would roughly produce
        const perm = Int32Array.from({ length: cols }, (_, i) => i).sort((a, b) => range[a]! - range[b]!);
        const offsets = Int32Array.from({ length: k + 1 }, (_, i) => Math.round((i * cols) / k));
        const t = Tensor.fromArray(x, [rows, cols]);
        const sse = (g: Granularity) => {
          const y = dequantize(quantize(t, { bits: bits as Bits, symmetric: false, granularity: g })).data as Float32Array;
          return x.reduce((a, v, i) => a + (v - y[i]!) ** 2, 0);
        };
        expect(sse({ kind: 'perCluster', clusters: { perm, offsets } })).toBeLessThanOrEqual(sse({ kind: 'perTensor' }));
      }), { numRuns: 100 });
  });

  it('with as many clusters as channels, per-cluster equals per-channel exactly (any permutation)', () => {
    fc.assert(fc.property(shapeArb, fc.integer({ min: 2, max: 8 }), fc.boolean(), pattern, fc.integer(), (sh, bits, symmetric, pat, seed) => {
      const [rows, cols] = sh;
      const x = Tensor.fromArray(floats(rows * cols, pat, seed, 10, cols), [rows, cols]);
      const clusters = randomClusters(cols, cols, seed);
      const a = quantize(x, { bits: bits as Bits, symmetric, granularity: { kind: 'perCluster', clusters } });
      const b = quantize(x, { bits: bits as Bits, symmetric, granularity: { kind: 'perChannel', axis: -1 } });
      expect(Array.from(dequantize(a).data as Float32Array)).toEqual(Array.from(dequantize(b).data as Float32Array));
      for (let j = 0; j < cols; j++) expect([a.scale[j], a.zero[j]]).toEqual([b.scale[clusters.perm[j]!], b.zero[clusters.perm[j]!]]);
    }), RUNS);
  });

  it('symmetric schemes represent 0 exactly (and so do min-max asymmetric ones: 0 is always in range)', () => {
    fc.assert(fc.property(caseArb, (c) => {
      const x = floats(c.rows * c.cols, c.pat, c.seed, 10, c.cols);
      const at = Math.abs(c.seed) % x.length;
      x[at] = 0;
      const scheme: QuantScheme = { bits: c.bits, symmetric: c.symmetric, granularity: c.granularity, range: c.range };
      const q = quantize(Tensor.fromArray(x, [c.rows, c.cols]), scheme);
      if (c.symmetric || c.range.kind === 'minmax') expect((dequantize(q).data as Float32Array)[at]).toBe(0);
      if (c.symmetric) expect(Array.from(q.zero).every((z) => z === 2 ** (c.bits - 1))).toBe(true);
    }), RUNS);
  });

  it('constant channels, all-zero tensors and single elements never divide by zero', () => {
    const degenerate = fc.oneof(
      fc.tuple(fc.constant([1]), fc.constant<'zeros' | 'constant' | 'random'>('random')),
      fc.tuple(fc.constant([1, 1]), fc.constantFrom<'zeros' | 'constant' | 'random'>('zeros', 'constant', 'random')),
      fc.tuple(fc.constantFrom([3, 5], [4, 1], [1, 7]), fc.constantFrom<'zeros' | 'constant'>('zeros', 'constant')),
    );
    fc.assert(fc.property(degenerate, fc.integer({ min: 2, max: 8 }), fc.boolean(), rangeArb, fc.integer(), ([shape, pat], bits, symmetric, range, seed) => {
      const n = (shape as readonly number[]).reduce((a, b) => a * b, 1);
      const x = floats(n, pat, seed);
      const cols = shape[shape.length - 1]!;
      for (const g of [{ kind: 'perTensor' }, { kind: 'perChannel', axis: 0 }, { kind: 'perToken' }, { kind: 'perGroup', groupSize: cols }] as Granularity[]) {
        const q = quantize(Tensor.fromArray(x, shape), { bits: bits as Bits, symmetric, granularity: g, range });
        for (const s of q.scale) expect(Number.isFinite(s) && s > 0).toBe(true);
        const y = dequantize(q).data as Float32Array;
        for (let i = 0; i < n; i++) {
          expect(Number.isFinite(y[i]!)).toBe(true);
          expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(q.scale[0]! / 2 + 1e-6 * Math.abs(x[i]!) + 1e-30);
        }
      }
    }), RUNS);
  });

  it('codes never exceed 2^bits − 1 and the tensor is never mutated', () => {
    fc.assert(fc.property(caseArb, (c) => {
      const x = floats(c.rows * c.cols, c.pat, c.seed, 10, c.cols), copy = x.slice();
      const q = quantize(Tensor.fromArray(x, [c.rows, c.cols]), { bits: c.bits, symmetric: c.symmetric, granularity: c.granularity, range: c.range });
      expect(Math.max(...codesOf(q))).toBeLessThanOrEqual(2 ** c.bits - 1);
      expect(Array.from(x)).toEqual(Array.from(copy));
    }), { numRuns: 60 });
  });
});

describe('quantize on the WASM backends gives the js result byte for byte', () => {
  const backends: Backend[] = [];
  beforeAll(async () => { backends.push(await createBackend('js'), await createBackend('simd')); });
  it('same codes, scales, zeros and dequantized values', () => {
    fc.assert(fc.property(caseArb, (c) => {
      const x = Tensor.fromArray(floats(c.rows * c.cols, c.pat, c.seed, 10, c.cols), [c.rows, c.cols]);
      const scheme: QuantScheme = { bits: c.bits, symmetric: c.symmetric, granularity: c.granularity, range: c.range };
      const [a, b] = backends.map((be) => quantize(x, scheme, undefined, { kernels: be.kernels })) as [QuantizedTensor, QuantizedTensor];
      expect(Array.from(b.qs)).toEqual(Array.from(a.qs));
      expect(Array.from(b.scale)).toEqual(Array.from(a.scale));
      expect(Array.from(b.zero)).toEqual(Array.from(a.zero));
      expect(Array.from(dequantize(b, { kernels: backends[1]!.kernels }).data as Float32Array))
        .toEqual(Array.from(dequantize(a, { kernels: backends[0]!.kernels }).data as Float32Array));
    }), { numRuns: 60 });
  });
});
