// RPTQ k-means and ClusterMap properties: coverage of every channel (the RPTQ4LLM remainder bug),
// determinism, exact cluster counts, recovery of separated clusters, per-head locality.

import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  kmeans, xoshiro128ss, clusterMapFromLabels, validateClusterMap, validateHeadLocal, inversePerm, clusterSizes,
  buildClusterMap, clusterPerHead, qkFeatures, type ClusterMap,
} from '../src/quant/rptq/index.js';

/** Independent check of the ClusterMap invariants: each channel exactly once, offsets 0 → n, no empty cluster. */
function expectCovers(map: ClusterMap, n: number, k: number): void {
  expect(map.offsets.length).toBe(k + 1);
  expect(map.offsets[0]).toBe(0);
  expect(map.offsets[k]).toBe(n);
  for (let c = 0; c < k; c++) expect(map.offsets[c + 1]!).toBeGreaterThan(map.offsets[c]!);
  const hits = new Int32Array(n);
  for (let c = 0; c < k; c++) for (let j = map.offsets[c]!; j < map.offsets[c + 1]!; j++) hits[map.perm[j]!]!++;
  expect(Array.from(hits)).toEqual(new Array(n).fill(1));
}

/** Labels in 0..k−1 with every cluster used, uneven sizes (a random surjection). */
const labelsArb = fc.integer({ min: 1, max: 60 }).chain((n) => fc.integer({ min: 1, max: n }).chain((k) =>
  fc.tuple(fc.constant(k), fc.array(fc.integer({ min: 0, max: k - 1 }), { minLength: n - k, maxLength: n - k }), fc.integer())
    .map(([k, rest, seed]) => {
      const labels = [...Array.from({ length: k }, (_, c) => c), ...rest];
      const rng = xoshiro128ss(seed >>> 0);
      for (let i = labels.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        [labels[i], labels[j]] = [labels[j]!, labels[i]!];
      }
      return { k, labels: Int32Array.from(labels) };
    })));

/** Gaussian-ish blobs: `k` centres far apart, `per` points each (sizes vary by ±per/2). */
function blobs(k: number, per: number, d: number, seed: number): { points: Float64Array; truth: Int32Array } {
  const rng = xoshiro128ss(seed);
  const pts: number[] = [], truth: number[] = [];
  for (let c = 0; c < k; c++) {
    const size = per + Math.floor((rng.next() - 0.5) * per);
    for (let i = 0; i < Math.max(1, size); i++) {
      for (let j = 0; j < d; j++) pts.push(c * 100 + j * 37 * (c % 3) + (rng.next() - 0.5));
      truth.push(c);
    }
  }
  return { points: Float64Array.from(pts), truth: Int32Array.from(truth) };
}

/** True when two labelings induce the same partition. */
function samePartition(a: Int32Array, b: Int32Array): boolean {
  const ab = new Map<number, number>(), ba = new Map<number, number>();
  for (let i = 0; i < a.length; i++) {
    if ((ab.get(a[i]!) ?? b[i]) !== b[i] || (ba.get(b[i]!) ?? a[i]) !== a[i]) return false;
    ab.set(a[i]!, b[i]!); ba.set(b[i]!, a[i]!);
  }
  return true;
}

