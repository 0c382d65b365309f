// Quantization cases: f32 → 4-bit packed, per-group (weights 4096×4096, range estimation + fused
// quantize/pack) and per-cluster (activations 2048×768, static calibrated params, the RPTQ
// runtime path), plus unpack. GB/s counts f32 input bytes (unpack: packed bytes read).

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { packedBytes } from '../../src/quant/formats.js';
import { estimateParams } from '../../src/quant/range.js';
import type { QuantLayout } from '../../src/quant/types.js';

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * (1 + (i % 97) / 10);
  }
  return a;
}

/** A resident (heap) copy for WASM backends, re-viewed on each call since memory may grow. */
function resident<T extends Float32Array | Uint8Array>(b: Backend, src: T): () => T {
  if (!b.heap) return () => src;
  const heap = b.heap;
  const p = heap.alloc(src.byteLength, 'bench operand');
  const isF = src instanceof Float32Array;
  (isF ? heap.f32(p, src.length) : heap.u8(p, src.length)).set(src as never);
  return () => (isF ? heap.f32(p, src.length) : heap.u8(p, src.length)) as T;
}

export function quantCases(ctx: BenchContext): BenchCase[] {
  const cases: BenchCase[] = [];
  const backends = Object.entries(ctx.backends).filter((e): e is [string, Backend] => !!e[1]);

  // weights 4096×4096, per-group 128 along the input dim: ranges (kernel) + params (TS) + quantize/pack
  {
    const rows = 4096, cols = 4096, g = 128;
    const l: QuantLayout = { rows, cols, offsets: Int32Array.from({ length: cols / g + 1 }, (_, i) => i * g), rowPeriod: rows, perm: null };
    const w0 = rand(rows * cols, 1);
    for (const [name, b] of backends) {
      let x: (() => Float32Array) | null = null, out: (() => Uint8Array) | null = null;
      cases.push({
        group: 'quant f32→u4 per-group g128 weights 4096x4096', impl: name, bytes: 4 * rows * cols,
        setup() {
          x ??= resident(b, w0);
          out ??= resident(b, new Uint8Array(packedBytes('u4', rows, cols)));
        },
        fn() {
          const p = estimateParams(b.kernels, x!(), l, 4, false, { kind: 'minmax' });
          b.kernels.quantizePack(rows, cols, x!(), cols / g, l.offsets, p.scale, p.zero, rows, 4, 'u4', out!());
        },
      });
    }
  }

  // activations 2048×768, per-cluster (32 clusters, contiguous after RPTQ reordering), static params
  {
    const rows = 2048, cols = 768, k = 32;
    const offsets = Int32Array.from({ length: k + 1 }, (_, i) => Math.round((i * cols) / k) + (i > 0 && i < k ? (i % 3) - 1 : 0));
    const scale = Float32Array.from({ length: k }, (_, i) => 0.01 * (1 + i));
    const zero = Uint8Array.from({ length: k }, (_, i) => 6 + (i % 4));
    const a0 = rand(rows * cols, 2);
    for (const [name, b] of backends) {
      let x: (() => Float32Array) | null = null, out: (() => Uint8Array) | null = null;
      cases.push({
        group: 'quant f32→u4 per-cluster k32 activations 2048x768', impl: name, bytes: 4 * rows * cols,
        setup() {
          x ??= resident(b, a0);
          out ??= resident(b, new Uint8Array(packedBytes('u4', rows, cols)));
        },
        fn() { b.kernels.quantizePack(rows, cols, x!(), k, offsets, scale, zero, 1, 4, 'u4', out!()); },
      });
    }
  }

  // unpack u4 4096×4096 → one code per byte
  {
    const rows = 4096, cols = 4096;
    const packed0 = new Uint8Array(packedBytes('u4', rows, cols));
    for (let i = 0; i < packed0.length; i++) packed0[i] = (i * 2654435761) >>> 24;
    for (const [name, b] of backends) {
      let src: (() => Uint8Array) | null = null, out: (() => Uint8Array) | null = null;
      cases.push({
        group: 'quant unpack u4 4096x4096', impl: name, bytes: packed0.length,
        setup() {
          src ??= resident(b, packed0);
          out ??= resident(b, new Uint8Array(rows * cols));
        },
        fn() { b.kernels.unpackCodes(rows, cols, 'u4', src!(), out!()); },
      });
    }
  }
  return cases;
}
