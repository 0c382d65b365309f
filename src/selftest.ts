// Known-answer self-test run by init() on each WASM backend before it is chosen. Relaxed SIMD
// results are implementation-defined in places (and Node 20's Liftoff tier gets some wrong on first
// calls), so each kernel is checked against the js reference on adversarial values.
//
// The relaxed binary's u4/u3/u2 weight-only GEMV and its integer GEMM on 7-bit codes (qgemm_u7) use
// i16x8.relaxed_dot_i8x16_i7x16_s (assembly/qmatmul.ts).
// `relaxedDotCheck` runs its known-answer test when a relaxed backend is created; if it fails, the
// dot is switched off for that instance (the i16 path, bit-identical results) and a note says so.
// No warm-up is needed: that instruction gives exact sums on Node 20 under Liftoff
// (--liftoff-only) and TurboFan (--no-liftoff) alike; the Liftoff fault is in
// i32x4.relaxed_dot_i8x16_i7x16_add_s, which no kernel uses (see the header of assembly/qmatmul.ts).

import type { Kernels } from './kernels/index.js';
import { refKernels } from './ref/index.js';
import { packedRowBytes, quadInterleave } from './quant/formats.js';

/** Test-only: force `relaxedDotCheck` to fail (checks the fallback path and its note). */
export const selfTestHooks = { failRelaxedDot: false };

/**
 * u4, u3 and u2 weight-only qmm against the reference, bit for bit, on values that reach every integer
 * bound of the kernels: max codes against activation limbs 127 (the largest i16 partial sums),
 * zeros, a partial row quad, and segments longer than one i16 run (u4: 5 blocks, u3: 3, u2: 9).
 */
export function qmmKnownAnswer(k: Kernels): string[] {
  const ref = refKernels();
  for (const [format, chunks, qmax] of [['u4', [10, 2, 2], 15], ['u3', [24, 8, 8], 7], ['u2', [36, 4, 4], 3]] as const) {
    const nSeg = 3, segc = Int32Array.from([0, chunks[0], chunks[0] + chunks[1], chunks[0] + chunks[1] + chunks[2]]);
    const Kc = segc[nSeg]!, Kp = Kc * 16, K = Kp - 24, N = 6, M = 2;
    const gather = Int32Array.from({ length: Kp }, (_, j) => (j < K ? j : -1));
    const x = new Float32Array(M * K);
    for (let i = 0; i < x.length; i++) {
      const r = i % 7;
      x[i] = r < 3 ? 1000 : r === 3 ? -1000 : r === 4 ? 0 : ((i * 7919) % 201) - 100;
    }
    x[K + 5] = 3e6;
    const codes = new Uint8Array(8 * Kp);
    for (let j = 0; j < Kp; j++) {
      codes[j] = qmax; codes[Kp + j] = qmax; codes[2 * Kp + j] = (j * 40503 >>> 3) & qmax; codes[3 * Kp + j] = 0;
      codes[4 * Kp + j] = j & 1 ? qmax : 0; codes[5 * Kp + j] = (j * 13) & qmax;
    }
    const rb = packedRowBytes(format, Kp), rowMajor = new Uint8Array(8 * rb);
    ref.packCodes(8, Kp, format, codes, rowMajor);
    const w = quadInterleave(format, 8, Kp, rowMajor);
    const wp = new Float32Array(2 * nSeg * 12);
    for (let r = 0; r < 8; r++) {
      for (let g = 0; g < nSeg; g++) {
        let Q = 0;
        for (let j = segc[g]! * 16; j < segc[g + 1]! * 16; j++) Q += codes[r * Kp + j]!;
        const o = ((r >> 2) * nSeg + g) * 12 + (r & 3);
        wp[o] = 0.01 * (1 + r + g); wp[o + 4] = (r * 3 + g) & qmax; wp[o + 8] = Q;
      }
    }
    const act = new Uint8Array(M * Kc * 128), ap = new Float32Array(M * nSeg * 4);
    ref.qPrepF32(M, K, x, nSeg, segc, gather, act, ap);
    const got = new Float32Array(M * N), want = new Float32Array(M * N);
    k.qmm(M, N, nSeg, segc, format, 0, w, rb, wp, act, ap, null, got, N);
    ref.qmm(M, N, nSeg, segc, format, 0, w, rb, wp, act, ap, null, want, N);
    for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i])) return [`qmm ${format} y[${i}] = ${got[i]}, expected ${want[i]}`];
    // integer × integer GEMM on 7-bit codes (the relaxed build's i8×i7 GEMM on u − o): all-127 runs against max weight
    // codes, and zero points 0 and 127, so u − o reaches both 127 and −127 (the signed first operand)
    const Mi = 3, ci = Uint8Array.from({ length: Mi * K }, (_, i) => (i % 5 < 3 ? 127 : i % 5 === 3 ? 0 : (i * 7919) % 128));
    const sc = Float32Array.from({ length: Mi * nSeg }, (_, i) => 0.01 * (i + 1));
    const zc = Uint8Array.from({ length: Mi * nSeg }, (_, i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? 127 : (i * 37) % 128));
    const acti = new Uint8Array(Mi * Kc * 128), api = new Float32Array(Mi * nSeg * 4);
    ref.qPrepCodes(Mi, K, ci, nSeg, segc, gather, sc, zc, Mi, 7, acti, api);
    const gi = new Float32Array(Mi * N), wi = new Float32Array(Mi * N);
    k.qmm(Mi, N, nSeg, segc, format, 1, w, rb, wp, acti, api, null, gi, N);
    ref.qmm(Mi, N, nSeg, segc, format, 1, w, rb, wp, acti, api, null, wi, N);
    for (let i = 0; i < gi.length; i++) if (!Object.is(gi[i], wi[i])) return [`qmm ${format} (7-bit codes, ${Mi} tokens) y[${i}] = ${gi[i]}, expected ${wi[i]}`];
  }
  return [];
}

