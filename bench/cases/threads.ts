// Worker pool cases: hand-off latency, an empty job's round trip to a spinning vs a sleeping worker.
// (GEMV/GEMM at 1 and 2 threads are rows of the f32 and decoder groups: 'simd 2T' vs 'simd'.)

import type { BenchCase, BenchContext } from '../types.js';
import { instantiate } from '../../src/wasm/loader.js';

export async function threadCases(_ctx: BenchContext): Promise<BenchCase[]> {
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

  return cases;
}
