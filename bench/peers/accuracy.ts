// Accuracy measures shared by the peer benchmark and its tests.

/**
 * Normwise relative error max_i |y_i − ref_i| / max_i |ref_i|: an elementwise ratio blows up where a
 * dot product cancels to near 0, so every element is measured against the output's scale.
 */
export function relError(y: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (y.length !== ref.length) throw new Error(`relError: ${y.length} outputs vs ${ref.length} reference values`);
  let err = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(y[i]! - ref[i]!);
    if (!(d <= err)) err = d; // NaN propagates
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return scale > 0 ? err / scale : err;
}

/**
 * The dequantize-then-f32 reference for 4-bit block weights, in f64: Y[m, n] = Σ_k A[m, k] · W'[n, k],
 * W'[n, k] = fround(s · (q − z)) with the slot of block ⌊k / blockSize⌋ ([N, kBlocks] scales/zeros).
 */
export function dequantRef(M: number, N: number, K: number, blockSize: number, a: Float32Array, codes: Uint8Array,
  scale: Float32Array, zero: Uint8Array): Float64Array {
  const kb = Math.ceil(K / blockSize);
  const y = new Float64Array(M * N);
  const w = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const p = n * kb + Math.floor(k / blockSize);
      w[k] = Math.fround(scale[p]! * (codes[n * K + k]! - zero[p]!));
    }
    for (let m = 0; m < M; m++) {
      let acc = 0;
      const o = m * K;
      for (let k = 0; k < K; k++) acc += a[o + k]! * w[k]!;
      y[m * N + n] = acc;
    }
  }
  return y;
}

/** Y[m, n] = Σ_k A[m, k] · W[n, k] in f64 (the f32 reference). */
export function f32Ref(M: number, N: number, K: number, a: Float32Array, w: Float32Array): Float64Array {
  const y = new Float64Array(M * N);
  for (let n = 0; n < N; n++) {
    const o = n * K;
    for (let m = 0; m < M; m++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += a[m * K + k]! * w[o + k]!;
      y[m * N + n] = acc;
    }
  }
  return y;
}
