// Shared SIMD helpers: one source, two binaries. ASC_FEATURE_RELAXED_SIMD is a compile-time constant,
// so the baseline build never contains a relaxed opcode (it would fail validation in Node 20).

/** a*b + c. Relaxed build: f32x4.relaxed_madd (fused or not, as the engine chooses). */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Sum of the four f32 lanes, in the order ((l0 + l2) + (l1 + l3)). */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** Sum of the four i32 lanes. */
// @ts-ignore: decorator
@inline export function hsumI32(v: v128): i32 {
  const s = i32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1);
}
