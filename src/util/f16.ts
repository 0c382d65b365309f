// Number-valued IEEE binary16 helpers for Tensor's f16 storage, on top of the bit-exact
// conversions in src/io/tensor.ts (exact decode; encode rounds half to even, like torch's .half()).

import { f16BitsToF32Bits, f32ToF16Bits } from '../io/tensor.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Decodes half-precision bits to a number (exact; subnormals, ±inf and NaN included). */
export function f16ToF32(h: number): number {
  u32[0] = f16BitsToF32Bits(h);
  return f32[0]!;
}

/** Encodes a number as half-precision bits, rounding to nearest even (via f32 first). */
export const f32ToF16: (v: number) => number = f32ToF16Bits;
