// Worker pool behaviour: thread planning (fallback and clamping notes), init()/backend()/dispose(),
// failures in workers as LowbitErrors without hangs, the generic range helper, and process exit.
// Bit-identity of 1 vs n threads is in threads.conformance.test.ts (run on simd and relaxed).

import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { backend, createBackend, init, kernels, LowbitError } from '../src/index.js';
import { dispose } from '../src/runtime.js';
import { instantiate, wasmBytes, wasmSupported, type WasmInstance } from '../src/wasm/loader.js';
import { wasmKernels } from '../src/wasm/kernels.js';
import { withChecks } from '../src/kernels/index.js';
import { planThreads, type ThreadPool } from '../src/wasm/pool.js';
import { floats } from './conformance/gen.js';

const HW = availableParallelism();

function expectCode(f: () => unknown, code: string, msg?: RegExp): void {
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(LowbitError);
  expect((err as LowbitError).code).toBe(code);
  if (msg) expect((err as Error).message).toMatch(msg);
}

/** A GEMM big enough that a spinning worker claims chunks of it. */
function gemmCase(M = 32, N = 512, K = 256) {
  const a = floats(M * K, 'random', 1), b = floats(N * K, 'random', 2);
  return { M, N, K, a, b, run: (k: ReturnType<typeof wasmKernels>, c: Float32Array) => k.sgemmNT(M, N, K, a, K, b, K, c, N, null) };
}

