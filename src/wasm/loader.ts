// Instantiates one of the embedded WASM binaries (base64 in src/wasm/generated/) with a
// host-created memory. Feature detection = WebAssembly.validate on the real binary (as-sha256).
// Each flavor has a twin built with --sharedMemory (`-mt`): a module importing shared memory cannot
// take unshared memory and vice versa. With `threads > 1` the shared twin is instantiated and a
// worker pool (src/wasm/pool.ts) runs the same compiled module on the same memory.

import { LowbitError } from '../errors.js';
import { WASM_SIMD_BASE64 } from './generated/simd.js';
import { WASM_RELAXED_BASE64 } from './generated/relaxed.js';
import { WASM_SIMD_MT_BASE64 } from './generated/simd-mt.js';
import { WASM_RELAXED_MT_BASE64 } from './generated/relaxed-mt.js';
import { Heap } from './heap.js';
import { planThreads, ThreadPool, type ThreadOptions } from './pool.js';
import type { F32Exports } from './f32.js';
import type { QuantExports } from './quant.js';
import type { QMatmulExports } from './qmatmul.js';
import type { LinalgExports } from './linalg.js';

export type WasmFlavor = 'simd' | 'relaxed';

/** Raw exports of assembly/index.ts: each family's exports plus the module's own. */
export interface WasmExports extends F32Exports, QuantExports, QMatmulExports, LinalgExports {
  heap_base(): number;
  is_relaxed(): number;
}

export interface WasmInstance {
  flavor: WasmFlavor;
  exports: WasmExports;
  heap: Heap;
  /** The worker pool sharing this instance's memory, or null (one thread). */
  pool: ThreadPool | null;
  /** Why fewer threads than requested run, or why the memory limit was lowered. */
  notes: string[];
}

export interface MemoryOptions {
  /** Initial linear memory in bytes (default 16 MiB). */
  initialMemoryBytes?: number;
  /** Upper bound for linear memory in bytes (default and maximum 4 GiB, the wasm32 limit). */
  maxMemoryBytes?: number;
}

const PAGE = 65536;
const WASM32_MAX_BYTES = 65536 * PAGE;

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  const B = (globalThis as { Buffer?: { from(s: string, enc: string): Uint8Array } }).Buffer;
  if (B) return new Uint8Array(B.from(b64, 'base64'));
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const bytesCache = new Map<string, Uint8Array<ArrayBuffer>>();

/** The binary of `flavor`; `shared`: its twin that imports a shared memory (for threads). */
export function wasmBytes(flavor: WasmFlavor, shared = false): Uint8Array<ArrayBuffer> {
  const key = shared ? `${flavor}-mt` : flavor;
  let b = bytesCache.get(key);
  if (!b) {
    const b64 = flavor === 'simd' ? (shared ? WASM_SIMD_MT_BASE64 : WASM_SIMD_BASE64) : (shared ? WASM_RELAXED_MT_BASE64 : WASM_RELAXED_BASE64);
    b = decodeBase64(b64);
    bytesCache.set(key, b);
  }
  return b;
}

/** True when this engine accepts the binary (Node 20 needs --experimental-wasm-relaxed-simd for relaxed). */
export function wasmSupported(flavor: WasmFlavor, shared = false): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(wasmBytes(flavor, shared));
  } catch {
    return false;
  }
}

/**
 * A shared memory of `initial` pages and up to `maxPages`. Engines reserve a shared memory's whole
 * maximum up front (it can never move), so where 4 GiB of address space is refused (32-bit
 * browsers, tight ulimit -v) the maximum is halved down to 256 MiB, with a note.
 */
function sharedMemory(initial: number, maxPages: number, notes: string[]): [WebAssembly.Memory, number] | null {
  for (let max = maxPages; max >= Math.min(maxPages, 4096); max = Math.floor(max / 2)) {
    if (max < initial) break;
    try {
      const m = new WebAssembly.Memory({ initial, maximum: max, shared: true });
      if (max < maxPages) notes.push(`shared memory limited to ${max * PAGE} bytes (the engine refused ${maxPages * PAGE})`);
      return [m, max];
    } catch {
      // try a smaller reservation
    }
  }
  return null;
}

/**
 * Instantiates `flavor` on a new memory. With `threads > 1` (and shared memory available) the
 * memory is shared and `threads - 1` workers run the same module on it; otherwise one thread runs,
 * and `notes` says why.
 */
export async function instantiate(flavor: WasmFlavor, opts: MemoryOptions & ThreadOptions = {}): Promise<WasmInstance> {
  if (!wasmSupported(flavor)) {
    throw new LowbitError('E_BACKEND', `the ${flavor} WASM binary does not validate on this engine` +
      (flavor === 'relaxed' ? ' (Node 20 needs --experimental-wasm-relaxed-simd)' : ''));
  }
  const maxBytes = Math.min(opts.maxMemoryBytes ?? WASM32_MAX_BYTES, WASM32_MAX_BYTES);
  const initial = Math.min(opts.initialMemoryBytes ?? 16 * 1024 * 1024, maxBytes);
  if (!(maxBytes > 0) || !(initial >= 0)) {
    throw new LowbitError('E_ARG', `memory options: initialMemoryBytes=${opts.initialMemoryBytes} maxMemoryBytes=${opts.maxMemoryBytes}`);
  }
  const { threads, notes } = await planThreads(opts);
  const initialPages = Math.max(1, Math.ceil(initial / PAGE));
  let maxPages = Math.floor(maxBytes / PAGE);
  let memory: WebAssembly.Memory | null = null;
  if (threads > 1) {
    const got = wasmSupported(flavor, true) ? sharedMemory(initialPages, maxPages, notes) : null;
    if (got) [memory, maxPages] = got;
    else notes.push(`threads: ${wasmSupported(flavor, true) ? 'shared WebAssembly.Memory refused' : `the shared-memory ${flavor} binary does not validate`}, running 1 thread`);
  }
  const shared = memory !== null;
  memory ??= new WebAssembly.Memory({ initial: initialPages, maximum: maxPages });
  const module = await WebAssembly.compile(wasmBytes(flavor, shared));
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const exports = instance.exports as unknown as WasmExports;
  let pool: ThreadPool | null = null;
  if (shared) {
    try {
      pool = await ThreadPool.start(module, memory, instance.exports, threads, opts);
    } catch (e) {
      notes.push(`threads: ${(e as Error).message}; running 1 thread`);
    }
  }
  return { flavor, exports, heap: new Heap(memory, exports.heap_base(), Math.min(maxBytes, maxPages * PAGE)), pool, notes };
}
