// RPTQ bad-input tests: every argument check raises a LowbitError with its stable code and a message
// naming the parameter (or the first offending index / channel / cluster).

import { describe, it, expect } from 'vitest';
import { LowbitError, type ErrorCode } from '../src/errors.js';
import {
  kmeans, clusterMapFromLabels, validateClusterMap, validateHeadLocal, inversePerm, buildClusterMap, clusterPerHead,
  minMaxFeatures, qkFeatures, permuteVector, permuteInputColumns, permuteOutputRows, gatherColumns, foldOptLayer,
  type ClusterMap, type OptLayerWeights,
} from '../src/quant/rptq/index.js';

function expectError(fn: () => unknown, code: ErrorCode, message: RegExp): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(LowbitError);
  expect((err as LowbitError).code).toBe(code);
  expect((err as LowbitError).message).toMatch(message);
}

const I = (...v: number[]) => Int32Array.from(v);
const map = (perm: number[], offsets: number[]): ClusterMap => ({ perm: Int32Array.from(perm), offsets: Int32Array.from(offsets) });

describe('kmeans errors', () => {
  const pts = Float32Array.from([0, 1, 2, 3, 4, 5]); // 3 points, d = 2
  it('rejects bad shapes and counts (E_ARG)', () => {
    expectError(() => kmeans(new Float32Array(0), 2, 1), 'E_ARG', /points has 0 elements/);
    expectError(() => kmeans(Float32Array.from([1, 2, 3]), 2, 1), 'E_ARG', /3 elements, need a positive multiple of d = 2/);
    expectError(() => kmeans(pts, 0, 1), 'E_ARG', /d must be an integer/);
    expectError(() => kmeans(pts, 2, 0), 'E_ARG', /k must be an integer in \[1, 3\], got 0/);
    expectError(() => kmeans(pts, 2, 4), 'E_ARG', /k must be an integer in \[1, 3\], got 4/);
    expectError(() => kmeans(pts, 2, 1.5), 'E_ARG', /k must be an integer/);
    expectError(() => kmeans([0, 1] as unknown as Float32Array, 1, 1), 'E_ARG', /Float32Array or Float64Array/);
  });
  it('rejects bad options (E_ARG)', () => {
    expectError(() => kmeans(pts, 2, 2, { nInit: 0 }), 'E_ARG', /nInit/);
    expectError(() => kmeans(pts, 2, 2, { maxIter: 0 }), 'E_ARG', /maxIter/);
    expectError(() => kmeans(pts, 2, 2, { tol: -1 }), 'E_ARG', /tol/);
    expectError(() => kmeans(pts, 2, 2, { tol: NaN }), 'E_ARG', /tol/);
    expectError(() => kmeans(pts, 2, 2, { seed: -1 }), 'E_ARG', /seed/);
    expectError(() => kmeans(pts, 2, 2, { seed: 2 ** 32 }), 'E_ARG', /seed/);
  });
  it('names the first NaN/Inf element (E_NONFINITE)', () => {
    expectError(() => kmeans(Float32Array.from([0, 1, 2, NaN, 4, Infinity]), 2, 1), 'E_NONFINITE', /element 3 \(row 1, feature 1\) is NaN/);
    expectError(() => kmeans(Float64Array.from([0, -Infinity]), 1, 1), 'E_NONFINITE', /element 1 is -Infinity/);
  });
});

describe('clusterMapFromLabels errors', () => {
  it('rejects k < 1, zero channels, k > n, out-of-range labels and empty clusters (E_ARG)', () => {
    expectError(() => clusterMapFromLabels(I(0, 0), 0), 'E_ARG', /k must be an integer/);
    expectError(() => clusterMapFromLabels(I(), 1), 'E_ARG', /zero channels/);
    expectError(() => clusterMapFromLabels(I(0, 1), 3), 'E_ARG', /k = 3 clusters exceeds the 2 channels/);
    expectError(() => clusterMapFromLabels(I(0, 1, 2), 2), 'E_ARG', /labels\[2\] = 2 is not an integer in 0\.\.1/);
    expectError(() => clusterMapFromLabels(I(0, -1), 2), 'E_ARG', /labels\[1\] = -1/);
    expectError(() => clusterMapFromLabels([0, 0.5], 2), 'E_ARG', /labels\[1\] = 0\.5/);
    expectError(() => clusterMapFromLabels(I(0, 2, 2), 3), 'E_ARG', /cluster 1 has no channel/);
  });
});

