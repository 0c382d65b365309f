// RPTQ reorder folding: folding alone leaves LayerNorm+linear, producer→consumer pairs and a whole
// OPT-style decoder layer unchanged (to float tolerance), on every backend; folds are pure.

import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { init } from '../src/runtime.js';
import { Tensor } from '../src/tensor.js';
import { linear, layerNorm, relu, add, mul, matmul, softmax } from '../src/ops.js';
import type { BackendName } from '../src/kernels/index.js';
import {
  xoshiro128ss, permuteLayerNorm, gatherColumns, permuteInputColumns, permuteOutputRows, permuteVector, foldOptLayer,
  clusterMapFromLabels, buildClusterMap, clusterPerHead, qkFeatures, inversePerm,
  type ClusterMap, type OptLayerWeights, type OptWeightKey, type OptLayerMaps, type Rng,
} from '../src/quant/rptq/index.js';

const names = (process.env.LOWBIT_BACKENDS ?? 'js,simd').split(',').map((s) => s.trim()) as BackendName[];

const T = (a: Float32Array, shape?: number[]): Tensor => Tensor.fromArray(a, shape);
const data = (t: Tensor): Float32Array => Float32Array.from(t.contiguous().data as Float32Array);

function randn(n: number, rng: Rng, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

function randPerm(n: number, rng: Rng): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** A random permutation that stays within each head (R2/R3). */
function headPerm(nHeads: number, headSize: number, rng: Rng): Int32Array {
  const p = new Int32Array(nHeads * headSize);
  for (let h = 0; h < nHeads; h++) {
    const local = randPerm(headSize, rng);
    for (let j = 0; j < headSize; j++) p[h * headSize + j] = h * headSize + local[j]!;
  }
  return p;
}

/** A one-cluster map around a permutation (folding only looks at perm). */
const asMap = (perm: Int32Array): ClusterMap => ({ perm, offsets: Int32Array.from([0, perm.length]) });

/** A head-local map with one cluster per head. */
const asHeadMap = (perm: Int32Array, nHeads: number, headSize: number): ClusterMap =>
  ({ perm, offsets: Int32Array.from({ length: nHeads + 1 }, (_, h) => h * headSize) });

/** out[t, j] = x[t, perm[j]]. */
function permuteCols(x: Float32Array, rows: number, perm: Int32Array): Float32Array {
  const n = perm.length, out = new Float32Array(rows * n);
  for (let t = 0; t < rows; t++) for (let j = 0; j < n; j++) out[t * n + j] = x[t * n + perm[j]!]!;
  return out;
}

function expectClose(got: Float32Array, want: Float32Array, rel = 1e-5): void {
  expect(got.length).toBe(want.length);
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThanOrEqual(rel * Math.max(scale, 1));
}

// ---------------------------------------------------------------------------------------------
// A small OPT decoder layer (pre-LN) on src/ops, returning the five RPTQ activation sites.
// ---------------------------------------------------------------------------------------------

interface Dims { dim: number; nHeads: number; hiddenDim: number }

interface LayerTrace {
  ln1: Float32Array; // [T, dim]   R1 site
  q: Float32Array; // [T, dim]     R2 site (q_proj output, before scaling)
  k: Float32Array; // [T, dim]     R2 site
  attn: Float32Array; // [T, dim]  R3 site (input of out_proj)
  ln2: Float32Array; // [T, dim]   R4 site
  h: Float32Array; // [T, hidden]  R5 site (input of fc2, after ReLU)
  out: Float32Array; // [T, dim]
}

function optLayer(x: Float32Array, nTok: number, w: OptLayerWeights, { dim, nHeads, hiddenDim }: Dims): LayerTrace {
  const hs = dim / nHeads;
  const xt = T(x, [nTok, dim]);
  // reorder-LayerNorm: read the (unpermuted) residual through the input index when R1/R4 set one
  const lnIn = (r: Tensor, perm: Int32Array | null | undefined) => (perm ? T(gatherColumns(data(r), nTok, perm), [nTok, dim]) : r);
  const ln1 = layerNorm(lnIn(xt, w.ln1InputPerm), T(w.ln1Gamma), T(w.ln1Beta));
  const q = linear(ln1, T(w.qW, [dim, dim]), T(w.qB));
  const k = linear(ln1, T(w.kW, [dim, dim]), T(w.kB));
  const v = linear(ln1, T(w.vW, [dim, dim]), T(w.vB));
  const heads = (t: Tensor) => t.reshape(nTok, nHeads, hs).transpose(0, 1).contiguous(); // [nHeads, T, hs]
  const qs = mul(q, T(new Float32Array(dim).fill(1 / Math.sqrt(hs))));
  const scores = matmul(heads(qs), heads(k).transpose()); // [nHeads, T, T]
  const p = softmax(scores, { causal: 0 });
  const o = matmul(p, heads(v)).transpose(0, 1).contiguous().reshape(nTok, dim); // [T, dim]
  const x1 = add(xt, linear(o, T(w.oW, [dim, dim]), T(w.oB)));
  const ln2 = layerNorm(lnIn(x1, w.ln2InputPerm), T(w.ln2Gamma), T(w.ln2Beta));
  const h = relu(linear(ln2, T(w.fc1W, [hiddenDim, dim]), T(w.fc1B)));
  const out = add(x1, linear(h, T(w.fc2W, [dim, hiddenDim]), T(w.fc2B)));
  return { ln1: data(ln1), q: data(q), k: data(k), attn: data(o), ln2: data(ln2), h: data(h), out: data(out) };
}

function randomLayer({ dim, hiddenDim }: Dims, rng: Rng): OptLayerWeights {
  const s = 1 / Math.sqrt(dim);
  const g = () => Float32Array.from({ length: dim }, () => 0.5 + rng.next());
  return {
    ln1Gamma: g(), ln1Beta: randn(dim, rng, 0.2),
    qW: randn(dim * dim, rng, s), qB: randn(dim, rng, 0.1), kW: randn(dim * dim, rng, s), kB: randn(dim, rng, 0.1),
    vW: randn(dim * dim, rng, s), vB: randn(dim, rng, 0.1), oW: randn(dim * dim, rng, s), oB: randn(dim, rng, 0.1),
    ln2Gamma: g(), ln2Beta: randn(dim, rng, 0.2),
    fc1W: randn(hiddenDim * dim, rng, s), fc1B: randn(hiddenDim, rng, 0.1),
    fc2W: randn(dim * hiddenDim, rng, 1 / Math.sqrt(hiddenDim)), fc2B: randn(dim, rng, 0.1),
  };
}

/** Input with a few outlier channels, as OPT's residual stream has. */
function layerInput(nTok: number, dim: number, rng: Rng): Float32Array {
  const x = randn(nTok * dim, rng, 1);
  for (let t = 0; t < nTok; t++) for (let c = 0; c < dim; c += 7) x[t * dim + c]! *= 20;
  return x;
}

function colMinMax(x: Float32Array, rows: number, cols: number): { min: Float32Array; max: Float32Array } {
  const min = new Float32Array(cols).fill(Infinity), max = new Float32Array(cols).fill(-Infinity);
  for (let t = 0; t < rows; t++) {
    for (let c = 0; c < cols; c++) {
      const v = x[t * cols + c]!;
      if (v < min[c]!) min[c] = v;
      if (v > max[c]!) max[c] = v;
    }
  }
  return { min, max };
}

for (const name of names) {
  describe(`RPTQ folding on backend ${name}`, () => {
    beforeAll(async () => {
      await init({ backend: name });
    });

    it('reorder-LayerNorm (gathered input, permuted gamma/beta) + linear with permuted input columns = unpermuted', () => {
      fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 24 }),
        fc.nat(0xffffffff), (rows, n, out, seed) => {
          const rng = xoshiro128ss(seed);
          const x = randn(rows * n, rng, 3), g = randn(n, rng), b = randn(n, rng), w = randn(out * n, rng), bias = randn(out, rng);
          const perm = randPerm(n, rng);
          const want = data(linear(layerNorm(T(x, [rows, n]), T(g), T(b)), T(w, [out, n]), T(bias)));
          const lp = permuteLayerNorm(g, b, perm);
          const ln = layerNorm(T(gatherColumns(x, rows, lp.inputPerm), [rows, n]), T(lp.gamma), T(lp.beta!));
          // LN output is the original output in permuted order; x itself (the residual) is untouched
          expectClose(data(ln), permuteCols(data(layerNorm(T(x, [rows, n]), T(g), T(b))), rows, perm));
          expectClose(data(linear(ln, T(permuteInputColumns(w, out, n, perm), [out, n]), T(bias))), want);
        }), { numRuns: 60 });
    });

    it('permuting gamma/beta alone (no input gather) does not permute the LayerNorm output', () => {
      const x = Float32Array.from([1, 3]), g = Float32Array.from([1, 2]), b = Float32Array.from([0, 10]);
      const perm = Int32Array.from([1, 0]);
      const lp = permuteLayerNorm(g, b, perm);
      const wrong = data(layerNorm(T(x, [1, 2]), T(lp.gamma), T(lp.beta!))); // x̂ = [-1, 1] → [8, 1]
      const right = permuteCols(data(layerNorm(T(x, [1, 2]), T(g), T(b))), 1, perm); // [-1, 12] permuted → [12, -1]
      expectClose(data(layerNorm(T(gatherColumns(x, 1, lp.inputPerm), [1, 2]), T(lp.gamma), T(lp.beta!))), right);
      expect(Math.abs(wrong[0]! - right[0]!)).toBeGreaterThan(1);
    });

    it('producer with permuted rows/bias → ReLU → consumer with permuted columns = unpermuted', () => {
      fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 16 }), fc.nat(0xffffffff), (rows, inDim, mid, outDim, seed) => {
          const rng = xoshiro128ss(seed);
          const x = randn(rows * inDim, rng, 2);
          const w1 = randn(mid * inDim, rng), b1 = randn(mid, rng), w2 = randn(outDim * mid, rng), b2 = randn(outDim, rng);
          const perm = randPerm(mid, rng);
          const hid = linear(T(x, [rows, inDim]), T(w1, [mid, inDim]), T(b1));
          const want = data(linear(relu(hid), T(w2, [outDim, mid]), T(b2)));
          const p1 = permuteOutputRows(w1, b1, mid, inDim, perm);
          const hidP = linear(T(x, [rows, inDim]), T(p1.weight, [mid, inDim]), T(p1.bias!));
          expectClose(data(hidP), permuteCols(data(hid), rows, perm));
          expectClose(data(linear(relu(hidP), T(permuteInputColumns(w2, outDim, mid, perm), [outDim, mid]), T(b2))), want);
        }), { numRuns: 60 });
    });

    it('an OPT layer gives the same output after all five folds (random head-local permutations)', () => {
      fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 3 }), fc.nat(0xffffffff), (nHeads, headSize, nTok, mult, seed) => {
          const dim = nHeads * headSize, dims = { dim, nHeads, hiddenDim: dim * mult + (seed % 3) };
          const rng = xoshiro128ss(seed);
          const w = randomLayer(dims, rng), x = layerInput(nTok, dim, rng);
          const maps: OptLayerMaps = {
            r1: asMap(randPerm(dim, rng)), r2: asHeadMap(headPerm(nHeads, headSize, rng), nHeads, headSize),
            r3: asHeadMap(headPerm(nHeads, headSize, rng), nHeads, headSize), r4: asMap(randPerm(dim, rng)),
            r5: asMap(randPerm(dims.hiddenDim, rng)),
          };
          const ref = optLayer(x, nTok, w, dims);
          const got = optLayer(x, nTok, foldOptLayer(w, dims, maps), dims);
          expectClose(got.out, ref.out);
        }), { numRuns: 40 });
    });

    it('end to end: calibrate, cluster (32 / 4 per head / 32 like the reference defaults), fold, same output', () => {
      const dims = { dim: 64, nHeads: 4, hiddenDim: 256 }, nTok = 24, hs = 16;
      const rng = xoshiro128ss(11);
      const w = randomLayer(dims, rng), x = layerInput(nTok, dims.dim, rng);
      const before = JSON.stringify(Object.fromEntries(Object.entries(w).map(([k, v]) => [k, Array.from(v)])));
      const ref = optLayer(x, nTok, w, dims);
      const s1 = colMinMax(ref.ln1, nTok, 64), sq = colMinMax(ref.q, nTok, 64), sk = colMinMax(ref.k, nTok, 64);
      const s3 = colMinMax(ref.attn, nTok, 64), s4 = colMinMax(ref.ln2, nTok, 64), s5 = colMinMax(ref.h, nTok, 256);
      const maps: OptLayerMaps = {
        r1: buildClusterMap(s1.min, s1.max, 32).map,
        r2: clusterPerHead(qkFeatures(sq.min, sq.max, sk.min, sk.max), 4, hs, 4).map,
        r3: clusterPerHead(Float64Array.from(Array.from(s3.max).flatMap((m, i) => [m, s3.min[i]!])), 4, hs, 4).map,
        r4: buildClusterMap(s4.min, s4.max, 32).map,
        r5: buildClusterMap(s5.min, s5.max, 32).map,
      };
      const folded = foldOptLayer(w, dims, maps);
      // pure: the input weights are untouched, and the folded ones are new arrays
      expect(JSON.stringify(Object.fromEntries(Object.entries(w).map(([k, v]) => [k, Array.from(v)])))).toBe(before);
      for (const key of Object.keys(w) as OptWeightKey[]) expect(folded[key]).not.toBe(w[key]);
      expect(Array.from(folded.ln1InputPerm!)).toEqual(Array.from(maps.r1!.perm));
      expect(Array.from(folded.ln2InputPerm!)).toEqual(Array.from(maps.r4!.perm));
      // the residual-facing outputs are never permuted
      expect(Array.from(folded.oB)).toEqual(Array.from(w.oB));
      expect(Array.from(folded.fc2B)).toEqual(Array.from(w.fc2B));
      const got = optLayer(x, nTok, folded, dims);
      expectClose(got.out, ref.out);
      // each activation site now comes out in its map's order (so clusters are contiguous)
      expectClose(got.ln1, permuteCols(ref.ln1, nTok, maps.r1!.perm));
      expectClose(got.q, permuteCols(ref.q, nTok, maps.r2!.perm));
      expectClose(got.k, permuteCols(ref.k, nTok, maps.r2!.perm));
      expectClose(got.attn, permuteCols(ref.attn, nTok, maps.r3!.perm));
      expectClose(got.ln2, permuteCols(ref.ln2, nTok, maps.r4!.perm));
      expectClose(got.h, permuteCols(ref.h, nTok, maps.r5!.perm));
    });

    it('each fold alone (R1..R5 one at a time) keeps the output', () => {
      const dims = { dim: 24, nHeads: 3, hiddenDim: 40 }, nTok = 5;
      const rng = xoshiro128ss(5);
      const w = randomLayer(dims, rng), x = layerInput(nTok, dims.dim, rng);
      const ref = optLayer(x, nTok, w, dims).out;
      const all: OptLayerMaps = {
        r1: asMap(randPerm(24, rng)), r2: asHeadMap(headPerm(3, 8, rng), 3, 8), r3: asHeadMap(headPerm(3, 8, rng), 3, 8),
        r4: asMap(randPerm(24, rng)), r5: asMap(randPerm(40, rng)),
      };
      for (const key of ['r1', 'r2', 'r3', 'r4', 'r5'] as const) {
        expectClose(optLayer(x, nTok, foldOptLayer(w, dims, { [key]: all[key] }), dims).out, ref);
      }
      // folding a folded layer again composes (the LayerNorm input indices included)
      const again: OptLayerMaps = {
        r1: asMap(randPerm(24, rng)), r2: asHeadMap(headPerm(3, 8, rng), 3, 8), r3: asHeadMap(headPerm(3, 8, rng), 3, 8),
        r4: asMap(randPerm(24, rng)), r5: asMap(randPerm(40, rng)),
      };
      expectClose(optLayer(x, nTok, foldOptLayer(foldOptLayer(w, dims, all), dims, again), dims).out, ref);
    });

    it('a cross-head R3 permutation would change the output (why R2/R3 are clustered per head)', () => {
      const dims = { dim: 8, nHeads: 2, hiddenDim: 8 }, nTok = 4;
      const rng = xoshiro128ss(9);
      const w = randomLayer(dims, rng), x = layerInput(nTok, 8, rng);
      const swap = Int32Array.from([4, 1, 2, 3, 0, 5, 6, 7]); // channel 0 (head 0) ↔ channel 4 (head 1)
      // apply the R3 fold by hand (foldOptLayer refuses such a map)
      const v = permuteOutputRows(w.vW, w.vB, 8, 8, swap);
      const bad = { ...w, vW: v.weight, vB: v.bias!, oW: permuteInputColumns(w.oW, 8, 8, swap) };
      const diff = optLayer(x, nTok, bad, dims).out.some((o, i) => Math.abs(o - optLayer(x, nTok, w, dims).out[i]!) > 1e-3);
      expect(diff).toBe(true);
    });
  });
}