async function twoThreads(opts = {}): Promise<{ inst: WasmInstance; pool: ThreadPool; k: ReturnType<typeof wasmKernels> }> {
  const inst = await instantiate('simd', { threads: 2, ...opts });
  expect(inst.pool).not.toBeNull();
  return { inst, pool: inst.pool!, k: withChecks(wasmKernels(inst)) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('thread planning', () => {
  it('threads must be a positive integer', async () => {
    for (const t of [0, -1, 1.5, NaN]) {
      await expect(createBackend('simd', { threads: t })).rejects.toThrow(/E_ARG: threads must be a positive integer/);
    }
  });

  it('1 thread needs no pool and leaves no note', async () => {
    const b = await createBackend('simd', { threads: 1 });
    expect(b.info.threads).toBe(1);
    expect(b.info.notes).toEqual([]);
  });

  it('more threads than the hardware has are clamped, with a note', async () => {
    const b = await createBackend('simd', { threads: HW + 3 });
    try {
      expect(b.info.threads).toBe(Math.min(HW, 64));
      expect(b.info.notes.join(' ')).toMatch(new RegExp(`threads: ${HW + 3} requested, clamped to ${HW} \\(hardware concurrency\\)`));
    } finally {
      await b.dispose();
    }
  });

  it('falls back to 1 thread with a note where memory cannot be shared (page not cross-origin isolated)', async () => {
    vi.stubGlobal('crossOriginIsolated', false);
    const b = await createBackend('simd', { threads: 2 });
    expect(b.info.threads).toBe(1);
    expect(b.info.notes.join(' ')).toMatch(/threads: 2 requested, running 1 thread: .*cross-origin isolated/);
    const { M, N, K, a, b: w } = gemmCase(4, 64, 32);
    const c = new Float32Array(M * N);
    b.kernels.sgemmNT(M, N, K, a, K, w, K, c, N, null);
    expect(c.every(Number.isFinite)).toBe(true);
  });

  it('falls back without SharedArrayBuffer, and with sharedMemory: false', async () => {
    vi.stubGlobal('SharedArrayBuffer', undefined);
    expect((await planThreads({ threads: 2 })).notes.join(' ')).toMatch(/running 1 thread: SharedArrayBuffer is not available/);
    vi.unstubAllGlobals();
    const b = await createBackend('simd', { threads: 2, sharedMemory: false });
    expect(b.info.threads).toBe(1);
    expect(b.info.notes.join(' ')).toMatch(/running 1 thread: shared memory disabled/);
  });

  it('the js backend notes that it runs 1 thread', async () => {
    const b = await createBackend('js', { threads: 2 });
    expect(b.info.threads).toBe(1);
    expect(b.info.notes.join(' ')).toMatch(/js backend runs 1 thread/);
  });
});

describe('init({threads})', () => {
  it('backend() reports the thread count; dispose() terminates the workers and keeps the backend working', async () => {
    await init({ backend: 'simd', threads: 2 });
    expect(backend().threads).toBe(Math.min(2, HW));
    const { M, N, K, a, b } = gemmCase();
    const c2 = new Float32Array(M * N), c1 = new Float32Array(M * N);
    kernels().sgemmNT(M, N, K, a, K, b, K, c2, N, null);
    await dispose();
    expect(backend().threads).toBe(1);
    kernels().sgemmNT(M, N, K, a, K, b, K, c1, N, null);
    expect(c1).toEqual(c2);
  });

  it('a new init() disposes the previous pool', async () => {
    await init({ backend: 'simd', threads: 2 });
    const first = backend();
    await init({ backend: 'simd', threads: 2 });
    await sleep(10);
    expect(first.threads).toBe(1);
    expect(backend().threads).toBe(Math.min(2, HW));
    await dispose();
  });
});

describe.skipIf(HW < 2)('worker failures', () => {
  it('a chunk that throws in a worker is a LowbitError naming the worker; the pool stays usable', async () => {
    const { pool, k } = await twoThreads();
    const g = gemmCase();
    const want = new Float32Array(g.M * g.N), c = new Float32Array(g.M * g.N);
    g.run(k, want);
    let err: unknown = null;
    for (let i = 0; i < 200 && !err; i++) {
      pool.injectFault(1, 'throw');
      try {
        g.run(k, c);
      } catch (e) {
        err = e;
      }
    }
    expect(err).toBeInstanceOf(LowbitError);
    expect((err as LowbitError).code).toBe('E_BACKEND');
    expect((err as Error).message).toMatch(/worker 1 failed in sgemm_nt: Error: injected fault/);
    pool.injectFault(0);
    expect(pool.threads).toBe(2);
    c.fill(0);
    g.run(k, c);
    expect(c).toEqual(want);
    await pool.dispose();
  });

  it('a worker that exits raises one LowbitError; later calls run on 1 thread with correct results', async () => {
    const { inst, pool, k } = await twoThreads();
    const notes: string[] = [];
    pool.onStop = (n) => notes.push(n);
    const g = gemmCase();
    const want = new Float32Array(g.M * g.N), c = new Float32Array(g.M * g.N);
    g.run(k, want);
    await pool.workerHandles()[0]!.terminate();
    for (let i = 0; i < 100 && pool.threads > 1; i++) await sleep(10);
    expect(pool.threads).toBe(1);
    expect(notes.join(' ')).toMatch(/thread pool stopped, running 1 thread: worker 1 exited/);
    expectCode(() => g.run(k, c), 'E_BACKEND', /worker 1 exited.*later calls run on 1 thread/);
    g.run(k, c);
    expect(c).toEqual(want);
    expect(inst.heap.stats().blocks).toBe(0);
  });

  it('a worker that dies holding a chunk cannot hang the main thread: stall timeout → LowbitError', async () => {
    const { pool, k } = await twoThreads({ stallTimeoutMs: 300 });
    const g = gemmCase();
    const want = new Float32Array(g.M * g.N), c = new Float32Array(g.M * g.N);
    g.run(k, want);
    let err: unknown = null;
    const t0 = performance.now();
    for (let i = 0; i < 200 && !err; i++) {
      pool.injectFault(1, 'hang');
      try {
        g.run(k, c);
      } catch (e) {
        err = e;
      }
    }
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(err).toBeInstanceOf(LowbitError);
    expect((err as Error).message).toMatch(/E_BACKEND: thread pool: stalled: 1 claimed chunk\(s\) unfinished/);
    expect(pool.threads).toBe(1);
    g.run(k, c);
    expect(c).toEqual(want);
  });
});

describe.skipIf(HW < 2)('the range helper and hand-off', () => {
  it('a kernel that traps (out of bounds) fails the call once; claimed chunks finish first; the pool stays usable', async () => {
    const { inst, pool } = await twoThreads({ minParallelFlops: 0 });
    const h = inst.heap;
    const end = h.memory.buffer.byteLength;
    // every chunk of this add reads and writes past the end of memory
    expect(() => pool.run([{ fn: 'add_f32', args: [4096, end - 16, end - 16, end - 16], count: 0, align: 4, advance: [[1, 4], [2, 4], [3, 4]] }]))
      .toThrow(/out of bounds|E_BACKEND/);
    const n = 999, px = h.alloc(n * 4), pz = h.alloc(n * 4);
    const x = floats(n, 'random', 5);
    h.f32(px, n).set(x);
    pool.run([{ fn: 'add_f32', args: [n, px, px, pz], count: 0, align: 4, advance: [[1, 4], [2, 4], [3, 4]] }]);
    expect(Array.from(h.f32(pz, n))).toEqual(Array.from(x, (v) => Math.fround(2 * v)));
    expect(pool.threads).toBe(2);
    await pool.dispose();
  });

  it('runs any export over ranges: several independent ops in one hand-off, null pointers stay null', async () => {
    const { inst, pool } = await twoThreads({ minParallelFlops: 0 });
    const h = inst.heap;
    const n = 1003;
    const px = h.alloc(n * 4), py = h.alloc(n * 4), pz = h.alloc(n * 4), pr = h.alloc(n * 4);
    const x = floats(n, 'random', 3), y = floats(n, 'random', 4);
    h.f32(px, n).set(x);
    h.f32(py, n).set(y);
    pool.run([
      { fn: 'add_f32', args: [n, px, py, pz], count: 0, align: 4, advance: [[1, 4], [2, 4], [3, 4]] },
      { fn: 'relu_f32', args: [n, px, pr], count: 0, align: 1, advance: [[1, 4], [2, 4]] },
    ]);
    const z = h.f32(pz, n), r = h.f32(pr, n);
    for (let i = 0; i < n; i++) {
      expect(z[i]).toBe(Math.fround(x[i]! + y[i]!));
      expect(r[i]).toBe(Math.max(x[i]!, 0));
    }
    expectCode(() => pool.run([{ fn: 'no_such_kernel', args: [1], count: 0, align: 1, advance: [] }]), 'E_ARG', /no export named/);
    await pool.dispose();
  });

  it('measures hand-off latency with spinning and with sleeping workers', async () => {
    const { pool } = await twoThreads();
    const spin = pool.pingMicros(50);
    pool.setSpinMicros(0);
    const sleepy: number[] = [];
    for (let i = 0; i < 20; i++) sleepy.push(...pool.pingMicros(1, true));
    expect(spin).toHaveLength(50);
    expect(sleepy).toHaveLength(20);
    for (const us of [...spin, ...sleepy]) expect(us).toBeGreaterThan(0);
    await pool.dispose();
  });
});

/** Reads a LEB128 at `p`; returns [value, next offset]. */
function leb(b: Uint8Array, p: number): [number, number] {
  let v = 0, shift = 0, byte: number;
  do {
    byte = b[p++]!;
    v += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [v, p];
}

/** Skips a constant expression (i32/i64/f32/f64/v128.const, global.get) up to its `end`. */
function skipConstExpr(b: Uint8Array, p: number): [number, number] {
  const op = b[p++]!;
  let value = 0;
  if (op === 0x41 || op === 0x42 || op === 0x23) [value, p] = leb(b, p);
  else if (op === 0x43) p += 4;
  else if (op === 0x44) p += 8;
  else if (op === 0xfd) p = leb(b, p)[1] + 16;
  else throw new Error(`unexpected const opcode 0x${op.toString(16)}`);
  expect(b[p]).toBe(0x0b);
  return [value, p + 1];
}

describe('the shared-memory binaries', () => {
  it('have no mutable globals, and their data segments (re-applied by every worker) lie below heap_base', async () => {
    for (const flavor of ['simd', 'relaxed'] as const) {
      const bytes = wasmBytes(flavor, true);
      let p = 8, mutableGlobals = 0, dataEnd = 0;
      while (p < bytes.length) {
        const id = bytes[p++]!;
        let size: number;
        [size, p] = leb(bytes, p);
        const end = p + size;
        if (id === 6) {
          let [n, q] = leb(bytes, p);
          for (; n > 0; n--) {
            if (bytes[q + 1] === 1) mutableGlobals++;
            q = skipConstExpr(bytes, q + 2)[1];
          }
        } else if (id === 11) {
          let [n, q] = leb(bytes, p);
          for (; n > 0; n--) {
            let flags: number, offset = -1, len: number;
            [flags, q] = leb(bytes, q);
            if (flags === 2) q = leb(bytes, q)[1];
            if (flags !== 1) [offset, q] = skipConstExpr(bytes, q);
            [len, q] = leb(bytes, q);
            q += len;
            if (offset >= 0) dataEnd = Math.max(dataEnd, offset + len);
          }
        }
        p = end;
      }
      expect(mutableGlobals, flavor).toBe(0);
      expect(dataEnd, `${flavor}: static data found`).toBeGreaterThan(1024);
      if (!wasmSupported(flavor, true)) continue; // relaxed without the V8 flag
      expect(WebAssembly.Module.imports(new WebAssembly.Module(bytes))).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
      const inst = await instantiate(flavor, { threads: 2 });
      expect(dataEnd).toBeLessThanOrEqual(inst.exports.heap_base());
      await inst.pool?.dispose();
    }
  });
});

/** Transpiles src/ to plain JS (no type check) so a child Node process can import it. */
function transpileSrc(out: string): void {
  const root = fileURLToPath(new URL('../src', import.meta.url));
  const walk = (dir: string): string[] => readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
  for (const file of walk(root)) {
    const js = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const dest = join(out, 'src', relative(root, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, js);
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
}

describe('process exit', () => {
  it('a script that starts a pool, computes and never disposes it still exits', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lowbit-threads-'));
    try {
      transpileSrc(dir);
      writeFileSync(join(dir, 'main.js'), `
        import { init, backend, kernels } from './src/runtime.js';
        await init({ backend: 'simd', threads: 2 });
        const M = 8, N = 512, K = 256;
        const c = new Float32Array(M * N);
        kernels().sgemmNT(M, N, K, new Float32Array(M * K).fill(1), K, new Float32Array(N * K).fill(2), K, c, N, null);
        console.log(JSON.stringify({ threads: backend().threads, c0: c[0] }));
      `);
      const t0 = Date.now();
      const r = spawnSync(process.execPath, [join(dir, 'main.js')], { encoding: 'utf8', timeout: 30_000 });
      expect(r.error, String(r.error)).toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ threads: Math.min(2, HW), c0: 512 });
      expect(Date.now() - t0).toBeLessThan(30_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
