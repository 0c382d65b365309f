// GPTQ's weight quantizer: IST-DASLab/gptq quant.py `Quantizer.find_params(x, weight=True)` with
// perchannel=True (one (scale, zero) per output row) and the module-level `quantize`, in f32.
//
//   xmin = min(min_row(x), 0), xmax = max(max_row(x), 0)
//   sym:  xmax = max(|xmin|, xmax); where xmin < 0: xmin = −xmax   (a row with xmin = 0 keeps [0, xmax])
//   xmin = xmax = 0 → [−1, +1]
//   scale = (xmax − xmin) / maxq;  zero = sym ? (maxq + 1) / 2 : round(−xmin / scale)
//   mse:  for i in 0 .. floor(maxShrink · grid) − 1, p = 1 − i / grid: candidate (p·xmin, p·xmax),
//         zero kept for sym; keep the first candidate minimising Σ |quantize(x) − x|^norm
//   quantize(x) = scale · (clamp(round(x / scale) + zero, 0, maxq) − zero), round half to even
//
// Symmetric here is GPTQ's (s = 2·absmax / (2^b − 1), z = 2^(b−1)), not lowbit's RTN symmetric
// scheme (s = absmax / (2^(b−1) − 1)): GPTQ checkpoints store exactly these parameters.

import { quantizeValue, dequantizeValue, roundHalfEven } from '../round.js';

const f = Math.fround;

/** GPTQ's MSE clipping search parameters (quant.py `configure`: norm 2.4, grid 100, maxshrink 0.8). */
export interface MseSearch {
  grid?: number;
  maxShrink?: number;
  norm?: number;
}

/** One row's parameters from its range (xmin ≤ 0 ≤ xmax already), as find_params computes them. */
function paramsOf(xmin: number, xmax: number, maxq: number, sym: boolean): { scale: number; zero: number } {
  const scale = f(f(xmax - xmin) / maxq);
  return { scale, zero: sym ? (maxq + 1) / 2 : roundHalfEven(f(-xmin / scale)) };
}

/**
 * find_params for the rows of a column slice: x[r · ld + c0 + j] for r < rows, j < width. Writes
 * scale[r · pStride + pOff] and zero[r · pStride + pOff] (zero is an integer in 0 .. maxq).
 */
export function findParams(x: Float32Array, rows: number, ld: number, c0: number, width: number, bits: number, sym: boolean,
  mse: MseSearch | null, scale: Float32Array, zero: Uint8Array, pStride = 1, pOff = 0): void {
  const maxq = 2 ** bits - 1;
  for (let r = 0; r < rows; r++) {
    const o = r * ld + c0;
    let xmin = 0, xmax = 0;
    for (let j = 0; j < width; j++) {
      const v = x[o + j]!;
      if (v < xmin) xmin = v;
      if (v > xmax) xmax = v;
    }
    if (sym) {
      xmax = Math.max(Math.abs(xmin), xmax);
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin === 0 && xmax === 0) { xmin = -1; xmax = 1; }
    let best = paramsOf(xmin, xmax, maxq, sym);
    if (mse) {
      const grid = mse.grid ?? 100, steps = Math.floor((mse.maxShrink ?? 0.8) * grid), norm = mse.norm ?? 2.4;
      let bestErr = Infinity;
      for (let i = 0; i < steps; i++) {
        const p = f(1 - i / grid);
        const cand = paramsOf(f(p * xmin), f(p * xmax), maxq, sym);
        if (sym) cand.zero = best.zero;
        let err = 0;
        for (let j = 0; j < width; j++) {
          const v = x[o + j]!;
          err += Math.abs(dequantizeValue(quantizeValue(v, cand.scale, cand.zero, maxq), cand.scale, cand.zero) - v) ** norm;
        }
        if (err < bestErr) { bestErr = err; best = cand; }
      }
    }
    scale[r * pStride + pOff] = best.scale;
    zero[r * pStride + pOff] = best.zero;
  }
}
