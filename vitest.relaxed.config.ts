import { defineConfig } from 'vitest/config';

// Second invocation: the kernel conformance suites, and the OPT decoder against the PyTorch
// fixture, on the relaxed-SIMD binary. Node 20 runs relaxed
// SIMD only behind --experimental-wasm-relaxed-simd, so the forked workers get the flag, and
// LOWBIT_BACKENDS=relaxed makes the suites fail (not skip) if the relaxed binary cannot load.
export default defineConfig({
  test: {
    include: ['test/**/*.conformance.test.ts', 'test/opt.test.ts'],
    pool: 'forks',
    execArgv: ['--experimental-wasm-relaxed-simd'],
    env: { LOWBIT_BACKENDS: 'relaxed' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
