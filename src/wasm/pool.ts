// Worker-thread pool over one shared WebAssembly.Memory: splits a kernel call over ranges of its
// output (GEMV/GEMM output rows of the weight), with spin-then-wait hand-off. Node worker_threads, or
// Web Workers where `crossOriginIsolated` holds. Protocol and worker loop: src/wasm/worker-source.ts.
//
// Determinism: an op is cut at multiples of `align` (sgemm_nt: the 4-column micro-kernel group),
// so every output element is computed by the same instruction sequence as in the one-call,
// one-thread run, whichever thread computes it: results are bit-identical for 1 and n threads.
//
// Hand-off: the main thread writes the op table, bumps the generation in NEXT, notifies only if a
// worker sleeps, then claims chunks itself like any worker (dynamic, via compareExchange). An idle
// worker spins on NEXT for `spinMicros` before it sleeps in Atomics.wait, so back-to-back kernels
// (a decoder step) hand off in microseconds, not a ~50 µs futex wake-up. The main thread waits
// only for chunks a worker has already claimed, so a slow, sleeping or dead worker never holds up
// work it has not started.
//
// Failures: a chunk that throws in a worker is reported through the control block and raised on
// the main thread as LowbitError E_BACKEND after every claimed chunk has finished (the pool stays
// usable). A worker that exits, or a claimed chunk that does not finish within the stall timeout,
// raises E_BACKEND once and disposes the pool; the backend then runs single-threaded and says so
// in `backend().notes`.

import { LowbitError } from '../errors.js';
import {
  ARGS_F64, CHUNK_BITS, CONTROL_BYTES, ERR_U16, GEN_MASK, MAX_ADVANCE, MAX_ARGS, MAX_CHUNKS, MAX_OPS,
  OPS_WORD, OP_INTS, W_DONE, W_ERR, W_ERRLEN, W_FAULT, W_NEXT, W_NOPS, W_SLEEPERS, W_SPIN_US, W_STOP,
  W_TOTAL, WORKER_SOURCE,
} from './worker-source.js';

export interface ThreadOptions {
  /** Threads for the kernels the pool splits (GEMV/GEMM), main thread included. Default 1. */
  threads?: number;
  /** How long an idle worker spins before sleeping, in microseconds (default 200). */
  spinMicros?: number;
  /** Kernel calls with less work than this (flops) run on the main thread alone (default 1.5e5). */
  minParallelFlops?: number;
  /** Floor of the time a claimed chunk may take before the pool is declared stalled (default 30 s). */
  stallTimeoutMs?: number;
  /** false: act as if shared memory were unavailable (the single-thread fallback). */
  sharedMemory?: boolean;
}

/**
 * One kernel call to split over a range. `args` are the whole call's arguments; `args[count]` is the
 * range length and is replaced by each chunk's length; each `advance` pointer argument moves by
 * start × bytes (a null pointer, 0, stays 0). Chunk starts are multiples of `align`; chunks are
 * equal (about CHUNKS_PER_THREAD per thread, claimed dynamically), the last one takes the rest.
 * `perThread` gives each thread its own scratch: arg += threadIndex × bytes (main thread = 0).
 */
export interface RangeOp {
  fn: string;
  args: number[];
  count: number;
  align: number;
  advance: Array<[arg: number, bytesPerUnit: number]>;
  perThread?: [arg: number, bytes: number];
}

/** What `planThreads` settled on: the thread count to start, and why it differs from the request. */
export interface ThreadPlan {
  threads: number;
  notes: string[];
}

const DEFAULT_SPIN_US = 200;
const DEFAULT_MIN_FLOPS = 1.5e5;
const DEFAULT_STALL_MS = 30_000;
const CHUNKS_PER_THREAD = 4;
const MAX_THREADS = 64;
const STARTUP_TIMEOUT_MS = 20_000;

type Fn = (...args: number[]) => unknown;

// ---------------------------------------------------------------------------------------------
// Environment: shared memory, workers, hardware concurrency
// ---------------------------------------------------------------------------------------------

interface NodeWorker {
  postMessage(msg: unknown): void;
  on(ev: string, f: (x: unknown) => void): void;
  unref(): void;
  terminate(): Promise<number>;
}

const isNode = typeof process === 'object' && !!process.versions?.node;

