// Seeded k-means (greedy k-means++ init, Lloyd iterations, best of nInit restarts) for RPTQ channel clustering (arXiv 2304.01089 §3; hahnyuan/RPTQ4LLM quantize/reorder_utils.py calls sklearn KMeans(n_clusters, n_init=10, random_state=0)).

import { LowbitError } from '../../errors.js';

export interface KMeansOptions {
  /** Restarts; the run with the lowest inertia wins (first one on ties). Default 10, as RPTQ4LLM's `n_init=10`. */
  nInit?: number;
  /** Lloyd iterations per restart. Default 300 (sklearn). */
  maxIter?: number;
  /**
   * Relative tolerance (sklearn semantics): a run stops when Σ‖centroid shift‖² ≤ tol · mean per-feature
   * variance of the points, or when no label changed. Default 1e-4 (sklearn).
   */
  tol?: number;
  /** Seed of the PRNG (a uint32). Default 0, as RPTQ4LLM's `random_state=0`. */
  seed?: number;
}

export interface KMeansResult {
  /** [n] cluster of each point, in 0..k−1. Clusters are numbered by ascending centroid (lexicographic over features). */
  labels: Int32Array;
  /** [k, d] row-major: the mean of each cluster's points. */
  centroids: Float64Array;
  /** Σ over points of the squared distance to their cluster's centroid. */
  inertia: number;
  /** Lloyd iterations the winning restart ran. */
  iterations: number;
  /** Whether the winning restart stopped by tolerance or unchanged labels (not by maxIter). */
  converged: boolean;
  /** Number of distinct points seen; when < k, some clusters hold copies of the same point (see `kmeans`). */
  distinctPoints: number;
}

// ---------------------------------------------------------------------------------------------
// PRNG: xoshiro128** (Blackman & Vigna 2018), 32-bit state words seeded by splitmix32 from a uint32.
// We do not reproduce numpy's MT19937, so labels match sklearn's clustering but not its label numbers
// or, on near-ties, its exact local optimum.
// ---------------------------------------------------------------------------------------------

/** A seeded uniform generator on [0, 1) with 32 bits of resolution. */
export interface Rng {
  next(): number;
  /** A uint32. */
  nextU32(): number;
}

