// Worker pool cases: hand-off latency (an empty job's round trip to a spinning vs a sleeping
// worker) and f32 GEMV/GEMM at 1 and 2 threads, weights resident in WASM memory. The ratio column of
// a 2T row is its speed-up over 1T of the same binary (its peer).

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { instantiate } from '../../src/wasm/loader.js';
import { createBackend } from '../../src/runtime.js';
import { place } from './f32.js';

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** One sgemmNT case on `b`, operands placed lazily in its heap (views re-created on each call). */
function gemmCase(group: string, impl: string, peer: string, b: Backend, M: number, N: number, K: number): BenchCase {
  let ptrs: number[] = [];
  return {
    group, impl, peer, flops: 2 * M * N * K, bytes: 4 * (M * K + N * K),
    setup() {
      if (ptrs.length) return;
      const pa = place(b, rand(M * K, 1)).byteOffset;
      const pw = place(b, rand(N * K, 2)).byteOffset;
      ptrs = [pa, pw, b.heap!.alloc(M * N * 4, 'bench out')];
    },
    fn() {
      const h = b.heap!;
      b.kernels.sgemmNT(M, N, K, h.f32(ptrs[0]!, M * K), K, h.f32(ptrs[1]!, N * K), K, h.f32(ptrs[2]!, M * N), N, null);
    },
  };
}

export async function threadCases(ctx: BenchContext): Promise<BenchCase[]> {
  const cases: BenchCase[] = [];

  // hand-off: post an empty job, a worker claims it, the main thread sees it done
  const inst = await instantiate('simd', { threads: 2 });
  const pool = inst.pool;
  if (pool) {
    const group = 'threads: hand-off round trip (empty job, 2 threads)';
    cases.push({ group, impl: 'spinning worker', peer: 'sleeping worker', setup: () => pool.setSpinMicros(200), fn: () => { pool.pingMicros(1); } });
    // (includes waiting, at most a few µs with spinMicros 0, until the worker is inside Atomics.wait)
    cases.push({ group, impl: 'sleeping worker', peer: 'sleeping worker', setup: () => pool.setSpinMicros(0), fn: () => { pool.pingMicros(1, true); } });
  }

  const shapes: Array<[string, number, number, number]> = [
    ['threads: gemv f32 1x768·768x3072', 1, 3072, 768],
    ['threads: gemv f32 1x4096·4096x4096', 1, 4096, 4096],
    ['threads: gemm f32 128x768·768x768', 128, 768, 768],
  ];
  for (const name of ['simd', 'relaxed'] as const) {
    const one = ctx.backends[name];
    if (!one) continue;
    const two = await createBackend(name, { threads: 2 });
    for (const [group, M, N, K] of shapes) {
      cases.push(gemmCase(group, `${name} 1T`, `${name} 1T`, one, M, N, K));
      if (two.info.threads === 2) cases.push(gemmCase(group, `${name} 2T`, `${name} 1T`, two, M, N, K));
    }
  }
  return cases;
}