/** Indirect so bundlers leave Node built-ins alone. */
async function nodeImport<T>(spec: string): Promise<T> {
  return await import(/* @vite-ignore */ /* webpackIgnore: true */ spec) as T;
}

/** Why this runtime cannot share WASM memory between threads, or null when it can. */
export function sharedMemoryUnavailable(): string | null {
  // Checked first: browsers hide SharedArrayBuffer on pages that are not isolated, and this says why.
  if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    return 'the page is not cross-origin isolated (serve it with COOP: same-origin and COEP: require-corp)';
  }
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return 'SharedArrayBuffer is not available';
  if (!isNode && typeof (globalThis as { Worker?: unknown }).Worker !== 'function') return 'no Worker API';
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch (e) {
    return `shared WebAssembly.Memory refused (${(e as Error).message})`;
  }
  return null;
}

/** Logical CPUs available to this process (os.availableParallelism, navigator.hardwareConcurrency). */
export async function hardwareConcurrency(): Promise<number> {
  if (isNode) {
    const os = await nodeImport<{ availableParallelism?: () => number; cpus(): unknown[] }>('node:os');
    return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  }
  return Math.max(1, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1);
}

/** Validates `threads`, clamps it to the hardware, and falls back to 1 where memory cannot be shared. */
export async function planThreads(opts: ThreadOptions): Promise<ThreadPlan> {
  const want = opts.threads ?? 1;
  if (!Number.isSafeInteger(want) || want < 1) {
    throw new LowbitError('E_ARG', `threads must be a positive integer, got ${String(want)}`);
  }
  if (want === 1) return { threads: 1, notes: [] };
  const notes: string[] = [];
  const why = opts.sharedMemory === false ? 'shared memory disabled by the sharedMemory: false option' : sharedMemoryUnavailable();
  if (why) return { threads: 1, notes: [`threads: ${want} requested, running 1 thread: ${why}`] };
  const hw = Math.min(await hardwareConcurrency(), MAX_THREADS);
  let threads = want;
  if (threads > hw) {
    notes.push(`threads: ${want} requested, clamped to ${hw} (hardware concurrency)`);
    threads = hw;
  }
  return { threads, notes };
}

// ---------------------------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------------------------

/** True when this thread may block in Atomics.wait (Node's main thread yes, a browser window no). */
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

interface Planned {
  op: RangeOp;
  fn: Fn;
  chunk: number;
  first: number;
  nChunks: number;
}

export class ThreadPool {
  private readonly ctl: Int32Array;
  private readonly f64: Float64Array;
  private readonly u16: Uint16Array;
  private readonly fnIndex = new Map<string, number>();
  private readonly fns: Fn[] = [];
  private readonly canWait = canBlock();
  private gen = 0;
  private running = false;
  private broken: string | null = null;
  private reported = false;
  private disposed = false;
  private readonly minFlops: number;
  private readonly stallMs: number;
  /** Called once when the pool stops for good (worker exit, stall): the backend records the note. */
  onStop: ((note: string) => void) | null = null;

  private constructor(
    private readonly size: number,
    private readonly workers: Array<{ terminate(): unknown }>,
    exports: Record<string, unknown>,
    control: SharedArrayBuffer,
    opts: ThreadOptions,
  ) {
    this.ctl = new Int32Array(control);
    this.f64 = new Float64Array(control);
    this.u16 = new Uint16Array(control);
    for (const name of Object.keys(exports)) {
      if (typeof exports[name] === 'function') {
        this.fnIndex.set(name, this.fns.length);
        this.fns.push(exports[name] as Fn);
      }
    }
    this.minFlops = opts.minParallelFlops ?? DEFAULT_MIN_FLOPS;
    this.stallMs = opts.stallTimeoutMs ?? DEFAULT_STALL_MS;
    Atomics.store(this.ctl, W_SPIN_US, Math.max(0, Math.round(opts.spinMicros ?? DEFAULT_SPIN_US)));
  }