describe('validateClusterMap errors', () => {
  it('names the duplicated and missing channel of a non-permutation', () => {
    expectError(() => validateClusterMap(map([0, 2, 2, 3], [0, 4]), 4, 'R1'), 'E_ARG',
      /R1: perm is not a permutation: channel 2 appears at positions 1 and 2, channel 1 is missing/);
    expectError(() => validateClusterMap(map([0, 4, 1, 2], [0, 4]), 4, 'R1'), 'E_ARG', /perm\[1\] = 4 is not a channel in 0\.\.3/);
    expectError(() => validateClusterMap(map([0, 1, 2], [0, 3]), 4, 'R1'), 'E_ARG', /perm has 3 entries, expected 4 channels/);
    expectError(() => validateClusterMap({ perm: [0, 1] as unknown as Int32Array, offsets: I(0, 2) }, 2, 'R1'), 'E_ARG', /perm must be an Int32Array/);
  });
  it('names bad offsets: not starting at 0, not increasing, empty cluster, not ending at n', () => {
    expectError(() => validateClusterMap(map([0, 1, 2, 3], [1, 4]), 4, 'R4'), 'E_ARG', /R4: offsets\[0\] = 1, must be 0/);
    expectError(() => validateClusterMap(map([0, 1, 2, 3], [0, 3, 2, 4]), 4, 'R4'), 'E_ARG', /offsets are not increasing: offsets\[1\] = 3 > offsets\[2\] = 2/);
    expectError(() => validateClusterMap(map([0, 1, 2, 3], [0, 2, 2, 4]), 4, 'R4'), 'E_ARG', /cluster 1 is empty/);
    expectError(() => validateClusterMap(map([0, 1, 2, 3], [0, 3]), 4, 'R4'), 'E_ARG', /offsets end at 3, must end at the channel count 4/);
    expectError(() => validateClusterMap(map([0, 1, 2, 3], [0, 2, 5]), 4, 'R4'), 'E_ARG', /offsets end at 5/);
    expectError(() => validateClusterMap(map([0, 1, 2, 3], [0]), 4, 'R4'), 'E_ARG', /need k \+ 1 ≥ 2/);
    expectError(() => validateClusterMap({ perm: I(0), offsets: [0, 1] as unknown as Int32Array }, 1, 'R4'), 'E_ARG', /offsets must be an Int32Array/);
    expectError(() => validateClusterMap(map([], [0]), 0, 'R4'), 'E_ARG', /nChannels/);
  });
  it('validateHeadLocal names a position that crosses a head and a cluster that straddles one', () => {
    expectError(() => validateHeadLocal(map([2, 1, 0, 3], [0, 2, 4]), 2, 2, 'R2'), 'E_ARG',
      /R2: position 0 \(head 0\) holds channel 2 of head 1/);
    expectError(() => validateHeadLocal(map([1, 0, 2, 3], [0, 3, 4]), 2, 2, 'R3'), 'E_ARG',
      /R3: cluster 0 \(positions 0\.\.2\) straddles a head boundary/);
  });
  it('inversePerm rejects a non-permutation', () => {
    expectError(() => inversePerm(I(0, 0)), 'E_ARG', /inversePerm: perm is not a permutation: channel 0/);
  });
});

describe('buildClusterMap / clusterPerHead / feature errors', () => {
  const min = Float32Array.from([-1, -2, -3]), max = Float32Array.from([1, 2, 3]);
  it('rejects bad cluster counts and zero channels (E_ARG)', () => {
    expectError(() => buildClusterMap(min, max, 4), 'E_ARG', /buildClusterMap: k = 4 clusters exceeds the 3 channels/);
    expectError(() => buildClusterMap(min, max, 0), 'E_ARG', /buildClusterMap: k must be an integer/);
    expectError(() => buildClusterMap(new Float32Array(0), new Float32Array(0), 1), 'E_ARG', /minPerChannel is empty \(zero channels\)/);
    expectError(() => buildClusterMap(min, Float32Array.from([1, 2]), 1), 'E_ARG', /maxPerChannel has 2 channels, minPerChannel has 3/);
    expectError(() => buildClusterMap(Float32Array.from([-1, 5, -3]), max, 1), 'E_ARG', /channel 1 has min 5 > max 2/);
  });
  it('names the first NaN/Inf statistic (E_NONFINITE)', () => {
    expectError(() => buildClusterMap(Float32Array.from([-1, NaN, NaN]), max, 1), 'E_NONFINITE', /minPerChannel: element 1 is NaN/);
    expectError(() => buildClusterMap(min, Float32Array.from([1, 2, Infinity]), 1), 'E_NONFINITE', /maxPerChannel: element 2 is Infinity/);
    expectError(() => minMaxFeatures([-Infinity], [0]), 'E_NONFINITE', /element 0 is -Infinity/);
    expectError(() => qkFeatures([0], [1], [0], [NaN]), 'E_NONFINITE', /kMax: element 0 is NaN/);
    expectError(() => qkFeatures([0], [1], [0, 0], [1, 1]), 'E_ARG', /kMin has 2 channels, qMin has 1/);
    expectError(() => qkFeatures([0], [1], [2], [1]), 'E_ARG', /channel 0 has kMin 2 > kMax 1/);
  });
  it('clusterPerHead rejects bad head arguments', () => {
    const f = new Float32Array(8 * 2);
    expectError(() => clusterPerHead(f, 2, 4, 5), 'E_ARG', /clustersPerHead = 5 exceeds the 4 channels of a head/);
    expectError(() => clusterPerHead(f, 0, 4, 1), 'E_ARG', /nHeads must be an integer/);
    expectError(() => clusterPerHead(f, 2, 0, 1), 'E_ARG', /headSize must be an integer/);
    expectError(() => clusterPerHead(f, 2, 4, 0), 'E_ARG', /clustersPerHead must be an integer/);
    expectError(() => clusterPerHead(new Float32Array(9), 2, 4, 1), 'E_ARG', /9 elements, need a positive multiple of 8 channels/);
    const bad = new Float32Array(16); bad[13] = NaN;
    expectError(() => clusterPerHead(bad, 2, 4, 1), 'E_NONFINITE', /element 13 \(row 6, feature 1\) is NaN/);
  });
});

