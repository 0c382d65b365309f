// `npm run demo`: the main job, end to end on this machine.
// Until the decoder lands: a 1×4096 · 4096×4096 f32 GEMV (an OPT-6.7b-sized projection) on the best
// WASM backend against the js reference, printing the error and the speed of each.

import { performance } from 'node:perf_hooks';
import { init, createBackend, Tensor, linear, currentBackend } from '../index.js';

function seeded(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function time(fn: () => void, reps: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

async function main(): Promise<void> {
  const info = await init();
  console.log(`lowbit backend: ${info.name}${info.notes.length ? ` (${info.notes.join('; ')})` : ''}`);
  const K = 4096, N = 4096;
  const heap = currentBackend().heap;
  const w = Tensor.fromArray(seeded(N * K, 1), [N, K]).toHeap(heap!);
  const x = Tensor.fromArray(seeded(K, 2), [1, K]).toHeap(heap!);
  const y = linear(x, w);
  const ms = time(() => linear(x, w).dispose(), 10);

  const js = await createBackend('js');
  const want = new Float32Array(N);
  const wd = Float32Array.from(w.data), xd = Float32Array.from(x.data);
  const jsMs = time(() => js.kernels.sgemmNT(1, N, K, xd, K, wd, K, want, N, null), 2);
  let maxErr = 0, maxAbs = 0;
  const yd = y.data;
  for (let i = 0; i < N; i++) {
    maxErr = Math.max(maxErr, Math.abs(yd[i]! - want[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
  }
  const gb = (4 * N * K) / 1e9;
  console.log(`f32 GEMV 1x${K}·${K}x${N}: ${info.name} ${ms.toFixed(2)} ms (${(gb / (ms / 1e3)).toFixed(1)} GB/s of weights), ` +
    `js ${jsMs.toFixed(1)} ms: ${(jsMs / ms).toFixed(1)}x faster; max |error| ${maxErr.toExponential(2)} (max |y| ${maxAbs.toFixed(2)})`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
