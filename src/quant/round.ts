// Scalar quantization arithmetic shared by the TS twins and the quantizers: round-half-to-even
// (PyTorch's nearbyint, WASM's f32.nearest) and the f32 quantize/dequantize formulas the
// kernels in assembly/quant.ts compute, step for step.

const f = Math.fround;

/** Round to nearest, ties to even (torch.round / nearbyint). `Math.round` rounds ties up. ±∞, NaN pass through. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * One code, exactly as the kernels compute it in f32:
 *   v = nearest(x / s) + z, v = 0 < v ? v : 0, v = v < qmax ? v : qmax
 * (division, not multiplication by 1/s, so it matches GPTQ's `round(x / scale)` in f32; NaN → 0).
 * `x` and `s` must already be f32 values.
 */
export function quantizeValue(x: number, s: number, z: number, qmax: number): number {
  let v = f(roundHalfEven(f(x / s)) + z);
  v = 0 < v ? v : 0;
  v = v < qmax ? v : qmax;
  return v;
}

/** x' = s · (q − z) in f32. */
export function dequantizeValue(q: number, s: number, z: number): number {
  return f(s * (q - z));
}
