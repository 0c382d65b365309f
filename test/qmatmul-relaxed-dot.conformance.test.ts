// The relaxed binary's i8×i7 dot (u4 weight-only GEMV) is checked when a relaxed backend is created
// (src/selftest.ts relaxedDotCheck). Forcing that check to fail must switch the dot off for the
// instance, say so in backend notes, and leave results bit-identical to the reference (i16 path).

import { afterEach, describe, expect, it } from 'vitest';
import { createBackend } from '../src/runtime.js';
import { wasmSupported } from '../src/wasm/loader.js';
import { qmmKnownAnswer, selfTestHooks } from '../src/selftest.js';
import { refKernels } from '../src/ref/index.js';

// Runs under vitest.relaxed.config.ts (the V8 flag); skipped where relaxed SIMD does not validate,
// except when LOWBIT_BACKENDS asks for relaxed (then it must load).
const relaxed = wasmSupported('relaxed') || (process.env.LOWBIT_BACKENDS ?? '').includes('relaxed');

describe.skipIf(!relaxed)('relaxed i8×i7 dot self-test', () => {
  afterEach(() => { selfTestHooks.failRelaxedDot = false; });

  it('passes on this engine: no fallback note, known answers bit-exact', async () => {
    const b = await createBackend('relaxed');
    expect(b.info.notes.filter((n) => n.includes('i8×i7'))).toEqual([]);
    expect(qmmKnownAnswer(b.kernels)).toEqual([]);
  });

  it('a forced failure switches the dot off, notes it, and keeps results bit-exact', async () => {
    selfTestHooks.failRelaxedDot = true;
    const b = await createBackend('relaxed');
    const note = b.info.notes.find((n) => n.includes('i8×i7'));
    expect(note).toMatch(/failed its known-answer self-test .*forced.*i16 path/);
    expect(note).not.toMatch(/also fails/);
    expect(qmmKnownAnswer(b.kernels)).toEqual([]);
    expect(qmmKnownAnswer(refKernels())).toEqual([]);
  });
});
