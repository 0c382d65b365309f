// Backend selection: `init()` picks relaxed SIMD, baseline SIMD or the js reference, by validating
// the real binaries and running a known-answer self-test; `backend()` reports what was chosen.
// `init({threads: n})` adds a worker pool on shared memory for GEMV/GEMM (src/wasm/pool.ts).

import { LowbitError } from './errors.js';
import { withChecks, type BackendName, type Kernels } from './kernels/index.js';
import { refKernels } from './ref/index.js';
import { instantiate, wasmSupported, type MemoryOptions } from './wasm/loader.js';
import { wasmKernels } from './wasm/kernels.js';
import type { Heap } from './wasm/heap.js';
import type { ThreadOptions } from './wasm/pool.js';
import { relaxedDotCheck, selfTest } from './selftest.js';
import { setRelaxedDot } from './wasm/qmatmul.js';

export interface InitOptions extends MemoryOptions, ThreadOptions {
  /** 'auto' (default): relaxed if it validates and passes its self-test, else simd, else js. */
  backend?: 'auto' | BackendName;
}

export interface BackendInfo {
  /** The backend in use. */
  name: BackendName;
  /** What the caller asked for. */
  requested: 'auto' | BackendName;
  /** Whether the engine validates each binary. */
  simdSupported: boolean;
  relaxedSupported: boolean;
  /** Threads that run GEMV/GEMM (main thread included; 1 without a pool). */
  threads: number;
  /** Why a better backend was not chosen, self-test failures, thread fallbacks, etc. */
  notes: string[];
}

/** One backend instance: its checked kernels and, for WASM, the heap of its linear memory. */
export interface Backend {
  kernels: Kernels;
  heap: Heap | null;
  info: BackendInfo;
  /** Terminates the worker threads, if any; the backend keeps working on one thread. */
  dispose(): Promise<void>;
}

/**
 * Creates an independent backend (tests use several side by side). Throws E_BACKEND if unavailable.
 * `threads > 1` starts a worker pool where memory can be shared (else one thread, with a note);
 * idle workers never keep a Node process alive, and `dispose()` terminates them.
 */
export async function createBackend(name: BackendName, opts: MemoryOptions & ThreadOptions = {}): Promise<Backend> {
  const info: BackendInfo = {
    name, requested: name, simdSupported: wasmSupported('simd'), relaxedSupported: wasmSupported('relaxed'), threads: 1, notes: [],
  };
  if (name === 'js') {
    if ((opts.threads ?? 1) > 1) info.notes.push(`threads: ${opts.threads} requested, the js backend runs 1 thread`);
    return { kernels: withChecks(refKernels()), heap: null, info, dispose: async () => {} };
  }
  const inst = await instantiate(name, opts);
  const pool = inst.pool;
  info.threads = pool?.threads ?? 1;
  info.notes.push(...inst.notes);
  const b: Backend = {
    kernels: withChecks(wasmKernels(inst)), heap: inst.heap, info,
    async dispose() {
      b.info.threads = 1;
      await pool?.dispose();
    },
  };
  if (name === 'relaxed') info.notes.push(...relaxedDotCheck(b.kernels, (on) => setRelaxedDot(inst.exports, on)));
  if (pool) {
    pool.onStop = (note) => {
      b.info.threads = 1;
      b.info.notes.push(note);
    };
  }
  return b;
}

let current: Backend | null = null;

export async function init(opts: InitOptions = {}): Promise<BackendInfo> {
  const requested = opts.backend ?? 'auto';
  if (!['auto', 'js', 'simd', 'relaxed'].includes(requested)) {
    throw new LowbitError('E_ARG', `init: unknown backend '${String(requested)}' (expected auto, simd, relaxed or js)`);
  }
  const notes: string[] = [];
  let chosen: Backend | null = null;
  if (requested !== 'auto') {
    chosen = await createBackend(requested, opts);
    if (requested === 'relaxed') {
      const failures = selfTest(chosen.kernels);
      if (failures.length) {
        void chosen.dispose();
        throw new LowbitError('E_BACKEND', `relaxed backend failed its self-test: ${failures.join('; ')}`);
      }
    }
  } else {
    for (const name of ['relaxed', 'simd'] as const) {
      if (!wasmSupported(name)) {
        notes.push(`${name}: binary does not validate on this engine` +
          (name === 'relaxed' ? ' (Node 20 needs --experimental-wasm-relaxed-simd)' : ''));
        continue;
      }
      const b = await createBackend(name, opts);
      const failures = selfTest(b.kernels);
      if (failures.length) {
        notes.push(`${name}: self-test failed (${failures.join('; ')}), falling back`);
        void b.dispose();
        continue;
      }
      chosen = b;
      break;
    }
    chosen ??= await createBackend('js', opts);
  }
  chosen.info = { ...chosen.info, requested, notes: [...notes, ...chosen.info.notes] };
  if (current && current !== chosen) void current.dispose();
  current = chosen;
  return chosen.info;
}

/**
 * Terminates the current backend's worker threads (a no-op without them). The backend stays in use
 * on one thread; call `init()` again for a new pool.
 */
export async function dispose(): Promise<void> {
  await current?.dispose();
}

function need(): Backend {
  if (!current) throw new LowbitError('E_NOT_INIT', 'call `await lowbit.init()` before using kernels or tensor ops');
  return current;
}

/** The backend `init()` chose, with notes on why. */
export function backend(): BackendInfo {
  return need().info;
}

/** The current backend's kernels. */
export function kernels(): Kernels {
  return need().kernels;
}

/** The current backend (kernels + heap). */
export function currentBackend(): Backend {
  return need();
}
