// Range estimation and (scale, zero) from a range: min-max, GPTQ's MSE clipping search
// (IST-DASLab/gptq quant.py `Quantizer.find_params`, mse=True), and percentiles.
//
// From a range [lo, hi] (always widened to include 0, as GPTQ and PyTorch observers do), in f32:
//   asymmetric: lo = hi = 0 → [−1, 1] (GPTQ); s = (hi − lo) / (2^b − 1); z = round(−lo / s) clamped
//               to 0 .. 2^b − 1 (GPTQ does not clamp; with 0 in the range it never needs to)
//   symmetric:  absmax = max(−lo, hi), 0 → 1; s = absmax / (2^(b−1) − 1); z = 2^(b−1) (the signed
//               code q − z ranges over ±(2^(b−1) − 1) for data inside the range; DESIGN.md's formula,
//               not GPTQ's sym = (2·absmax / (2^b − 1), (2^b)/2))
//   s is clamped to at least MIN_SCALE so a subnormal range never divides by zero.

import { LowbitError } from '../errors.js';
import type { Kernels } from '../kernels/index.js';
import { quantizeValue, dequantizeValue, roundHalfEven } from './round.js';
import type { QParams, QuantLayout, RangeMethod } from './types.js';

const f = Math.fround;

/** Smallest scale ever produced (2⁻¹⁰⁰): far below any real tensor's range / 255, so it never changes GPTQ's result. */
export const MIN_SCALE = 2 ** -100;

/** (scale, zero) of one range [lo, hi] (f32 values) for `bits`-bit codes; see the file comment. */
export function qparamsFromRange(lo: number, hi: number, bits: number, symmetric: boolean): { scale: number; zero: number } {
  lo = Math.min(lo, 0);
  hi = Math.max(hi, 0);
  const qmax = 2 ** bits - 1;
  if (symmetric) {
    let a = Math.max(-lo, hi);
    if (a === 0) a = 1;
    return { scale: Math.max(f(a / (2 ** (bits - 1) - 1)), MIN_SCALE), zero: 2 ** (bits - 1) };
  }
  if (lo === 0 && hi === 0) { lo = -1; hi = 1; }
  const s = Math.max(f(f(hi - lo) / qmax), MIN_SCALE);
  const z = roundHalfEven(f(-lo / s));
  return { scale: s, zero: Math.min(qmax, Math.max(0, z)) };
}

/** Elementwise `qparamsFromRange` over per-slot ranges. */
export function qparamsFromRanges(lo: ArrayLike<number>, hi: ArrayLike<number>, bits: number, symmetric: boolean): QParams {
  const n = lo.length, scale = new Float32Array(n), zero = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = qparamsFromRange(lo[i]!, hi[i]!, bits, symmetric);
    scale[i] = p.scale;
    zero[i] = p.zero;
  }
  return { scale, zero };
}

/** First index of a NaN or ±∞ in `x`, or -1. */
export function firstNonFinite(x: ArrayLike<number>): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}

/**
 * Per-slot min and max of `x` (the [rows, cols] view in layout column order), through the
 * rangeSegments kernel. Throws E_NONFINITE naming the first NaN/±∞ (its index in `origIndex` terms).
 */
export function slotRanges(k: Kernels, x: Float32Array, l: QuantLayout, what: string,
  origIndex: (i: number) => number = (i) => i): { lo: Float32Array; hi: Float32Array } {
  const nSeg = l.offsets.length - 1, slots = l.rowPeriod * nSeg;
  const lo = new Float32Array(slots).fill(Infinity), hi = new Float32Array(slots).fill(-Infinity);
  if (l.rows === 0 || l.cols === 0) return { lo: lo.fill(0), hi: hi.fill(0) };
  const mn = new Float32Array(l.rows * nSeg), mx = new Float32Array(l.rows * nSeg);
  k.rangeSegments(l.rows, l.cols, x, nSeg, l.offsets, mn, mx);
  for (let i = 0; i < mn.length; i++) {
    if (!Number.isFinite(mn[i]!) || !Number.isFinite(mx[i]!)) {
      const bad = firstNonFinite(x);
      throw new LowbitError('E_NONFINITE', `${what}: element ${origIndex(bad)} is ${x[bad]} (calibration data must be finite)`, { index: origIndex(bad) });
    }
    const p = ((Math.floor(i / nSeg) % l.rowPeriod) * nSeg) + (i % nSeg);
    if (mn[i]! < lo[p]!) lo[p] = mn[i]!;
    if (mx[i]! > hi[p]!) hi[p] = mx[i]!;
  }
  return { lo, hi };
}

