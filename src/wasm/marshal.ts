// Marshalling typed arrays to WASM pointers. Arrays that already live in this instance's memory
// (resident tensors) are passed in place; others are copied into per-call scratch and, for
// outputs, copied back. Scratch is freed before the call returns, even when the kernel throws.

import type { Heap } from './heap.js';

export type View = Float64Array | Float32Array | Int32Array | Uint8Array | Int8Array | Uint16Array | Int16Array;
export type Mode = 'in' | 'out' | 'inout';
/** [array, direction, elements used from the start of the array]. */
export type Arg = [View | null, Mode, number];

/**
 * Resolves pointers for `args`, runs `fn`, copies outputs back, frees scratch. Resident offsets are
 * read before any allocation, because growing memory detaches (and zeroes the offsets of) old views.
 */
export function marshal(heap: Heap, args: Arg[], fn: (...ptrs: number[]) => void): void {
  // fast path, the decoder's case: every array already lives in the heap (no scratch, nothing to copy back)
  let allResident = true;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]![0];
    if (a !== null && !heap.owns(a)) { allResident = false; break; }
  }
  if (allResident) {
    const direct = new Array<number>(args.length);
    for (let i = 0; i < args.length; i++) { const a = args[i]![0]; direct[i] = a === null ? 0 : a.byteOffset; }
    fn(...direct);
    return;
  }
  const ptrs = new Array<number>(args.length).fill(0);
  // residency is decided once, before any allocation can grow memory and detach resident views
  const resident = args.map(([a]) => a !== null && heap.owns(a));
  for (let i = 0; i < args.length; i++) if (resident[i]) ptrs[i] = args[i]![0]!.byteOffset;
  const scratch: number[] = [];
  try {
    for (let i = 0; i < args.length; i++) {
      const [a, mode, n] = args[i]!;
      if (!a || resident[i]) continue;
      const bytes = n * a.BYTES_PER_ELEMENT;
      const p = heap.alloc(bytes, 'kernel scratch');
      scratch.push(p);
      ptrs[i] = p;
      if (mode !== 'out') heap.u8(p, bytes).set(new Uint8Array(a.buffer, a.byteOffset, bytes));
    }
    fn(...ptrs);
    for (let i = 0; i < args.length; i++) {
      const [a, mode, n] = args[i]!;
      if (!a || mode === 'in' || resident[i]) continue;
      const bytes = n * a.BYTES_PER_ELEMENT;
      new Uint8Array(a.buffer, a.byteOffset, bytes).set(heap.u8(ptrs[i]!, bytes));
    }
  } finally {
    for (const p of scratch) heap.free(p);
  }
}
