// lowbit WASM kernels: pointers and integers in, no shapes, no allocation. The TS side (src/wasm/)
// owns memory; kernels only read and write the byte ranges they are given.

export * from './f32';
export * from './quant';
export * from './qmatmul';
export * from './linalg';
export { touch_sink } from './touch';

/** First byte the host may allocate from (after static data). */
export function heap_base(): usize {
  return __heap_base;
}

/** 1 in the relaxed-SIMD build, 0 in the baseline build. */
export function is_relaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
