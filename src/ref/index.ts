// The `js` backend: plain TypeScript reference kernels, always available, the oracle for WASM.

import type { Kernels } from '../kernels/index.js';
import { refF32 } from './f32.js';
import { refQuant } from './quant.js';
import { refQMatmul } from './qmatmul.js';
import { refLinalg } from './linalg.js';

export function refKernels(): Kernels {
  return { name: 'js', ...refF32, ...refQuant, ...refQMatmul, ...refLinalg };
}
