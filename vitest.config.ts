import { defineConfig } from 'vitest/config';

// First invocation: every suite, on the `js` and `simd` backends (relaxed is skipped here because
// Node 20 needs a V8 flag for it; see vitest.relaxed.config.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