describe('folding primitives', () => {
  it('permuteVector / inversePerm round-trip, and permutations compose as index_select', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 50 }), fc.nat(0xffffffff), (n, seed) => {
      const rng = xoshiro128ss(seed);
      const v = randn(n, rng), p = randPerm(n, rng);
      const pv = permuteVector(v, p);
      expect(Array.from(permuteVector(pv, inversePerm(p)))).toEqual(Array.from(v));
      for (let j = 0; j < n; j++) expect(pv[j]).toBe(v[p[j]!]);
    }));
  });

  it('clusterMapFromLabels perm folds like the reference argsort(labels) (stable)', () => {
    const labels = Int32Array.from([2, 0, 1, 0, 2, 1, 1]);
    const { perm } = clusterMapFromLabels(labels, 3);
    expect(Array.from(perm)).toEqual([1, 3, 2, 5, 6, 0, 4]);
    expect(Array.from(permuteVector(Float32Array.from([10, 11, 12, 13, 14, 15, 16]), perm))).toEqual([11, 13, 12, 15, 16, 10, 14]);
  });

  it('never mutates inputs', () => {
    const w = Float32Array.from([1, 2, 3, 4, 5, 6]), b = Float32Array.from([7, 8]);
    const p2 = Int32Array.from([1, 0]), p3 = Int32Array.from([2, 0, 1]);
    const rows = permuteOutputRows(w, b, 2, 3, p2);
    expect(Array.from(rows.weight)).toEqual([4, 5, 6, 1, 2, 3]);
    expect(Array.from(rows.bias!)).toEqual([8, 7]);
    expect(Array.from(permuteInputColumns(w, 2, 3, p3))).toEqual([3, 1, 2, 6, 4, 5]);
    expect(Array.from(w)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(b)).toEqual([7, 8]);
    expect(permuteOutputRows(w, null, 2, 3, p2).bias).toBeNull();
    expect(permuteLayerNorm(b, null, p2)).toEqual({ gamma: Float32Array.from([8, 7]), beta: null, inputPerm: p2 });
  });
});
