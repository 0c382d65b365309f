// Timing shared by the main thread (lowbit rows) and the ORT host workers (ORT rows): tinybench,
// median of several runs after a warm-up, the same rule on both sides.

import { Bench } from 'tinybench';

export interface Timing {
  median: number;
  samples: number;
}

/**
 * The timing rule, over a tinybench `Bench` class passed in (so its source can also run inside the
 * ORT host threads, see ./ort.ts: the body must reference nothing but its parameters and globals).
 * Median latency of `fn` in ms. The first call is timed once to pick the budget: subjects slower
 * than 150 ms get 3 timed runs after 1 warm-up, faster ones ≥ 10 runs and ≥ 500 ms after ≥ 5 warm-ups.
 * `quick`: one timed run (CI smoke).
 */
export function timingRule(B: typeof Bench): (fn: () => void | Promise<void>, quick: boolean) => Promise<Timing> {
  return async (fn, quick) => {
    const t0 = performance.now();
    await fn();
    const slow = performance.now() - t0 > 150;
    const bench = quick
      ? new B({ iterations: 1, time: 0, warmup: false })
      : new B({ iterations: slow ? 3 : 10, time: slow ? 0 : 500, warmupIterations: slow ? 1 : 5, warmupTime: slow ? 0 : 100 });
    bench.add('x', fn);
    await bench.run();
    const r = bench.tasks[0]!.result;
    if (r.state === 'errored') throw r.error;
    if (r.state !== 'completed') throw new Error(`bench: ${r.state}`);
    return { median: r.latency.p50 ?? r.latency.mean, samples: r.latency.samplesCount ?? 0 };
  };
}

export const timeIt = timingRule(Bench);
