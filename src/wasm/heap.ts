// Ownership model for WASM linear memory: explicit alloc/free from the host, never from kernels.
//
// - The host owns every byte above the module's static data (`heap_base`). Kernels receive
//   pointers and never allocate.
// - `alloc(bytes)` returns a 64-byte-aligned pointer (cache line; SIMD loads never straddle one);
//   `free(ptr)` returns it. Freed blocks are coalesced with their neighbours; a block at the top
//   lowers the high-water mark, so alloc/compute/free cycles leave memory use flat.
// - Memory grows on demand with `memory.grow`. Growth detaches every typed-array view of the old
//   buffer, so views are re-created on each use (`f32(ptr, n)`, ...) from the buffer the heap keeps
//   (`buffer`: memory.buffer as of its last growth, re-read when detached or when an allocation
//   lands past it), and resident tensors keep (ptr, length), re-cutting their view when it changes.
// - Growing past `maxBytes` (or the engine's limit) raises LowbitError E_OOM naming the requested
//   bytes. Nothing is trapped, so the instance stays usable.
// - Per-call scratch (copies of host arrays) is allocated and freed inside one kernel call.

import { LowbitError } from '../errors.js';

const ALIGN = 64;
const PAGE = 65536;

export interface HeapStats {
  /** Bytes in live blocks. */
  inUse: number;
  /** Number of live blocks. */
  blocks: number;
  /** High-water mark: first byte never handed out. */
  top: number;
  /** Size of linear memory now. */
  memoryBytes: number;
}

export class Heap {
  readonly memory: WebAssembly.Memory;
  readonly maxBytes: number;
  private readonly base: number;
  private top: number;
  private readonly sizes = new Map<number, number>();
  /** Free blocks, sorted by pointer: parallel arrays of start and size. */
  private freePtr: number[] = [];
  private freeSize: number[] = [];
  private inUse = 0;
  /** memory.buffer as of the last growth (the getter is a native call; `buffer` runs on every kernel argument). */
  private buf: ArrayBuffer | SharedArrayBuffer;

  constructor(memory: WebAssembly.Memory, heapBase: number, maxBytes: number) {
    this.memory = memory;
    this.buf = memory.buffer;
    this.base = align(heapBase);
    this.top = this.base;
    this.maxBytes = maxBytes;
  }

  alloc(bytes: number, what = 'buffer'): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new LowbitError('E_ARG', `alloc(${what}): bad byte count ${bytes}`);
    const size = Math.max(ALIGN, align(bytes));
    for (let i = 0; i < this.freePtr.length; i++) {
      if (this.freeSize[i]! >= size) {
        const ptr = this.freePtr[i]!;
        if (this.freeSize[i] === size) {
          this.freePtr.splice(i, 1);
          this.freeSize.splice(i, 1);
        } else {
          this.freePtr[i] = ptr + size;
          this.freeSize[i]! -= size;
        }
        return this.take(ptr, size);
      }
    }
    const ptr = this.top;
    this.ensure(ptr + size, bytes, what);
    this.top = ptr + size;
    return this.take(ptr, size);
  }

  free(ptr: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined) throw new LowbitError('E_ARG', `free: ${ptr} is not a live allocation`);
    this.sizes.delete(ptr);
    this.inUse -= size;
    // insert sorted, then coalesce with neighbours
    let i = 0;
    while (i < this.freePtr.length && this.freePtr[i]! < ptr) i++;
    this.freePtr.splice(i, 0, ptr);
    this.freeSize.splice(i, 0, size);
    if (i + 1 < this.freePtr.length && ptr + this.freeSize[i]! === this.freePtr[i + 1]) {
      this.freeSize[i]! += this.freeSize[i + 1]!;
      this.freePtr.splice(i + 1, 1);
      this.freeSize.splice(i + 1, 1);
    }
    if (i > 0 && this.freePtr[i - 1]! + this.freeSize[i - 1]! === ptr) {
      this.freeSize[i - 1]! += this.freeSize[i]!;
      this.freePtr.splice(i, 1);
      this.freeSize.splice(i, 1);
      i--;
    }
    // a free block that ends at the top is returned to the bump region
    if (i === this.freePtr.length - 1 && this.freePtr[i]! + this.freeSize[i]! === this.top) {
      this.top = this.freePtr[i]!;
      this.freePtr.pop();
      this.freeSize.pop();
    }
  }

  stats(): HeapStats {
    return { inUse: this.inUse, blocks: this.sizes.size, top: this.top, memoryBytes: this.memory.buffer.byteLength };
  }

  /**
   * The memory's current buffer. Only this heap grows the memory (kernels never allocate), so the buffer it kept at
   * its last growth is current; a detached one (someone else grew a non-shared memory) is re-read.
   */
  get buffer(): ArrayBuffer | SharedArrayBuffer {
    if (this.buf.byteLength === 0) this.buf = this.memory.buffer;
    return this.buf;
  }

  /** Fresh views of linear memory (never cache them across calls that may grow memory). */
  f32(ptr: number, n: number): Float32Array { return new Float32Array(this.buffer, ptr, n); }
  i32(ptr: number, n: number): Int32Array { return new Int32Array(this.buffer, ptr, n); }
  u8(ptr: number, n: number): Uint8Array { return new Uint8Array(this.buffer, ptr, n); }

  /** True when `arr` is a live view of this heap's memory. */
  owns(arr: ArrayBufferView): boolean {
    return arr.buffer === this.buffer;
  }

  private take(ptr: number, size: number): number {
    this.sizes.set(ptr, size);
    this.inUse += size;
    return ptr;
  }

  private ensure(end: number, requested: number, what: string): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) {
      // grown by someone else (a shared memory's old buffer stays attached, at its old length): views need the new one
      if (end > this.buf.byteLength) this.buf = this.memory.buffer;
      return;
    }
    const oom = (why: string) => new LowbitError('E_OOM',
      `cannot allocate ${requested} bytes for ${what}: ${why} (in use ${this.inUse} bytes, limit ${this.maxBytes} bytes)`,
      { requestedBytes: requested });
    if (end > this.maxBytes) throw oom('over the memory limit');
    try {
      this.memory.grow(Math.ceil((end - have) / PAGE));
    } catch {
      throw oom('WebAssembly.Memory.grow failed');
    }
    this.buf = this.memory.buffer;
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
