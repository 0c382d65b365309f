// The Kernels interface: the contract every backend (js reference, WASM simd, WASM relaxed) meets.
// Arguments are typed arrays and integers only; shapes and strides are worked out by the caller
// (src/ops.ts, src/quant/, src/models/), as tfjs-backend-wasm does. Each kernel family lives in its
// own file (f32.ts, ...) with its signatures and argument checks; this file composes them.

import { checkedF32, type F32Kernels } from './f32.js';
import { checkedQuant, type QuantKernels } from './quant.js';
import { checkedQMatmul, type QMatmulKernels } from './qmatmul.js';
import { checkedLinalg, type LinalgKernels } from './linalg.js';

export type BackendName = 'js' | 'simd' | 'relaxed';

export interface Kernels extends F32Kernels, QuantKernels, QMatmulKernels, LinalgKernels {
  readonly name: BackendName;
}

/** Wraps a backend's raw kernels with the argument checks every backend shares. */
export function withChecks(k: Kernels): Kernels {
  return { name: k.name, ...checkedF32(k), ...checkedQuant(k), ...checkedQMatmul(k), ...checkedLinalg(k) };
}

export { checkDims, checkLen, span } from './check.js';
export type { F32Kernels } from './f32.js';
export type { QuantKernels } from './quant.js';
export type { QMatmulKernels } from './qmatmul.js';
export type { LinalgKernels } from './linalg.js';