describe('clusterMapFromLabels', () => {
  it('covers every channel exactly once for random labels with uneven sizes and remainders', () => {
    fc.assert(fc.property(labelsArb, ({ k, labels }) => {
      const map = clusterMapFromLabels(labels, k);
      expectCovers(map, labels.length, k);
      validateClusterMap(map, labels.length, 'test');
      // contiguous clusters, stable (ascending channels) inside each, sizes = label counts
      for (let c = 0; c < k; c++) {
        for (let j = map.offsets[c]!; j < map.offsets[c + 1]!; j++) {
          expect(labels[map.perm[j]!]).toBe(c);
          if (j > map.offsets[c]!) expect(map.perm[j]!).toBeGreaterThan(map.perm[j - 1]!);
        }
        expect(clusterSizes(map)[c]).toBe(labels.filter((l) => l === c).length);
      }
      const inv = inversePerm(map.perm);
      for (let j = 0; j < labels.length; j++) expect(inv[map.perm[j]!]).toBe(j);
    }), { numRuns: 300 });
  });

  it("covers all 10 channels for n=10, k=3, where the reference's len(data)//n_clusters counts cover 9", () => {
    // RPTQ4LLM peg_tensor_calc_reorder_index: counts = [len(data)//n_clusters]*n_clusters → [3, 3, 3]
    const n = 10, k = 3;
    const referenceCounts = new Array(k).fill(Math.floor(n / k));
    const refOffsets = Int32Array.from([0, ...referenceCounts.map((_, c) => (c + 1) * Math.floor(n / k))]);
    const refMap: ClusterMap = { perm: Int32Array.from({ length: n }, (_, i) => i), offsets: refOffsets };
    expect(refOffsets[k]).toBe(9);
    expect(() => validateClusterMap(refMap, n, 'reference counts')).toThrow(/offsets end at 9, must end at the channel count 10 \(channels at positions 9\.\.9 belong to no cluster\)/);

    const labels = Int32Array.from({ length: n }, (_, i) => Math.min(k - 1, Math.floor(i / Math.floor(n / k))));
    const map = clusterMapFromLabels(labels, k);
    expectCovers(map, n, k);
    expect(Array.from(clusterSizes(map))).toEqual([3, 3, 4]);
  });
});

describe('kmeans', () => {
  it('is deterministic for a seed, labels in range, exactly k non-empty clusters, centroids are means', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 4 }), fc.nat(0xffffffff),
      fc.constantFrom('random', 'dupes', 'constant'), (n, d, seed, pat) => {
        const rng = xoshiro128ss(seed);
        const pts = new Float32Array(n * d);
        for (let i = 0; i < pts.length; i++) {
          pts[i] = pat === 'constant' ? 1.5 : pat === 'dupes' ? Math.floor(rng.next() * 3) : (rng.next() - 0.5) * 10;
        }
        const k = 1 + (seed % n);
        const a = kmeans(pts, d, k, { seed, nInit: 3 });
        const b = kmeans(pts, d, k, { seed, nInit: 3 });
        expect(a).toEqual(b);
        expect(a.labels.length).toBe(n);
        const counts = new Int32Array(k);
        for (const l of a.labels) { expect(l).toBeGreaterThanOrEqual(0); expect(l).toBeLessThan(k); counts[l]!++; }
        expect(Array.from(counts).every((c) => c > 0)).toBe(true);
        // centroids are the means of the returned labels, inertia matches
        let inertia = 0;
        for (let c = 0; c < k; c++) {
          for (let j = 0; j < d; j++) {
            let s = 0;
            for (let i = 0; i < n; i++) if (a.labels[i] === c) s += pts[i * d + j]!;
            expect(a.centroids[c * d + j]).toBeCloseTo(s / counts[c]!, 9);
          }
        }
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < d; j++) inertia += (pts[i * d + j]! - a.centroids[a.labels[i]! * d + j]!) ** 2;
        }
        expect(a.inertia).toBeCloseTo(inertia, 6);
        expectCovers(clusterMapFromLabels(a.labels, k), n, k);
      }), { numRuns: 150 });
  });

  it('recovers well-separated clusters (d = 2 and d = 4)', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 3, max: 40 }), fc.constantFrom(2, 4), fc.nat(0xffffffff),
      (k, per, d, seed) => {
        const { points, truth } = blobs(k, per, d, seed);
        const r = kmeans(points, d, k, { seed });
        expect(samePartition(r.labels, truth)).toBe(true);
        expect(r.converged).toBe(true);
      }), { numRuns: 60 });
  });

  it('numbers clusters by ascending centroid', () => {
    const { points } = blobs(6, 20, 2, 7);
    const r = kmeans(points, 2, 6);
    for (let c = 1; c < 6; c++) expect(r.centroids[2 * c]!).toBeGreaterThan(r.centroids[2 * (c - 1)]!);
  });

  it('splits identical points across k clusters when there are fewer distinct points than k', () => {
    const same = new Float32Array(2 * 9).fill(3);
    const r = kmeans(same, 2, 5);
    expect(r.distinctPoints).toBe(1);
    expect(r.inertia).toBe(0);
    expect(new Set(r.labels).size).toBe(5);
    expect(Array.from(r.centroids)).toEqual(new Array(10).fill(3));
    const two = Float64Array.from([0, 0, 0, 0, 0, 0, 10, 10, 10, 10]); // 2 distinct points (d = 2), k = 4
    const r2 = kmeans(two, 2, 4);
    expect(r2.distinctPoints).toBe(2);
    expect(new Set(r2.labels).size).toBe(4);
    expect(r2.inertia).toBe(0);
  });

  it('k = n puts each point in its own cluster; k = 1 gives the mean', () => {
    const pts = Float64Array.from([5, 1, 3, 9, 7]);
    const r = kmeans(pts, 1, 5);
    expect(Array.from(r.labels)).toEqual([2, 0, 1, 4, 3]); // ranks of 5, 1, 3, 9, 7
    expect(r.inertia).toBe(0);
    const one = kmeans(pts, 1, 1);
    expect(one.centroids[0]).toBeCloseTo(5, 12);
    expect(one.inertia).toBeCloseTo(40, 9);
  });

  it('the PRNG is xoshiro128** seeded by splitmix32: fixed sequence for a seed', () => {
    const a = xoshiro128ss(0), b = xoshiro128ss(0), c = xoshiro128ss(1);
    const sa = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c.nextU32())).not.toEqual(sa);
    for (const v of sa) expect(v >>> 0).toBe(v);
    const r = xoshiro128ss(42);
    for (let i = 0; i < 1000; i++) { const u = r.next(); expect(u).toBeGreaterThanOrEqual(0); expect(u).toBeLessThan(1); }
  });
});

