// ClusterMaps for RPTQ: labels → contiguous-cluster permutations, validation, per-head clustering (arXiv 2304.01089 §3; RPTQ4LLM quantize/reorder_utils.py `tensor_calc_reorder_index`).

import { LowbitError } from '../../errors.js';
import type { ClusterMap } from '../types.js';
import { checkFinite, kmeans, type KMeansOptions, type KMeansResult } from './kmeans.js';

function argInt(fn: string, name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new LowbitError('E_ARG', `${fn}: ${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

/**
 * The ClusterMap that groups channels by label: clusters in label order 0..k−1, channels inside a
 * cluster in ascending original index (a stable sort of channels by label; the reference uses
 * `torch.argsort(labels)`, which is not stable). `offsets` are the prefix sums of the cluster
 * sizes, so they end at n: every channel is covered exactly once, remainders included (unlike
 * RPTQ4LLM's `counts = [len(data)//n_clusters]*n_clusters`).
 *
 * Errors (E_ARG): k < 1, no labels, a label that is not an integer in 0..k−1 (naming its index),
 * a cluster with no channel (a ClusterMap has no empty clusters).
 */
export function clusterMapFromLabels(labels: ArrayLike<number>, k: number): ClusterMap {
  argInt('clusterMapFromLabels', 'k', k, 1);
  const n = labels?.length;
  if (!n) throw new LowbitError('E_ARG', 'clusterMapFromLabels: labels is empty (zero channels)');
  if (k > n) throw new LowbitError('E_ARG', `clusterMapFromLabels: k = ${k} clusters exceeds the ${n} channels`);
  const counts = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (!Number.isInteger(l) || l < 0 || l >= k) {
      throw new LowbitError('E_ARG', `clusterMapFromLabels: labels[${i}] = ${l} is not an integer in 0..${k - 1}`, { index: i });
    }
    counts[l]!++;
  }
  const offsets = new Int32Array(k + 1);
  for (let c = 0; c < k; c++) {
    if (counts[c] === 0) throw new LowbitError('E_ARG', `clusterMapFromLabels: cluster ${c} has no channel`, { cluster: c });
    offsets[c + 1] = offsets[c]! + counts[c]!;
  }
  const next = offsets.slice(0, k);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[next[labels[i]!]!++] = i;
  return { perm, offsets };
}

/**
 * Throws E_ARG unless `perm` is a permutation of 0..n−1, naming the first out-of-range entry, the
 * first duplicated channel (with both positions) and the channel it leaves missing.
 */
export function validatePerm(perm: Int32Array, n: number, what: string): void {
  if (!(perm instanceof Int32Array)) throw new LowbitError('E_ARG', `${what}: perm must be an Int32Array`);
  if (perm.length !== n) throw new LowbitError('E_ARG', `${what}: perm has ${perm.length} entries, expected ${n} channels`);
  const at = new Int32Array(n).fill(-1);
  for (let j = 0; j < n; j++) {
    const c = perm[j]!;
    if (c < 0 || c >= n) throw new LowbitError('E_ARG', `${what}: perm[${j}] = ${c} is not a channel in 0..${n - 1}`, { position: j });
    if (at[c] !== -1) {
      const seen = new Uint8Array(n);
      for (let i = 0; i < n; i++) if (perm[i]! >= 0 && perm[i]! < n) seen[perm[i]!] = 1;
      const missing = seen.indexOf(0);
      throw new LowbitError('E_ARG', `${what}: perm is not a permutation: channel ${c} appears at positions ${at[c]} and ${j}` +
        (missing >= 0 ? `, channel ${missing} is missing` : ''), { channel: c, missing });
    }
    at[c] = j;
  }
}

/**
 * Checks the ClusterMap invariants for `nChannels` channels (types.ts): `perm` is a permutation,
 * `offsets[0] = 0`, offsets strictly increase (no empty cluster), `offsets[k] = nChannels`.
 * Throws E_ARG prefixed with `what`, naming the first violation.
 */
export function validateClusterMap(map: ClusterMap, nChannels: number, what: string): void {
  argInt(what, 'nChannels', nChannels, 1);
  if (!map || typeof map !== 'object') throw new LowbitError('E_ARG', `${what}: cluster map must be {perm, offsets}`);
  validatePerm(map.perm, nChannels, what);
  const off = map.offsets;
  if (!(off instanceof Int32Array)) throw new LowbitError('E_ARG', `${what}: offsets must be an Int32Array`);
  if (off.length < 2) throw new LowbitError('E_ARG', `${what}: offsets has ${off.length} entries, need k + 1 ≥ 2`);
  if (off[0] !== 0) throw new LowbitError('E_ARG', `${what}: offsets[0] = ${off[0]}, must be 0`);
  for (let c = 0; c + 1 < off.length; c++) {
    if (off[c + 1] === off[c]) throw new LowbitError('E_ARG', `${what}: cluster ${c} is empty (offsets[${c}] = offsets[${c + 1}] = ${off[c]})`, { cluster: c });
    if (off[c + 1]! < off[c]!) throw new LowbitError('E_ARG', `${what}: offsets are not increasing: offsets[${c}] = ${off[c]} > offsets[${c + 1}] = ${off[c + 1]}`, { cluster: c });
  }
  const last = off[off.length - 1]!;
  if (last !== nChannels) {
    throw new LowbitError('E_ARG', `${what}: offsets end at ${last}, must end at the channel count ${nChannels}` +
      (last < nChannels ? ` (channels at positions ${last}..${nChannels - 1} belong to no cluster)` : ''));
  }
}

/**
 * Checks that a map never crosses a head of `headSize` channels: each position j holds a channel of
 * j's own head, and no cluster straddles a head boundary (R2/R3, DESIGN.md). Throws E_ARG.
 */
export function validateHeadLocal(map: ClusterMap, nHeads: number, headSize: number, what: string): void {
  argInt(what, 'nHeads', nHeads, 1);
  argInt(what, 'headSize', headSize, 1);
  validateClusterMap(map, nHeads * headSize, what);
  for (let j = 0; j < map.perm.length; j++) {
    const h = Math.floor(j / headSize), hc = Math.floor(map.perm[j]! / headSize);
    if (h !== hc) {
      throw new LowbitError('E_ARG', `${what}: position ${j} (head ${h}) holds channel ${map.perm[j]} of head ${hc}; the permutation must stay within each head`, { position: j });
    }
  }
  const off = map.offsets;
  for (let c = 0; c + 1 < off.length; c++) {
    if (Math.floor(off[c]! / headSize) !== Math.floor((off[c + 1]! - 1) / headSize)) {
      throw new LowbitError('E_ARG', `${what}: cluster ${c} (positions ${off[c]}..${off[c + 1]! - 1}) straddles a head boundary (headSize ${headSize})`, { cluster: c });
    }
  }
}

/** inv with inv[perm[j]] = j (the position of each original channel). Validates perm. */
export function inversePerm(perm: Int32Array): Int32Array {
  validatePerm(perm, perm?.length ?? 0, 'inversePerm');
  const inv = new Int32Array(perm.length);
  for (let j = 0; j < perm.length; j++) inv[perm[j]!] = j;
  return inv;
}

/** Cluster sizes [k]: offsets[c+1] − offsets[c] (the reference's `counts`). */
export function clusterSizes(map: ClusterMap): Int32Array {
  const k = map.offsets.length - 1;
  const s = new Int32Array(k);
  for (let c = 0; c < k; c++) s[c] = map.offsets[c + 1]! - map.offsets[c]!;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Features from calibration statistics
// ---------------------------------------------------------------------------------------------

function statArrays(fn: string, named: Array<[string, ArrayLike<number>]>): number {
  const n = named[0]![1]?.length;
  if (!n) throw new LowbitError('E_ARG', `${fn}: ${named[0]![0]} is empty (zero channels)`);
  for (const [name, a] of named) {
    if (!a || a.length !== n) throw new LowbitError('E_ARG', `${fn}: ${name} has ${a?.length} channels, ${named[0]![0]} has ${n}`);
    checkFinite(`${fn}: ${name}`, a);
  }
  return n;
}

function minLeMax(fn: string, minName: string, min: ArrayLike<number>, maxName: string, max: ArrayLike<number>): void {
  for (let i = 0; i < min.length; i++) {
    if (min[i]! > max[i]!) {
      throw new LowbitError('E_ARG', `${fn}: channel ${i} has ${minName} ${min[i]} > ${maxName} ${max[i]}`, { index: i });
    }
  }
}

/** Per-channel feature points [n, 2] = [max, min] (R1, R3, R4, R5). E_ARG / E_NONFINITE on bad statistics. */
export function minMaxFeatures(minPerChannel: ArrayLike<number>, maxPerChannel: ArrayLike<number>): Float64Array {
  const fn = 'minMaxFeatures';
  const n = statArrays(fn, [['minPerChannel', minPerChannel], ['maxPerChannel', maxPerChannel]]);
  minLeMax(fn, 'min', minPerChannel, 'max', maxPerChannel);
  const f = new Float64Array(2 * n); // [n, 2]
  for (let i = 0; i < n; i++) { f[2 * i] = maxPerChannel[i]!; f[2 * i + 1] = minPerChannel[i]!; }
  return f;
}

/**
 * R2 feature points [n, 4] = [q_max, k_max, q_min, k_min] per channel of the q/k projections (the
 * reference concatenates [qmax, kmax] then [qmin, kmin]).
 */
export function qkFeatures(qMin: ArrayLike<number>, qMax: ArrayLike<number>, kMin: ArrayLike<number>,
  kMax: ArrayLike<number>): Float64Array {
  const fn = 'qkFeatures';
  const n = statArrays(fn, [['qMin', qMin], ['qMax', qMax], ['kMin', kMin], ['kMax', kMax]]);
  minLeMax(fn, 'qMin', qMin, 'qMax', qMax);
  minLeMax(fn, 'kMin', kMin, 'kMax', kMax);
  const f = new Float64Array(4 * n); // [n, 4]
  for (let i = 0; i < n; i++) {
    f[4 * i] = qMax[i]!; f[4 * i + 1] = kMax[i]!; f[4 * i + 2] = qMin[i]!; f[4 * i + 3] = kMin[i]!;
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Clustering
// ---------------------------------------------------------------------------------------------

export interface BuiltClusterMap {
  map: ClusterMap;
  kmeans: KMeansResult;
}

/**
 * Clusters channels by their calibrated range (R1/R4/R5: the `[max, min]` features, k-means with
 * `opts`) and returns the map with clusters ordered by ascending centroid (kmeans numbers them so).
 * Errors: E_ARG for zero channels, mismatched lengths, min > max, k < 1 or k > channels;
 * E_NONFINITE naming the first NaN/Inf statistic.
 */
export function buildClusterMap(minPerChannel: ArrayLike<number>, maxPerChannel: ArrayLike<number>, k: number,
  opts: KMeansOptions = {}): BuiltClusterMap {
  const features = minMaxFeatures(minPerChannel, maxPerChannel);
  const n = features.length / 2;
  argInt('buildClusterMap', 'k', k, 1);
  if (k > n) throw new LowbitError('E_ARG', `buildClusterMap: k = ${k} clusters exceeds the ${n} channels`);
  const km = kmeans(features, 2, k, opts);
  return { map: clusterMapFromLabels(km.labels, k), kmeans: km };
}

export interface HeadClusterMap {
  /** One global map over nHeads·headSize channels; head h's clusters are h·clustersPerHead .. (h+1)·clustersPerHead − 1. */
  map: ClusterMap;
  /** The k-means result of each head (labels local to the head). */
  heads: KMeansResult[];
}

/**
 * R2/R3: clusters each head's channels separately (k-means with `opts`, the same seed for every head,
 * as the reference's `random_state=0` per head), so the permutation never crosses a head and no
 * cluster straddles a head boundary. `features` is [nHeads·headSize, d] row-major (d from its length).
 * Errors: E_ARG for bad counts, clustersPerHead > headSize, a length that is not a multiple of the
 * channel count; E_NONFINITE naming the first NaN/Inf element.
 */
export function clusterPerHead(features: Float32Array | Float64Array, nHeads: number, headSize: number,
  clustersPerHead: number, opts: KMeansOptions = {}): HeadClusterMap {
  const fn = 'clusterPerHead';
  argInt(fn, 'nHeads', nHeads, 1);
  argInt(fn, 'headSize', headSize, 1);
  argInt(fn, 'clustersPerHead', clustersPerHead, 1);
  if (clustersPerHead > headSize) {
    throw new LowbitError('E_ARG', `${fn}: clustersPerHead = ${clustersPerHead} exceeds the ${headSize} channels of a head`);
  }
  if (!(features instanceof Float32Array || features instanceof Float64Array)) {
    throw new LowbitError('E_ARG', `${fn}: features must be a Float32Array or Float64Array [nHeads·headSize, d]`);
  }
  const n = nHeads * headSize;
  if (features.length === 0 || features.length % n !== 0) {
    throw new LowbitError('E_ARG', `${fn}: features has ${features.length} elements, need a positive multiple of ${n} channels (nHeads ${nHeads} × headSize ${headSize})`);
  }
  const d = features.length / n;
  checkFinite(`${fn}: features`, features, d);
  const k = clustersPerHead;
  const perm = new Int32Array(n);
  const offsets = new Int32Array(nHeads * k + 1);
  const heads: KMeansResult[] = [];
  for (let h = 0; h < nHeads; h++) {
    const km = kmeans(features.subarray(h * headSize * d, (h + 1) * headSize * d), d, k, opts);
    const local = clusterMapFromLabels(km.labels, k);
    for (let j = 0; j < headSize; j++) perm[h * headSize + j] = h * headSize + local.perm[j]!;
    for (let c = 1; c <= k; c++) offsets[h * k + c] = h * headSize + local.offsets[c]!;
    heads.push(km);
  }
  return { map: { perm, offsets }, heads };
}