  /**
   * Starts `threads - 1` workers that instantiate `module` on `memory` (shared). Resolves when every
   * worker is ready, so no kernel runs while a worker re-applies the module's data segments.
   */
  static async start(
    module: WebAssembly.Module, memory: WebAssembly.Memory, exports: Record<string, unknown>, threads: number,
    opts: ThreadOptions = {},
  ): Promise<ThreadPool> {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const names = Object.keys(exports).filter((n) => typeof exports[n] === 'function');
    const handles: Array<{ terminate(): unknown }> = [];
    const ready: Array<Promise<void>> = [];
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    let pool: ThreadPool | null = null;
    const lost = (tid: number, what: string) => {
      if (pool) pool.stop(`worker ${tid} ${what}`);
    };
    const { Worker: NodeWorkerCtor } = isNode
      ? await nodeImport<{ Worker: new (src: string, o: { eval: boolean }) => NodeWorker }>('node:worker_threads')
      : { Worker: null };
    const blobUrl = isNode ? '' : URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
    try {
      for (let tid = 1; tid < threads; tid++) {
        ready.push(new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`worker ${tid} did not start within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
          timers.push(timer);
          const onMessage = (m: unknown) => {
            const msg = m as { type: string; message?: string };
            clearTimeout(timer);
            if (msg.type === 'ready') resolve();
            else reject(new Error(`worker ${tid} could not instantiate the module: ${msg.message}`));
          };
          const onError = (e: unknown) => {
            clearTimeout(timer);
            reject(e instanceof Error ? e : new Error(String(e)));
            lost(tid, `failed: ${String((e as Error)?.message ?? e)}`);
          };
          const msg = { module, memory, control, names, tid };
          if (NodeWorkerCtor) {
            const w = new NodeWorkerCtor(WORKER_SOURCE, { eval: true });
            w.on('message', onMessage);
            w.on('error', onError);
            w.on('exit', (code) => {
              clearTimeout(timer);
              reject(new Error(`worker ${tid} exited with code ${String(code)} while starting`));
              lost(tid, `exited (code ${String(code)})`);
            });
            w.unref();
            handles.push(w);
            w.postMessage(msg);
          } else {
            const w = new Worker(blobUrl);
            w.onmessage = (e) => onMessage(e.data);
            w.onerror = (e) => onError(new Error(e.message));
            handles.push(w);
            w.postMessage(msg);
          }
        }));
      }
      await Promise.all(ready);
    } catch (e) {
      for (const h of handles) void h.terminate();
      throw new LowbitError('E_BACKEND', `thread pool: ${(e as Error).message}`);
    } finally {
      for (const t of timers) clearTimeout(t);
      if (blobUrl) URL.revokeObjectURL(blobUrl);
    }
    pool = new ThreadPool(threads, handles, exports, control, opts);
    return pool;
  }

  /** Threads in use (main thread included): 1 once the pool is disposed or stopped. */
  get threads(): number {
    return this.disposed || this.broken ? 1 : this.size;
  }

  /**
   * Whether a kernel call of `flops` work is split (enough threads and enough work). Throws, once,
   * the LowbitError of a pool that stopped since the last call (a worker exited).
   */
  shouldSplit(flops: number): boolean {
    if (this.broken && !this.reported) this.raiseStop();
    return this.threads > 1 && flops >= this.minFlops && !this.running;
  }

  /**
   * Runs independent `ops` (none reads another's output), each split into chunks over its range, on
   * every thread. Returns when all chunks are done; throws what the main thread's chunk threw, or
   * LowbitError E_BACKEND for a worker's. Runs the ops whole on the main thread when the pool is
   * stopped or re-entered.
   */
  run(ops: RangeOp[]): void {
    if (this.broken && !this.reported) this.raiseStop();
    if (this.threads === 1 || this.running) {
      for (const op of ops) this.fn(op.fn)(...op.args);
      return;
    }
    this.running = true;
    try {
      this.dispatch(this.plan(ops));
    } finally {
      this.running = false;
    }
  }

  /**
   * Times empty hand-off round trips (post, a worker claims and finishes the one chunk, the main
   * thread sees it done), in µs. `asleep`: each round first waits (untimed, up to 50 ms) until every
   * worker sleeps in Atomics.wait, to time the wake-up path (use with setSpinMicros(0)).
   */
  pingMicros(rounds: number, asleep = false): number[] {
    const out: number[] = [];
    const heapBase = this.fnIndex.has('heap_base') ? 'heap_base' : null;
    if (!heapBase || this.threads === 1) return out;
    for (let r = 0; r < rounds; r++) {
      if (asleep) {
        const until = performance.now() + 50;
        while (Atomics.load(this.ctl, W_SLEEPERS) < this.size - 1 && performance.now() < until);
      }
      const t0 = performance.now();
      this.dispatch([{ op: { fn: heapBase, args: [0], count: 0, align: 1, advance: [] }, fn: this.fn(heapBase), chunk: 1, first: 0, nChunks: 1 }], true);
      out.push((performance.now() - t0) * 1000);
    }
    return out;
  }

  /** Sets how long idle workers spin before sleeping (µs); 0 = sleep at once. */
  setSpinMicros(us: number): void {
    Atomics.store(this.ctl, W_SPIN_US, Math.max(0, Math.round(us)));
  }

  /**
   * Test hook: worker `tid` (1..threads-1) throws in its next chunk ('throw'), or claims its next
   * chunk and never finishes it, as a worker dying mid-kernel would ('hang').
   */
  injectFault(tid: number, kind: 'throw' | 'hang' = 'throw'): void {
    Atomics.store(this.ctl, W_FAULT, kind === 'throw' ? tid : -tid);
  }

  /** Test hook: the worker handles (to kill one). */
  workerHandles(): ReadonlyArray<{ terminate(): unknown }> {
    return this.workers;
  }

  /** Stops and terminates the workers; later calls run single-threaded. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (!this.broken) await this.shutdown();
  }

  // -------------------------------------------------------------------------------------------

  private fn(name: string): Fn {
    const i = this.fnIndex.get(name);
    if (i === undefined) throw new LowbitError('E_ARG', `thread pool: no export named '${name}'`);
    return this.fns[i]!;
  }

  private nextGen(): number {
    this.gen = (this.gen + 1) & GEN_MASK;
    return this.gen;
  }

  private plan(ops: RangeOp[]): Planned[] {
    if (ops.length === 0 || ops.length > MAX_OPS) throw new LowbitError('E_ARG', `thread pool: 1..${MAX_OPS} ops per job, got ${ops.length}`);
    const perOp = Math.floor(MAX_CHUNKS / ops.length);
    const out: Planned[] = [];
    let first = 0;
    for (const op of ops) {
      if (op.args.length > MAX_ARGS || op.advance.length > MAX_ADVANCE || !(op.align >= 1)) {
        throw new LowbitError('E_ARG', `thread pool: op ${op.fn} has too many arguments or a bad alignment`);
      }
      const total = op.args[op.count]!;
      let chunk = Math.max(op.align, roundUp(Math.ceil(total / (this.size * CHUNKS_PER_THREAD)), op.align));
      if (Math.ceil(total / chunk) > perOp) chunk = roundUp(Math.ceil(total / perOp), op.align);
      const nChunks = total === 0 ? 0 : Math.ceil(total / chunk);
      out.push({ op, fn: this.fn(op.fn), chunk, first, nChunks });
      first += nChunks;
    }
    return out;
  }

  private dispatch(planned: Planned[], ping = false): void {
    const ctl = this.ctl;
    let total = 0;
    planned.forEach((p, o) => {
      const w = OPS_WORD + o * OP_INTS;
      const { op } = p;
      ctl[w] = this.fnIndex.get(op.fn)!;
      ctl[w + 1] = op.args.length;
      ctl[w + 2] = op.count;
      ctl[w + 3] = ping ? 1 : op.args[op.count]!;
      ctl[w + 4] = p.chunk;
      ctl[w + 5] = p.first;
      ctl[w + 6] = p.nChunks;
      ctl[w + 7] = op.perThread ? op.perThread[0] : -1;
      ctl[w + 8] = op.perThread ? op.perThread[1] : 0;
      for (let j = 0; j < MAX_ADVANCE; j++) {
        const a = op.advance[j];
        ctl[w + 9 + 2 * j] = a ? a[0] : -1;
        ctl[w + 10 + 2 * j] = a ? a[1] : 0;
      }
      for (let i = 0; i < op.args.length; i++) this.f64[ARGS_F64 + o * MAX_ARGS + i] = op.args[i]!;
      total += p.nChunks;
    });
    if (total === 0) return;
    ctl[W_NOPS] = planned.length;
    Atomics.store(ctl, W_TOTAL, total);
    Atomics.store(ctl, W_DONE, 0);
    Atomics.store(ctl, W_ERR, 0);
    const g = this.nextGen() << CHUNK_BITS;
    Atomics.store(ctl, W_NEXT, g);
    if (Atomics.load(ctl, W_SLEEPERS) > 0) Atomics.notify(ctl, W_NEXT);

    // the main thread claims chunks like any worker (in a ping it leaves the one chunk to them)
    const t0 = performance.now();
    let own: unknown = null;
    let claimed = total;
    let v = g;
    while (!ping) {
      const idx = v & MAX_CHUNKS;
      if (idx >= total) break;
      const prev = Atomics.compareExchange(ctl, W_NEXT, v, v + 1);
      if (prev !== v) { v = prev; continue; }
      try {
        this.runChunk(planned, idx);
      } catch (e) {
        own = e;
        claimed = Math.min(total, Atomics.exchange(ctl, W_NEXT, g | total) & MAX_CHUNKS);
      }
      Atomics.add(ctl, W_DONE, 1);
      if (own) break;
      v = Atomics.load(ctl, W_NEXT);
    }
    this.waitDone(claimed, performance.now() - t0);
    if (own) throw own;
    if (Atomics.load(ctl, W_ERR)) {
      const tid = Atomics.load(ctl, W_ERR) - 1;
      const text = String.fromCharCode(...this.u16.subarray(ERR_U16, ERR_U16 + ctl[W_ERRLEN]!));
      throw new LowbitError('E_BACKEND', `worker ${tid} failed in ${planned.map((p) => p.op.fn).join(', ')}: ${text}`, { worker: tid });
    }
  }

  private runChunk(planned: Planned[], idx: number): void {
    for (const p of planned) {
      if (idx < p.first || idx >= p.first + p.nChunks) continue;
      const { op } = p;
      const start = (idx - p.first) * p.chunk;
      const args = op.args.slice();
      args[op.count] = Math.min(p.chunk, op.args[op.count]! - start);
      for (const [a, bytes] of op.advance) if (args[a] !== 0) args[a]! += start * bytes;
      p.fn(...args);
      return;
    }
  }

  /** Waits until `need` chunks are done: spin, then Atomics.wait in slices, up to the stall deadline. */
  private waitDone(need: number, ownMs: number): void {
    const ctl = this.ctl;
    if (Atomics.load(ctl, W_DONE) >= need) return;
    const start = performance.now();
    const spinUntil = start + Math.max(Atomics.load(ctl, W_SPIN_US) / 1000, 2 * ownMs);
    const deadline = start + Math.max(this.stallMs, 20 * ownMs);
    let n = 0;
    for (;;) {
      const d = Atomics.load(ctl, W_DONE);
      if (d >= need) return;
      if ((++n & 255) !== 0) continue;
      const now = performance.now();
      if (now > deadline) break;
      if (this.canWait && now > spinUntil) Atomics.wait(ctl, W_DONE, d, 2);
    }
    const left = need - Atomics.load(ctl, W_DONE);
    this.stop(`stalled: ${left} claimed chunk(s) unfinished after ${Math.round(performance.now() - start)} ms`);
    this.raiseStop();
  }

  /** Marks the pool stopped (first reason wins), tells the backend, terminates the workers. */
  private stop(reason: string): void {
    if (this.disposed || this.broken) return;
    this.broken = reason;
    this.onStop?.(`thread pool stopped, running 1 thread: ${reason}`);
    void this.shutdown();
  }

  /** Raises the stop reason once; later calls run single-threaded without error. */
  private raiseStop(): never {
    this.reported = true;
    throw new LowbitError('E_BACKEND', `thread pool: ${this.broken}; later calls run on 1 thread`);
  }

  private async shutdown(): Promise<void> {
    Atomics.store(this.ctl, W_STOP, 1);
    Atomics.store(this.ctl, W_TOTAL, 0);
    Atomics.store(this.ctl, W_NEXT, this.nextGen() << CHUNK_BITS);
    Atomics.notify(this.ctl, W_NEXT);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * One kernel call through the pool when it has threads and the call has `flops` worth splitting,
 * else one direct call of `op.fn(...op.args)` on this thread. A kernel family routes a call with
 * one line: `splitCall(pool, ex, {fn: 'gemv_x', args, count, align, advance}, flops)`. The op's cut
 * points (`align`) must be where the kernel's own tiling already cuts, so results do not depend on
 * the thread count, and the kernel must not use static scratch (memory.data): threads share it.
 */
export function splitCall(pool: ThreadPool | null, ex: object, op: RangeOp, flops: number): void {
  if (pool?.shouldSplit(flops)) pool.run([op]);
  else (ex as Record<string, Fn>)[op.fn]!(...op.args);
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}
