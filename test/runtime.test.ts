// init(): backend selection by validating the real binaries, explicit choices, calls before init.

import { describe, expect, it } from 'vitest';
import { init, backend, matmul, Tensor, LowbitError, createBackend } from '../src/index.js';
import { wasmSupported, wasmBytes } from '../src/wasm/loader.js';
import { lowbitErrorAsync } from './helpers.js';

describe('runtime', () => {
  it('everything throws E_NOT_INIT before init()', () => {
    expect(() => backend()).toThrow(/E_NOT_INIT/);
    try {
      matmul(Tensor.from([[1]]), Tensor.from([[1]]));
      throw new Error('unreachable');
    } catch (e) {
      expect((e as LowbitError).code).toBe('E_NOT_INIT');
      expect((e as Error).message).toMatch(/init\(\)/);
    }
  });

  it('both binaries are real WASM; baseline validates on Node 20 without flags, relaxed only with the flag', () => {
    for (const f of ['simd', 'relaxed'] as const) expect(Array.from(wasmBytes(f).subarray(0, 4))).toEqual([0, 0x61, 0x73, 0x6d]);
    expect(wasmSupported('simd')).toBe(true);
    const flagged = process.execArgv.includes('--experimental-wasm-relaxed-simd');
    expect(wasmSupported('relaxed')).toBe(flagged);
  });

  it("init({backend: 'auto'}) picks the best binary that validates and says why", async () => {
    const info = await init();
    expect(info.name).toBe(wasmSupported('relaxed') ? 'relaxed' : 'simd');
    expect(info.requested).toBe('auto');
    if (!wasmSupported('relaxed')) expect(info.notes.join(' ')).toMatch(/relaxed.*does not validate/);
    expect(backend()).toEqual(info);
    expect(matmul(Tensor.from([[1, 2]]), Tensor.from([[3], [4]])).toArray()).toEqual([[11]]);
  });

  it('explicit backends: js always; relaxed without the engine flag is E_BACKEND; unknown names are E_ARG', async () => {
    expect((await init({ backend: 'js' })).name).toBe('js');
    expect(backend().name).toBe('js');
    expect((await init({ backend: 'simd' })).name).toBe('simd');
    if (!wasmSupported('relaxed')) expect((await lowbitErrorAsync(init({ backend: 'relaxed' }))).message).toMatch(/E_BACKEND.*experimental-wasm-relaxed-simd/);
    expect((await lowbitErrorAsync(init({ backend: 'gpu' as never }))).message).toMatch(/E_ARG.*gpu/);
    // a failed init leaves the previous backend in place
    expect(backend().name).toBe('simd');
  });

  it('createBackend gives independent instances with their own memory', async () => {
    const a = await createBackend('simd'), b = await createBackend('simd');
    expect(a.heap).not.toBe(b.heap);
    expect(a.heap!.memory).not.toBe(b.heap!.memory);
    expect((await createBackend('js')).heap).toBeNull();
  });
});
