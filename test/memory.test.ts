// The WASM memory ownership model: explicit alloc/free, flat memory over many cycles, typed OOM,
// views re-created after growth, resident tensors used in place.

import { describe, expect, it } from 'vitest';
import { createBackend, Tensor, LowbitError, init, matmul, currentBackend } from '../src/index.js';
import { refKernels } from '../src/ref/index.js';

describe('WASM heap', () => {
  it('alloc is 64-byte aligned, free coalesces, and the top comes back down', async () => {
    const { heap } = await createBackend('simd');
    const h = heap!;
    const top0 = h.stats().top;
    const p = [h.alloc(10), h.alloc(100), h.alloc(1000)];
    for (const x of p) expect(x % 64).toBe(0);
    expect(h.stats().blocks).toBe(3);
    h.free(p[1]!);
    const q = h.alloc(64); // reuses the freed middle block
    expect(q).toBe(p[1]);
    h.free(q);
    h.free(p[0]!);
    h.free(p[2]!);
    expect(h.stats()).toMatchObject({ inUse: 0, blocks: 0, top: top0 });
    expect(() => h.free(12345)).toThrow(/not a live allocation/);
  });

  it('10,000 alloc/compute/free cycles leave memory use flat', async () => {
    const b = await createBackend('simd');
    const h = b.heap!;
    const ref = refKernels();
    const M = 3, N = 17, K = 29;
    const a = Float32Array.from({ length: M * K }, (_, i) => (i % 13) - 6);
    const w = Float32Array.from({ length: N * K }, (_, i) => (i % 7) - 3);
    const want = new Float32Array(M * N);
    ref.sgemmNT(M, N, K, a, K, w, K, want, N, null);
    const before = h.stats();
    for (let i = 0; i < 10_000; i++) {
      // resident operands of varying size, plus a host-array output (per-call scratch)
      const pa = h.alloc(4 * M * K + (i % 5) * 64), pw = h.alloc(4 * N * K);
      h.f32(pa, M * K).set(a);
      h.f32(pw, N * K).set(w);
      const out = new Float32Array(M * N);
      b.kernels.sgemmNT(M, N, K, h.f32(pa, M * K), K, h.f32(pw, N * K), K, out, N, null);
      if (i % 1000 === 0) expect(Array.from(out)).toEqual(Array.from(want));
      h.free(pw);
      h.free(pa);
    }
    const after = h.stats();
    expect(after.inUse).toBe(before.inUse);
    expect(after.top).toBe(before.top);
    expect(after.memoryBytes).toBe(before.memoryBytes);
  });

  it('running out of memory is E_OOM naming the requested bytes; the instance keeps working', async () => {
    const b = await createBackend('simd', { initialMemoryBytes: 1 << 20, maxMemoryBytes: 8 << 20 });
    const h = b.heap!;
    let err: unknown = null;
    try {
      h.alloc(16 << 20, 'big weight');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LowbitError);
    expect((err as LowbitError).code).toBe('E_OOM');
    expect((err as Error).message).toMatch(/16777216 bytes for big weight/);
    expect((err as LowbitError).details).toEqual({ requestedBytes: 16 << 20 });
    // kernel scratch that cannot fit is also E_OOM, not a trap
    const big = new Float32Array(3 << 20);
    expect(() => b.kernels.relu(big.length, big, big)).toThrow(/E_OOM/);
    // and the instance still computes
    const out = new Float32Array(4);
    b.kernels.relu(4, new Float32Array([-1, 2, -3, 4]), out);
    expect(Array.from(out)).toEqual([0, 2, 0, 4]);
    expect(h.stats().inUse).toBe(0);
  });

  it('resident tensors survive memory growth (views are re-created); stale raw views are E_DETACHED', async () => {
    await init({ backend: 'simd', initialMemoryBytes: 1 << 20 });
    const heap = currentBackend().heap!;
    const w = Tensor.from([[1, 2], [3, 4]]).toHeap(heap);
    const stale = w.data as Float32Array;
    const grow = heap.alloc(32 << 20); // forces memory.grow, detaching old views
    expect(stale.length).toBe(0);
    expect(Array.from(w.data)).toEqual([1, 2, 3, 4]);
    const y = matmul(Tensor.from([[1, 1]]).toHeap(heap), w);
    expect(y.heap).toBe(heap);
    expect(y.toArray()).toEqual([[4, 6]]);
    const out = new Float32Array(4);
    try {
      currentBackend().kernels.relu(4, stale, out);
      throw new Error('unreachable');
    } catch (e) {
      expect((e as LowbitError).code).toBe('E_DETACHED');
    }
    heap.free(grow);
    w.dispose();
    y.dispose();
    expect(() => w.data).toThrow(/disposed/);
  });

  it('memory grown outside the heap: views of blocks past the old end work, non-shared and shared memory', async () => {
    for (const threads of [1, 2]) {
      const b = await createBackend('simd', { threads, initialMemoryBytes: 1 << 20 });
      const h = b.heap!, shared = typeof SharedArrayBuffer !== 'undefined' && h.memory.buffer instanceof SharedArrayBuffer;
      if (threads === 2) expect(shared).toBe(true); // the pool's memory: growth keeps old buffers attached at their old length
      const t = Tensor.from([1, 2, 3]).toHeap(h);
      expect(Array.from(t.data)).toEqual([1, 2, 3]);
      const before = h.memory.buffer.byteLength;
      h.memory.grow(64); // 4 MiB by someone other than the heap
      const p = h.alloc(2 << 20, 'past the old end');
      expect(p + (2 << 20)).toBeGreaterThan(before);
      h.f32(p, 1 << 19).fill(7);
      expect(h.f32(p + (2 << 20) - 4, 1)[0]).toBe(7);
      expect(Array.from(t.data)).toEqual([1, 2, 3]);
      expect(h.owns(h.f32(p, 4))).toBe(true);
      h.free(p); t.dispose();
      await b.dispose();
    }
  });
});

describe('marshalling across memory growth', () => {
  it('a resident output stays valid when the same call grows memory for a host input', async () => {
    const b = await createBackend('simd', { initialMemoryBytes: 1 << 20 });
    const h = b.heap!;
    const n = 1 << 20; // 4 MiB host input: its scratch copy forces memory.grow
    const x = Float32Array.from({ length: n }, (_, i) => (i % 5) - 2);
    const p = h.alloc(4 * n);
    b.kernels.relu(n, x, h.f32(p, n));
    const out = h.f32(p, n); // fresh view after growth
    for (let i = 0; i < 20; i++) expect(out[i]).toBe(Math.max((i % 5) - 2, 0));
    expect(h.stats().memoryBytes).toBeGreaterThan(1 << 20);
  });
});