/** xoshiro128** seeded via splitmix32(seed). Same seed, same sequence, on every engine. */
export function xoshiro128ss(seed: number): Rng {
  let x = seed >>> 0;
  const split = (): number => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  if ((a | b | c | d) === 0) a = 1;
  const nextU32 = (): number => {
    const r = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c ^= a; d ^= b; b ^= c; a ^= d;
    c = (c ^ t) >>> 0;
    d = rotl(d >>> 0, 11);
    a >>>= 0; b >>>= 0; c >>>= 0;
    return r;
  };
  return { nextU32, next: () => nextU32() / 4294967296 };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------------------------

function needInt(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new LowbitError('E_ARG', `kmeans: ${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

/** Throws E_NONFINITE naming the first NaN/±Inf element of a [n, d] array. */
export function checkFinite(what: string, a: ArrayLike<number>, d = 1): void {
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v - v !== 0) {
      const where = d > 1 ? ` (row ${Math.floor(i / d)}, feature ${i % d})` : '';
      throw new LowbitError('E_NONFINITE', `${what}: element ${i}${where} is ${v}`, { index: i, value: v });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// k-means
// ---------------------------------------------------------------------------------------------

/**
 * k-means on n points of dimension d (row-major [n, d]), as sklearn's `KMeans(init='k-means++',
 * algorithm='lloyd')`: greedy k-means++ seeding with 2 + ⌊ln k⌋ candidates per centre, Lloyd
 * iterations until labels stop changing or the centroid shift falls under the tolerance, best of
 * `nInit` restarts. Points are centred on their mean first (as sklearn does) for precision; all
 * arithmetic is in float64.
 *
 * Empty clusters: whenever an assignment leaves a cluster empty, it takes the point farthest from
 * its own centroid among clusters that keep ≥ 2 points (sklearn relocates to the farthest points
 * too). So the result always has exactly k non-empty clusters, for every n ≥ k. When there are
 * fewer distinct points than k, copies of one point are split across clusters with identical
 * centroids (the inertia is that of the distinct-point clustering; `distinctPoints` reports it);
 * k-means++ with zero remaining potential picks a uniformly random point instead of dividing by 0.
 *
 * Errors: E_ARG for n = 0, d < 1, a length that is not n·d, k outside 1..n, bad options;
 * E_NONFINITE naming the first NaN/Inf element.
 */
export function kmeans(points: Float32Array | Float64Array, d: number, k: number, opts: KMeansOptions = {}): KMeansResult {
  if (!(points instanceof Float32Array || points instanceof Float64Array)) {
    throw new LowbitError('E_ARG', 'kmeans: points must be a Float32Array or Float64Array [n, d]');
  }
  needInt('d', d, 1);
  if (points.length === 0 || points.length % d !== 0) {
    throw new LowbitError('E_ARG', `kmeans: points has ${points.length} elements, need a positive multiple of d = ${d}`);
  }
  const n = points.length / d;
  needInt('k', k, 1, n);
  const nInit = needInt('nInit', opts.nInit ?? 10, 1);
  const maxIter = needInt('maxIter', opts.maxIter ?? 300, 1);
  const seed = needInt('seed', opts.seed ?? 0, 0, 0xffffffff);
  const tol = opts.tol ?? 1e-4;
  if (typeof tol !== 'number' || !(tol >= 0) || tol === Infinity) {
    throw new LowbitError('E_ARG', `kmeans: tol must be a finite number ≥ 0, got ${String(tol)}`);
  }
  checkFinite('kmeans: points', points, d);

  // centre the data; tolerance = tol · mean per-feature variance (sklearn `_tolerance`)
  const x = new Float64Array(n * d); // [n, d]
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += points[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  let varSum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const v = points[i * d + j]! - mean[j]!;
      x[i * d + j] = v;
      varSum += v * v;
    }
  }
  const tolAbs = (varSum / n / d) * tol;

  const rng = xoshiro128ss(seed);
  const ws = workspace(n, d, k);
  let best: Run | null = null;
  for (let r = 0; r < nInit; r++) {
    const run = lloyd(x, n, d, k, maxIter, tolAbs, xoshiro128ss(rng.nextU32()), ws);
    if (best === null || run.inertia < best.inertia) best = run;
  }
  const res = canonical(best!, n, d, k);
  for (let c = 0; c < k; c++) for (let j = 0; j < d; j++) res.centroids[c * d + j]! += mean[j]!;
  return { ...res, distinctPoints: countDistinct(points, n, d) };
}

interface Run {
  labels: Int32Array;
  centroids: Float64Array;
  inertia: number;
  iterations: number;
  converged: boolean;
}

interface Workspace {
  dist: Float64Array; // [n] squared distance of each point to its centroid
  closest: Float64Array; // [n] k-means++ potential per point
  cand: Float64Array; // [n] k-means++ trial distances
  bestCand: Float64Array; // [n]
  cumsum: Float64Array; // [n]
  sums: Float64Array; // [k, d]
  counts: Int32Array; // [k]
  prev: Int32Array; // [n]
}

function workspace(n: number, d: number, k: number): Workspace {
  return {
    dist: new Float64Array(n), closest: new Float64Array(n), cand: new Float64Array(n), bestCand: new Float64Array(n),
    cumsum: new Float64Array(n), sums: new Float64Array(k * d), counts: new Int32Array(k), prev: new Int32Array(n),
  };
}

/** Greedy k-means++ (Arthur & Vassilvitskii 2007; sklearn `_kmeans_plusplus`): [k, d] initial centres. */
function kmeansPlusPlus(x: Float64Array, n: number, d: number, k: number, rng: Rng, ws: Workspace): Float64Array {
  const centers = new Float64Array(k * d); // [k, d]
  const trials = 2 + Math.floor(Math.log(k));
  const { closest, cumsum } = ws;
  let trial = ws.cand, best = ws.bestCand; // [n] each, swapped as trials win
  const first = Math.min(n - 1, Math.floor(rng.next() * n));
  for (let j = 0; j < d; j++) centers[j] = x[first * d + j]!;
  let pot = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) { const v = x[i * d + j]! - x[first * d + j]!; s += v * v; }
    closest[i] = s;
    pot += s;
  }
  for (let c = 1; c < k; c++) {
    let acc = 0;
    for (let i = 0; i < n; i++) { acc += closest[i]!; cumsum[i] = acc; }
    let bestPot = Infinity, bestId = 0;
    for (let t = 0; t < trials; t++) {
      let id: number;
      if (!(pot > 0) || !(acc > 0)) {
        id = Math.min(n - 1, Math.floor(rng.next() * n)); // every point sits on a centre already
      } else {
        // first i with cumsum[i] > r: points with zero potential (copies of a centre) are never drawn
        const r = rng.next() * acc;
        let lo = 0, hi = n - 1;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (cumsum[mid]! > r) hi = mid; else lo = mid + 1;
        }
        id = lo;
      }
      const o = id * d;
      let p = 0;
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < d; j++) { const v = x[i * d + j]! - x[o + j]!; s += v * v; }
        const m = s < closest[i]! ? s : closest[i]!;
        trial[i] = m;
        p += m;
      }
      if (p < bestPot) {
        bestPot = p; bestId = id;
        const tmp = best; best = trial; trial = tmp;
      }
    }
    for (let j = 0; j < d; j++) centers[c * d + j] = x[bestId * d + j]!;
    closest.set(best);
    pot = bestPot;
  }
  return centers;
}

/**
 * Assigns each point to its nearest centre (ties → lowest index), writing labels, squared distances
 * and per-cluster counts; returns the inertia.
 */
function assign(x: Float64Array, n: number, d: number, k: number, centers: Float64Array, labels: Int32Array,
  dist: Float64Array, counts: Int32Array): number {
  counts.fill(0);
  let inertia = 0;
  if (d === 2) {
    for (let i = 0; i < n; i++) {
      const a = x[2 * i]!, b = x[2 * i + 1]!;
      let bd = Infinity, bl = 0;
      for (let c = 0; c < k; c++) {
        const u = a - centers[2 * c]!, v = b - centers[2 * c + 1]!;
        const s = u * u + v * v;
        if (s < bd) { bd = s; bl = c; }
      }
      labels[i] = bl; dist[i] = bd; counts[bl]!++; inertia += bd;
    }
    return inertia;
  }
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let bd = Infinity, bl = 0;
    for (let c = 0; c < k; c++) {
      const oc = c * d;
      let s = 0;
      for (let j = 0; j < d; j++) { const v = x[o + j]! - centers[oc + j]!; s += v * v; }
      if (s < bd) { bd = s; bl = c; }
    }
    labels[i] = bl; dist[i] = bd; counts[bl]!++; inertia += bd;
  }
  return inertia;
}

/**
 * Gives every empty cluster one point: the point farthest from its centroid among clusters that
 * keep ≥ 2 points. Always succeeds when n ≥ k. Updates labels, counts and dist (moved points get 0).
 */
function fillEmpty(n: number, k: number, labels: Int32Array, dist: Float64Array, counts: Int32Array): boolean {
  let moved = false;
  for (let c = 0; c < k; c++) {
    if (counts[c]! > 0) continue;
    let far = -1, fd = -1;
    for (let i = 0; i < n; i++) {
      if (counts[labels[i]!]! >= 2 && dist[i]! > fd) { fd = dist[i]!; far = i; }
    }
    counts[labels[far]!]!--;
    labels[far] = c; counts[c] = 1; dist[far] = 0;
    moved = true;
  }
  return moved;
}

/** centers ← mean of each cluster's points; returns Σ‖shift‖². */
function update(x: Float64Array, n: number, d: number, k: number, labels: Int32Array, counts: Int32Array,
  sums: Float64Array, centers: Float64Array): number {
  sums.fill(0);
  for (let i = 0; i < n; i++) {
    const o = labels[i]! * d, oi = i * d;
    for (let j = 0; j < d; j++) sums[o + j]! += x[oi + j]!;
  }
  let shift = 0;
  for (let c = 0; c < k; c++) {
    const inv = 1 / counts[c]!;
    for (let j = 0; j < d; j++) {
      const v = sums[c * d + j]! * inv;
      const e = v - centers[c * d + j]!;
      shift += e * e;
      centers[c * d + j] = v;
    }
  }
  return shift;
}

/** Squared-distance inertia of labels against centers. */
function inertiaOf(x: Float64Array, n: number, d: number, labels: Int32Array, centers: Float64Array): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const o = i * d, oc = labels[i]! * d;
    for (let j = 0; j < d; j++) { const v = x[o + j]! - centers[oc + j]!; s += v * v; }
  }
  return s;
}

/** One restart: k-means++ then Lloyd. The returned centroids are the means of the returned labels. */
function lloyd(x: Float64Array, n: number, d: number, k: number, maxIter: number, tolAbs: number, rng: Rng,
  ws: Workspace): Run {
  const centers = kmeansPlusPlus(x, n, d, k, rng, ws);
  const labels = new Int32Array(n);
  const { dist, counts, sums, prev } = ws;
  let iterations = 0, converged = false;
  prev.fill(-1);
  for (let it = 0; it < maxIter; it++) {
    iterations = it + 1;
    assign(x, n, d, k, centers, labels, dist, counts);
    fillEmpty(n, k, labels, dist, counts);
    const shift = update(x, n, d, k, labels, counts, sums, centers);
    let same = true;
    for (let i = 0; i < n; i++) if (labels[i] !== prev[i]) { same = false; break; }
    if (same || shift <= tolAbs) { converged = true; break; }
    prev.set(labels);
  }
  // final E-step against the last centres (as sklearn), then centroids = means of those labels
  assign(x, n, d, k, centers, labels, dist, counts);
  fillEmpty(n, k, labels, dist, counts);
  update(x, n, d, k, labels, counts, sums, centers);
  return { labels, centroids: centers, inertia: inertiaOf(x, n, d, labels, centers), iterations, converged };
}

/** Renumbers clusters by ascending centroid (lexicographic over features; ties keep discovery order). */
function canonical(run: Run, n: number, d: number, k: number): Run {
  const order = Array.from({ length: k }, (_, c) => c);
  const cen = run.centroids;
  order.sort((a, b) => {
    for (let j = 0; j < d; j++) {
      const e = cen[a * d + j]! - cen[b * d + j]!;
      if (e !== 0) return e;
    }
    return a - b;
  });
  const rank = new Int32Array(k);
  const centroids = new Float64Array(k * d);
  for (let r = 0; r < k; r++) {
    rank[order[r]!] = r;
    for (let j = 0; j < d; j++) centroids[r * d + j] = cen[order[r]! * d + j]!;
  }
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = rank[run.labels[i]!]!;
  return { ...run, labels, centroids };
}

/** Number of distinct rows of a [n, d] array. */
function countDistinct(x: Float32Array | Float64Array, n: number, d: number): number {
  const seen = new Set<string>();
  const row: number[] = new Array<number>(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j]!;
    seen.add(row.join(','));
  }
  return seen.size;
}
