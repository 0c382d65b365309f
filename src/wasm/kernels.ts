// Kernels on one WASM instance: composes each family's wrappers (src/wasm/f32.ts, ...).

import type { Kernels } from '../kernels/index.js';
import type { WasmInstance } from './loader.js';
import { wasmF32 } from './f32.js';
import { wasmQuant } from './quant.js';
import { wasmQMatmul } from './qmatmul.js';
import { wasmLinalg } from './linalg.js';

/** Kernels on one instance (unchecked: wrap with `withChecks`). */
export function wasmKernels(inst: WasmInstance): Kernels {
  return { name: inst.flavor, ...wasmF32(inst.exports, inst.heap, inst.pool), ...wasmQuant(inst.exports, inst.heap), ...wasmQMatmul(inst.exports, inst.heap, inst.pool),
    ...wasmLinalg(inst.exports, inst.heap) };
}