describe('fold errors', () => {
  it('primitives: E_ARG for a bad perm, E_SHAPE for a wrong-length weight', () => {
    expectError(() => permuteVector(new Float32Array(3), I(0, 1)), 'E_SHAPE', /v has 3 elements, expected \[perm.length\] = 2/);
    expectError(() => permuteVector(new Float32Array(2), I(1, 1)), 'E_ARG', /channel 1 appears at positions 0 and 1, channel 0 is missing/);
    expectError(() => permuteInputColumns(new Float32Array(6), 2, 3, I(0, 1)), 'E_ARG', /perm has 2 entries, expected 3/);
    expectError(() => permuteInputColumns(new Float32Array(5), 2, 3, I(0, 1, 2)), 'E_SHAPE', /weight has 5 elements, expected \[2, 3\] = 6/);
    expectError(() => permuteOutputRows(new Float32Array(6), new Float32Array(3), 2, 3, I(1, 0)), 'E_SHAPE', /bias has 3 elements, expected \[2\]/);
    expectError(() => gatherColumns(new Float32Array(5), 2, I(0, 1)), 'E_SHAPE', /x has 5 elements, expected \[2, 2\] = 4/);
  });

  const dim = 4, nHeads = 2, hiddenDim = 6;
  const layer = (): OptLayerWeights => ({
    ln1Gamma: new Float32Array(dim), ln1Beta: new Float32Array(dim), qW: new Float32Array(dim * dim), qB: new Float32Array(dim),
    kW: new Float32Array(dim * dim), kB: new Float32Array(dim), vW: new Float32Array(dim * dim), vB: new Float32Array(dim),
    oW: new Float32Array(dim * dim), oB: new Float32Array(dim), ln2Gamma: new Float32Array(dim), ln2Beta: new Float32Array(dim),
    fc1W: new Float32Array(hiddenDim * dim), fc1B: new Float32Array(hiddenDim), fc2W: new Float32Array(dim * hiddenDim), fc2B: new Float32Array(dim),
  });
  const dims = { dim, nHeads, hiddenDim };
  it('foldOptLayer names the bad weight, dim, or map', () => {
    expectError(() => foldOptLayer({ ...layer(), fc1W: new Float32Array(23) }, dims, {}), 'E_SHAPE', /fc1W has 23 elements, expected \[6, 4\] = 24/);
    expectError(() => foldOptLayer(layer(), { dim: 5, nHeads: 2, hiddenDim }, {}), 'E_ARG', /dims.dim 5 is not a multiple of nHeads 2/);
    expectError(() => foldOptLayer(layer(), { dim, nHeads: 0, hiddenDim }, {}), 'E_ARG', /dims.nHeads must be a positive integer/);
    expectError(() => foldOptLayer(layer(), dims, { r2: map([2, 1, 0, 3], [0, 2, 4]) }), 'E_ARG', /maps.r2: position 0 \(head 0\) holds channel 2 of head 1/);
    expectError(() => foldOptLayer(layer(), dims, { r3: map([0, 1, 2, 3], [0, 4]) }), 'E_ARG', /maps.r3: cluster 0 .* straddles a head boundary/);
    expectError(() => foldOptLayer(layer(), dims, { r1: map([0, 1, 2], [0, 3]) }), 'E_ARG', /maps.r1: perm has 3 entries, expected 4/);
    expectError(() => foldOptLayer(layer(), dims, { r5: map([0, 1, 2, 3], [0, 4]) }), 'E_ARG', /maps.r5: perm has 4 entries, expected 6/);
    expectError(() => foldOptLayer({ ...layer(), ln1InputPerm: I(0, 0, 1, 2) }, dims, { r1: map([0, 1, 2, 3], [0, 4]) }), 'E_ARG', /weights.ln1InputPerm: perm is not a permutation/);
    expectError(() => foldOptLayer(layer(), { ...dims, layerNormBefore: false }, { r4: map([0, 1, 2, 3], [0, 4]) }), 'E_UNSUPPORTED', /post-LN/);
  });
});
