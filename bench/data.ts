// Locates ../shared/data beside the repo, whether a bench runs from source or from dist/.

import { existsSync } from 'node:fs';

export function sharedDataDir(): URL {
  for (const rel of ['../../shared/data/', '../../../shared/data/', '../../../../shared/data/']) {
    const u = new URL(rel, import.meta.url);
    if (existsSync(new URL('MANIFEST.md', u))) return u;
  }
  throw new Error('shared/data not found beside the repo');
}

/** n uniform floats in [-0.5, 0.5) from a seeded LCG (deterministic bench operands). */
export function seededFloats(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}
