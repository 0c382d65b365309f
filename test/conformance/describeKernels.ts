// The kernel conformance suite: one describe block per backend, every kernel family checked
// against its plain-TS twin (src/ref/) with fast-check. Integer kernels must match bit for bit;
// float kernels within the tolerance each family states.

import { describe } from 'vitest';
import type { Backend } from '../../src/runtime.js';
import type { Kernels } from '../../src/kernels/index.js';
import { refKernels } from '../../src/ref/index.js';
import { f32Suite } from './f32.js';
import { quantSuite } from './quant.js';
import { qmatmulSuite } from './qmatmul.js';
import { linalgSuite } from './linalg.js';

export interface SuiteContext {
  /** The backend under test (its kernels are checked). */
  backend: () => Backend;
  /** The reference twin (plain TS). */
  ref: Kernels;
}

export function describeKernels(name: string, get: () => Backend): void {
  describe(`kernels conformance: ${name}`, () => {
    const ctx: SuiteContext = { backend: get, ref: refKernels() };
    f32Suite(ctx);
    quantSuite(ctx);
    qmatmulSuite(ctx);
    linalgSuite(ctx);
  });
}