/**
 * Relaxed backends: runs the known-answer test of the i8×i7 dot; on failure switches it off with
 * `setOn(false)` and returns a note for `backend().notes` (empty when the dot passed).
 */
export function relaxedDotCheck(k: Kernels, setOn: (on: boolean) => void): string[] {
  let failures = qmmKnownAnswer(k);
  if (selfTestHooks.failRelaxedDot && !failures.length) failures = ['forced by selfTestHooks.failRelaxedDot'];
  if (!failures.length) return [];
  setOn(false);
  const again = qmmKnownAnswer(k);
  return [`relaxed: the i8×i7 dot failed its known-answer self-test (${failures.join('; ')}); ` +
    `u4/u3/u2 weight-only GEMV and the 7-bit-code GEMM use the i16 path${again.length ? ` (which also fails: ${again.join('; ')})` : ''}`];
}

/** Returns a list of failures (empty = pass). */
export function selfTest(k: Kernels): string[] {
  const ref = refKernels();
  const failures: string[] = [];
  // f32 GEMM with a huge outlier, odd K and N: exercises the SIMD body and the scalar tails.
  const M = 3, N = 7, K = 37;
  const a = new Float32Array(M * K), b = new Float32Array(N * K);
  for (let i = 0; i < a.length; i++) a[i] = ((i * 7919) % 23) - 11;
  for (let i = 0; i < b.length; i++) b[i] = ((i * 104729) % 19) / 4 - 2;
  a[5] = 3e4;
  for (const [name, f] of [['sgemmNT', 'sgemmNT'], ['sgemmNN', 'sgemmNN']] as const) {
    const got = new Float32Array(M * N), want = new Float32Array(M * N);
    const ldb = f === 'sgemmNT' ? K : N;
    k[f](M, N, K, a, K, b, ldb, got, N, null);
    ref[f](M, N, K, a, K, b, ldb, want, N, null);
    for (let i = 0; i < got.length; i++) {
      if (Math.abs(got[i]! - want[i]!) > 1e-5 * (Math.abs(want[i]!) + 1e3)) {
        failures.push(`${name}[${i}] = ${got[i]}, expected ${want[i]}`);
        break;
      }
    }
  }
  failures.push(...qmmKnownAnswer(k));
  return failures;
}