describe('buildClusterMap and clusterPerHead', () => {
  it('buildClusterMap groups channels by [max, min] and covers every channel', () => {
    const n = 64;
    const min = new Float32Array(n), max = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const big = i % 8 === 3; // outlier channels
      max[i] = big ? 50 + (i % 3) : 1 + (i % 5) * 0.01;
      min[i] = big ? -40 : -1 - (i % 4) * 0.01;
    }
    const { map, kmeans: km } = buildClusterMap(min, max, 2, { seed: 3 });
    validateClusterMap(map, n, 'R1');
    expectCovers(map, n, 2);
    // ascending centroid order: the outliers form the last cluster
    const last = Array.from(map.perm.subarray(map.offsets[1]!, map.offsets[2]!));
    expect(last).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => i % 8 === 3));
    expect(km.labels.length).toBe(n);
  });

  it('clusterPerHead never crosses a head and no cluster straddles a head boundary', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 4 }), fc.nat(1000),
      (nHeads, headSize, d, seed) => {
        const n = nHeads * headSize, k = 1 + (seed % headSize);
        const rng = xoshiro128ss(seed);
        const f = Float32Array.from({ length: n * d }, () => rng.next() * 4 - 2);
        const { map, heads } = clusterPerHead(f, nHeads, headSize, k, { seed, nInit: 2 });
        expect(heads.length).toBe(nHeads);
        validateHeadLocal(map, nHeads, headSize, 'R2');
        expectCovers(map, n, nHeads * k);
        for (let j = 0; j < n; j++) expect(Math.floor(map.perm[j]! / headSize)).toBe(Math.floor(j / headSize));
      }), { numRuns: 100 });
  });

  it('R2 features are [q_max, k_max, q_min, k_min] and cluster per head', () => {
    const f = qkFeatures([-1, -2], [1, 2], [-3, -4], [3, 4]);
    expect(Array.from(f)).toEqual([1, 3, -1, -3, 2, 4, -2, -4]);
    const nHeads = 4, headSize = 16, n = nHeads * headSize;
    const qMin = new Float32Array(n), qMax = new Float32Array(n), kMin = new Float32Array(n), kMax = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const s = 1 + (i % 4) * 10;
      qMax[i] = s; qMin[i] = -s; kMax[i] = s / 2; kMin[i] = -s / 2;
    }
    const { map } = clusterPerHead(qkFeatures(qMin, qMax, kMin, kMax), nHeads, headSize, 4);
    validateHeadLocal(map, nHeads, headSize, 'R2');
    for (let c = 0; c < nHeads * 4; c++) {
      const members = Array.from(map.perm.subarray(map.offsets[c]!, map.offsets[c + 1]!));
      expect(new Set(members.map((i) => i % 4)).size).toBe(1);
    }
  });
});