/** The elements of each slot, gathered (for percentile and MSE). */
function slotValues(x: Float32Array, l: QuantLayout): Float32Array[] {
  const nSeg = l.offsets.length - 1, slots = l.rowPeriod * nSeg;
  const counts = new Int32Array(slots);
  for (let r = 0; r < l.rows; r++) for (let s = 0; s < nSeg; s++) counts[(r % l.rowPeriod) * nSeg + s]! += l.offsets[s + 1]! - l.offsets[s]!;
  const out = Array.from(counts, (c) => new Float32Array(c));
  const fill = new Int32Array(slots);
  for (let r = 0; r < l.rows; r++) {
    for (let s = 0; s < nSeg; s++) {
      const p = (r % l.rowPeriod) * nSeg + s, a = l.offsets[s]!, b = l.offsets[s + 1]!;
      out[p]!.set(x.subarray(r * l.cols + a, r * l.cols + b), fill[p]!);
      fill[p]! += b - a;
    }
  }
  return out;
}

/** Linear-interpolated q-th percentile (numpy's default) of sorted values. */
export function percentileSorted(sorted: Float32Array, q: number): number {
  if (sorted.length === 0) return 0;
  const pos = (q / 100) * (sorted.length - 1), i = Math.floor(pos), t = pos - i;
  return i + 1 < sorted.length ? f(sorted[i]! + t * (sorted[i + 1]! - sorted[i]!)) : sorted[i]!;
}

/**
 * GPTQ's clipping search for one slot: for i = 0 .. floor(maxShrink · grid) − 1, p = 1 − i/grid,
 * range (p·lo, p·hi) (symmetric keeps z), keep the first one minimising Σ|x − x'|^norm (summed in
 * f64; GPTQ sums in the tensor dtype, which can only differ on near-ties).
 */
export function mseSearch(values: Float32Array, lo: number, hi: number, bits: number, symmetric: boolean,
  grid = 100, maxShrink = 0.8, norm = 2.4): { scale: number; zero: number } {
  lo = Math.min(lo, 0); hi = Math.max(hi, 0);
  if (!symmetric && lo === 0 && hi === 0) { lo = -1; hi = 1; }
  const qmax = 2 ** bits - 1;
  let best = Infinity, bestP = qparamsFromRange(lo, hi, bits, symmetric);
  const steps = Math.floor(maxShrink * grid);
  for (let i = 0; i < steps; i++) {
    const p = f(1 - i / grid);
    const cand = qparamsFromRange(f(p * lo), f(p * hi), bits, symmetric);
    let err = 0;
    for (let j = 0; j < values.length; j++) {
      const x = values[j]!;
      err += Math.abs(dequantizeValue(quantizeValue(x, cand.scale, cand.zero, qmax), cand.scale, cand.zero) - x) ** norm;
    }
    if (err < best) { best = err; bestP = cand; }
  }
  return bestP;
}

/** Parameters for every slot of `l` from the data `x` ([rows, cols] view) by `method`. */
export function estimateParams(k: Kernels, x: Float32Array, l: QuantLayout, bits: number, symmetric: boolean,
  method: RangeMethod, origIndex?: (i: number) => number): QParams {
  const { lo, hi } = slotRanges(k, x, l, 'quantize', origIndex);
  if (method.kind === 'minmax') return qparamsFromRanges(lo, hi, bits, symmetric);
  const values = slotValues(x, l);
  const scale = new Float32Array(lo.length), zero = new Uint8Array(lo.length);
  for (let p = 0; p < lo.length; p++) {
    let r: { scale: number; zero: number };
    if (method.kind === 'mse') {
      r = mseSearch(values[p]!, lo[p]!, hi[p]!, bits, symmetric, method.grid, method.maxShrink, method.norm);
    } else {
      const v = values[p]!.slice().sort();
      r = qparamsFromRange(percentileSorted(v, 100 - method.p), percentileSorted(v, method.p), bits, symmetric);
    }
    scale[p] = r.scale;
    zero[p] = r.zero;
  }
  return { scale, zero };
}
