// Token sampling, kept apart from the model as in llama2.c: greedy, temperature, top-k, top-p (HF logits warpers' order).

import { LowbitError } from '../../errors.js';

// ---------------------------------------------------------------------------------------------
// RNG
// ---------------------------------------------------------------------------------------------

/**
 * mulberry32 (Tommy Ettinger, public domain): 32-bit state, period 2^32, passes PractRand to 2^32 bytes.
 * Returns a function giving uniform floats in [0, 1) with 32 bits of resolution. Same seed, same sequence.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------------------------

export interface SamplerOptions {
  /** 0 (default) is greedy: the first index of the maximum logit. Otherwise logits are divided by it. */
  temperature?: number;
  /** Keep the k highest logits (0 or absent: all). Ties at the k-th value are kept, as torch.topk's threshold does. */
  topK?: number;
  /** Nucleus: keep the smallest set of highest-probability tokens whose mass reaches p (1 or absent: all). */
  topP?: number;
  /** Seed of the mulberry32 stream (default 0). */
  seed?: number;
}

/** A sampler: greedy when temperature is 0, otherwise temperature → top-k → top-p → draw. */
export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  private readonly rng: () => number;
  private probs: Float64Array = new Float64Array(0); // (vocab) scratch
  private order: Int32Array = new Int32Array(0); // (vocab) scratch: candidate indices

  constructor(opts: SamplerOptions = {}) {
    const t = opts.temperature ?? 0, k = opts.topK ?? 0, p = opts.topP ?? 1;
    if (!(t >= 0) || !Number.isFinite(t)) throw new LowbitError('E_ARG', `sampler: temperature must be a finite number >= 0, got ${t}`);
    if (!Number.isSafeInteger(k) || k < 0) throw new LowbitError('E_ARG', `sampler: topK must be an integer >= 0, got ${k}`);
    if (!(p > 0 && p <= 1)) throw new LowbitError('E_ARG', `sampler: topP must be in (0, 1], got ${p}`);
    this.temperature = t;
    this.topK = k;
    this.topP = p;
    this.rng = mulberry32(opts.seed ?? 0);
  }

  /** Picks a token from one row of logits. */
  sample(logits: ArrayLike<number>): number {
    const V = logits.length;
    if (V === 0) throw new LowbitError('E_SHAPE', 'sampler: empty logits');
    if (this.temperature === 0) return argmax(logits);
    if (this.probs.length < V) { this.probs = new Float64Array(V); this.order = new Int32Array(V); }
    const pr = this.probs, ord = this.order;
    let n = V;
    for (let i = 0; i < V; i++) ord[i] = i;
    if (this.topK > 0 && this.topK < V) {
      // threshold = k-th largest logit; keep everything >= it
      const sorted = Float64Array.from(logits).sort();
      const thr = sorted[V - this.topK]!;
      n = 0;
      for (let i = 0; i < V; i++) if (logits[i]! >= thr) ord[n++] = i;
    }
    let mx = -Infinity;
    for (let j = 0; j < n; j++) mx = Math.max(mx, logits[ord[j]!]! / this.temperature);
    let sum = 0;
    for (let j = 0; j < n; j++) { const e = Math.exp(logits[ord[j]!]! / this.temperature - mx); pr[j] = e; sum += e; }
    for (let j = 0; j < n; j++) pr[j]! /= sum;
    if (this.topP < 1) {
      // sort candidates by probability, descending (stable on index), keep the prefix reaching topP
      const idx = Array.from({ length: n }, (_, j) => j).sort((a, b) => pr[b]! - pr[a]! || ord[a]! - ord[b]!);
      let cum = 0, keep = 0;
      while (keep < n) { cum += pr[idx[keep]!]!; keep++; if (cum >= this.topP) break; }
      const newOrd = idx.slice(0, keep).map((j) => ord[j]!);
      const newPr = idx.slice(0, keep).map((j) => pr[j]!);
      n = keep;
      let s2 = 0;
      for (let j = 0; j < n; j++) { ord[j] = newOrd[j]!; pr[j] = newPr[j]!; s2 += newPr[j]!; }
      for (let j = 0; j < n; j++) pr[j]! /= s2;
    }
    const r = this.rng();
    let cdf = 0;
    for (let j = 0; j < n; j++) { cdf += pr[j]!; if (r < cdf) return ord[j]!; }
    return ord[n - 1]!;
  }
}

/** First index of the maximum (NaN counts as the maximum, as the argmax kernel does). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0, bv = x[0]!;
  if (bv !== bv) return 0;
  for (let i = 1; i < x.length; i++) {
    const v = x[i]!;
    if (v !== v) return i;
    if (v > bv) { bv = v; best = i; }
  }
  return best;
}
