// Runs the kernel conformance suite on every backend. LOWBIT_BACKENDS (comma-separated) picks
// them; the default is js and simd. The second vitest invocation (vitest.relaxed.config.ts) sets
// LOWBIT_BACKENDS=relaxed and the V8 flag, and there a relaxed binary that cannot load is a failure.

import { beforeAll, describe, it, expect } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { wasmSupported } from '../src/wasm/loader.js';
import { selfTest } from '../src/selftest.js';
import type { BackendName } from '../src/kernels/index.js';
import { describeKernels } from './conformance/describeKernels.js';

const names = (process.env.LOWBIT_BACKENDS ?? 'js,simd').split(',').map((s) => s.trim()) as BackendName[];

for (const name of names) {
  describe(`backend ${name}`, () => {
    let b: Backend;
    beforeAll(async () => {
      b = await createBackend(name);
    });
    it('loads and passes the init() self-test', () => {
      if (name === 'relaxed') expect(wasmSupported('relaxed')).toBe(true);
      expect(b.info.name).toBe(name);
      expect(selfTest(b.kernels)).toEqual([]);
    });
    describeKernels(name, () => b);
  });
}
