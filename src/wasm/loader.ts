// Instantiates one of the two embedded WASM binaries (base64 in src/wasm/generated/) with a
// host-created memory. Feature detection = WebAssembly.validate on the real binary (as-sha256).

import { LowbitError } from '../errors.js';
import { WASM_SIMD_BASE64 } from './generated/simd.js';
import { WASM_RELAXED_BASE64 } from './generated/relaxed.js';
import { Heap } from './heap.js';
import type { F32Exports } from './f32.js';
import type { QuantExports } from './quant.js';

export type WasmFlavor = 'simd' | 'relaxed';

/** Raw exports of assembly/index.ts: each family's exports plus the module's own. */
export interface WasmExports extends F32Exports, QuantExports {
  heap_base(): number;
  is_relaxed(): number;
}

export interface WasmInstance {
  flavor: WasmFlavor;
  exports: WasmExports;
  heap: Heap;
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

const bytesCache = new Map<WasmFlavor, Uint8Array<ArrayBuffer>>();

export function wasmBytes(flavor: WasmFlavor): Uint8Array<ArrayBuffer> {
  let b = bytesCache.get(flavor);
  if (!b) {
    b = decodeBase64(flavor === 'simd' ? WASM_SIMD_BASE64 : WASM_RELAXED_BASE64);
    bytesCache.set(flavor, b);
  }
  return b;
}

/** True when this engine accepts the binary (Node 20 needs --experimental-wasm-relaxed-simd for relaxed). */
export function wasmSupported(flavor: WasmFlavor): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(wasmBytes(flavor));
  } catch {
    return false;
  }
}

export async function instantiate(flavor: WasmFlavor, opts: MemoryOptions = {}): Promise<WasmInstance> {
  if (!wasmSupported(flavor)) {
    throw new LowbitError('E_BACKEND', `the ${flavor} WASM binary does not validate on this engine` +
      (flavor === 'relaxed' ? ' (Node 20 needs --experimental-wasm-relaxed-simd)' : ''));
  }
  const maxBytes = Math.min(opts.maxMemoryBytes ?? WASM32_MAX_BYTES, WASM32_MAX_BYTES);
  const initial = Math.min(opts.initialMemoryBytes ?? 16 * 1024 * 1024, maxBytes);
  if (!(maxBytes > 0) || !(initial >= 0)) {
    throw new LowbitError('E_ARG', `memory options: initialMemoryBytes=${opts.initialMemoryBytes} maxMemoryBytes=${opts.maxMemoryBytes}`);
  }
  const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(initial / PAGE)), maximum: Math.floor(maxBytes / PAGE) });
  const { instance } = await WebAssembly.instantiate(wasmBytes(flavor), { env: { memory } });
  const exports = instance.exports as unknown as WasmExports;
  return { flavor, exports, heap: new Heap(memory, exports.heap_base(), maxBytes) };
}
