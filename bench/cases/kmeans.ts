// RPTQ k-means case: 4096 channels' [max, min] features (a few outlier channels) into 32 clusters, nInit 10 (RPTQ4LLM's KMeans settings).

import type { BenchCase, BenchContext } from '../types.js';
import { minMaxFeatures, kmeans, xoshiro128ss } from '../../src/quant/rptq/index.js';

/** Per-channel calibration ranges like an OPT LayerNorm output: most channels near ±1–3, every 128th an outlier (±20–60). */
function features(n: number, seed: number): Float64Array {
  const rng = xoshiro128ss(seed);
  const min = new Float32Array(n), max = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = i % 128 === 5 ? 20 + 40 * rng.next() : 1 + 2 * rng.next();
    max[i] = s * (0.8 + 0.4 * rng.next());
    min[i] = -s * (0.8 + 0.4 * rng.next());
  }
  return minMaxFeatures(min, max);
}

export function kmeansCases(_ctx: BenchContext): BenchCase[] {
  const n = 4096, k = 32;
  const f = features(n, 1);
  return [{
    group: `rptq kmeans ${n}x2 → ${k} clusters (nInit 10)`, impl: 'js',
    fn: () => { kmeans(f, 2, k, { seed: 0 }); },
  }];
}
