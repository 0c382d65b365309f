// f64 linear-algebra kernels on a WASM instance: marshal Float64Arrays, call assembly/linalg.ts
// exports. Runs on the calling thread (not split over a pool). Large matrices go through the heap
// (3072² f64 is 75 MB); a heap that cannot grow raises E_OOM before the kernel runs.

import type { LinalgKernels } from '../kernels/linalg.js';
import type { Heap } from './heap.js';
import { marshal } from './marshal.js';

/** Raw exports of assembly/linalg.ts: pointers are byte offsets into linear memory. */
export interface LinalgExports {
  cholesky_f64(n: number, a: number): number;
  trinv_lower_f64(n: number, a: number, scratch: number): void;
  upper_chol_inv_f64(n: number, h: number, u: number, scratch: number): number;
  linalg_scratch_f64s(n: number): number;
}

/** Runs fn with `bytes` of heap scratch, freed afterwards even when fn throws. */
function withScratch<T>(h: Heap, bytes: number, fn: (p: number) => T): T {
  const p = h.alloc(bytes, 'linalg scratch');
  try {
    return fn(p);
  } finally {
    h.free(p);
  }
}

/** The linalg kernels on one instance (unchecked: src/kernels/ adds the checks). */
export function wasmLinalg(ex: LinalgExports, h: Heap): LinalgKernels {
  return {
    choleskyF64(n, a) {
      let r = -1;
      marshal(h, [[a, 'inout', n * n]], (pa) => { r = ex.cholesky_f64(n, pa!); });
      return r;
    },
    trinvLowerF64(n, l) {
      marshal(h, [[l, 'inout', n * n]], (pl) => withScratch(h, ex.linalg_scratch_f64s(n) * 8, (ps) => ex.trinv_lower_f64(n, pl!, ps)));
    },
    upperCholInvF64(n, hm, u) {
      // one heap copy instead of two: u takes h's values on the host and the kernel works in place
      const nn = n * n;
      if (u !== hm) u.set(hm.subarray(0, nn));
      let r = -1;
      marshal(h, [[u, 'inout', nn]], (pu) => {
        r = withScratch(h, ex.linalg_scratch_f64s(n) * 8, (ps) => ex.upper_chol_inv_f64(n, pu!, pu!, ps));
      });
      return r;
    },
  };
}
