// The quantization kernel family: signatures and argument checks. Twins: assembly/quant.ts (WASM),
// src/ref/quant.ts (plain TS), src/wasm/quant.ts (marshalling). Layouts: src/quant/formats.ts.
//
// A [rows, cols] f32 matrix is split along its columns into nSeg segments by `offsets`
// (Int32Array of nSeg + 1 entries, 0 = offsets[0] < … < offsets[nSeg] = cols). Segment s of row r
// uses the parameter slot (r % rowPeriod) · nSeg + s of `scale` (f32, > 0) and `zero` (u8 codes):
// rowPeriod 1 shares one set of segment parameters across rows (per-tensor, per-cluster
// activations); rowPeriod = rows gives every row its own (per-group, per-token, per-row-cluster).

import { LowbitError } from '../errors.js';
import { formatTraits, checkBits, packedRowBytes, type PackedFormat } from '../quant/formats.js';
import { checkDims, checkLen } from './check.js';

/** Quantization kernels (twins: assembly/quant.ts, src/ref/quant.ts). Codes are bit-exact across backends. */
export interface QuantKernels {
  /** outMin/outMax[r · nSeg + s] = min/max of row r over segment s (NaN propagates). */
  rangeSegments(rows: number, cols: number, x: Float32Array, nSeg: number, offsets: Int32Array,
    outMin: Float32Array, outMax: Float32Array): void;
  /**
   * Fused quantize + pack: code = clamp(nearest(x / s) + z, 0, 2^bits − 1) in f32 (NaN → 0), written
   * in `format` (which must hold `bits`) to out [rows, packedRowBytes(format, cols)].
   */
  quantizePack(rows: number, cols: number, x: Float32Array, nSeg: number, offsets: Int32Array, scale: Float32Array,
    zero: Uint8Array, rowPeriod: number, bits: number, format: PackedFormat, out: Uint8Array): void;
  /** Packed [rows, packedRowBytes] → one code per byte, out [rows, cols]. */
  unpackCodes(rows: number, cols: number, format: PackedFormat, packed: Uint8Array, out: Uint8Array): void;
  /** One code per byte [rows, cols] (each < 2^format bits) → packed [rows, packedRowBytes]. */
  packCodes(rows: number, cols: number, format: PackedFormat, codes: Uint8Array, out: Uint8Array): void;
  /** Packed codes → out[r, i] = s · (q − z) in f32 with the segment's parameters. */
  dequantizeUnpack(rows: number, cols: number, format: PackedFormat, packed: Uint8Array, nSeg: number,
    offsets: Int32Array, scale: Float32Array, zero: Uint8Array, rowPeriod: number, out: Float32Array): void;
}

/** Checks `offsets` splits 0..cols into nSeg non-empty runs. */
export function checkOffsets(kernel: string, cols: number, nSeg: number, offsets: Int32Array): void {
  checkDims(kernel, { nSeg });
  if (cols > 0 && nSeg === 0) throw new LowbitError('E_ARG', `${kernel}: nSeg must be at least 1 for ${cols} columns`);
  if (nSeg > Math.max(cols, 0) && cols > 0) {
    throw new LowbitError('E_ARG', `${kernel}: nSeg ${nSeg} is larger than the ${cols} columns`);
  }
  if (cols === 0) return;
  checkLen(kernel, 'offsets', offsets, nSeg + 1);
  if (offsets[0] !== 0 || offsets[nSeg] !== cols) {
    throw new LowbitError('E_ARG', `${kernel}: offsets must start at 0 and end at cols=${cols}, got ${offsets[0]} .. ${offsets[nSeg]}`);
  }
  for (let s = 0; s < nSeg; s++) {
    if (!(offsets[s + 1]! > offsets[s]!)) {
      throw new LowbitError('E_ARG', `${kernel}: offsets must strictly increase, offsets[${s}]=${offsets[s]} offsets[${s + 1}]=${offsets[s + 1]}`);
    }
  }
}

/** Checks per-segment scales (finite, > 0) and zero points (<= qmax) for rows × nSeg slots (rowPeriod rows apart). */
export function checkParams(kernel: string, rows: number, cols: number, nSeg: number, rowPeriod: number,
  scale: Float32Array, zero: Uint8Array, qmax: number): void {
  checkDims(kernel, { rowPeriod });
  if (rows === 0 || cols === 0) return;
  if (rowPeriod < 1) throw new LowbitError('E_ARG', `${kernel}: rowPeriod must be at least 1, got ${rowPeriod}`);
  const slots = Math.min(rowPeriod, rows) * nSeg;
  checkLen(kernel, 'scale', scale, slots);
  checkLen(kernel, 'zero', zero, slots);
  for (let i = 0; i < slots; i++) {
    const s = scale[i]!;
    if (!(s > 0) || s === Infinity) throw new LowbitError('E_ARG', `${kernel}: scale[${i}] must be finite and > 0, got ${s}`);
    if (zero[i]! > qmax) throw new LowbitError('E_RANGE', `${kernel}: zero[${i}] = ${zero[i]} is above the largest code ${qmax}`);
  }
}

/** The storage bits of `format`, or an E_ARG naming the kernel. */
export function fmtBits(kernel: string, format: PackedFormat): number {
  try {
    return formatTraits(format).bits;
  } catch (e) {
    throw new LowbitError('E_ARG', `${kernel}: ${(e as Error).message.replace(/^E_ARG: /, '')}`);
  }
}

/** The quantization kernels of `k`, each preceded by its argument checks. */
export function checkedQuant(k: QuantKernels): QuantKernels {
  return {
    rangeSegments(rows, cols, x, nSeg, offsets, outMin, outMax) {
      checkDims('rangeSegments', { rows, cols });
      checkOffsets('rangeSegments', cols, nSeg, offsets);
      checkLen('rangeSegments', 'x', x, rows * cols);
      const n = cols === 0 ? 0 : rows * nSeg;
      checkLen('rangeSegments', 'outMin', outMin, n);
      checkLen('rangeSegments', 'outMax', outMax, n);
      if (n > 0) k.rangeSegments(rows, cols, x, nSeg, offsets, outMin, outMax);
    },
    quantizePack(rows, cols, x, nSeg, offsets, scale, zero, rowPeriod, bits, format, out) {
      checkDims('quantizePack', { rows, cols });
      checkBits(bits, 'quantizePack: bits');
      const fb = fmtBits('quantizePack', format);
      if (bits > fb) throw new LowbitError('E_ARG', `quantizePack: bits ${bits} do not fit format ${format} (${fb} bits)`);
      checkOffsets('quantizePack', cols, nSeg, offsets);
      checkParams('quantizePack', rows, cols, nSeg, rowPeriod, scale, zero, 2 ** bits - 1);
      checkLen('quantizePack', 'x', x, rows * cols);
      checkLen('quantizePack', 'out', out, rows * packedRowBytes(format, cols));
      if (rows > 0 && cols > 0) k.quantizePack(rows, cols, x, nSeg, offsets, scale, zero, rowPeriod, bits, format, out);
    },
    unpackCodes(rows, cols, format, packed, out) {
      checkDims('unpackCodes', { rows, cols });
      fmtBits('unpackCodes', format);
      checkLen('unpackCodes', 'packed', packed, rows * packedRowBytes(format, cols));
      checkLen('unpackCodes', 'out', out, rows * cols);
      if (rows > 0 && cols > 0) k.unpackCodes(rows, cols, format, packed, out);
    },
    packCodes(rows, cols, format, codes, out) {
      checkDims('packCodes', { rows, cols });
      const qmax = 2 ** fmtBits('packCodes', format) - 1;
      checkLen('packCodes', 'codes', codes, rows * cols);
      checkLen('packCodes', 'out', out, rows * packedRowBytes(format, cols));
      for (let i = 0; i < rows * cols; i++) {
        if (codes[i]! > qmax) throw new LowbitError('E_RANGE', `packCodes: codes[${i}] = ${codes[i]} does not fit ${format} (max ${qmax})`);
      }
      if (rows > 0 && cols > 0) k.packCodes(rows, cols, format, codes, out);
    },
    dequantizeUnpack(rows, cols, format, packed, nSeg, offsets, scale, zero, rowPeriod, out) {
      checkDims('dequantizeUnpack', { rows, cols });
      const fb = fmtBits('dequantizeUnpack', format);
      checkOffsets('dequantizeUnpack', cols, nSeg, offsets);
      checkParams('dequantizeUnpack', rows, cols, nSeg, rowPeriod, scale, zero, 2 ** fb - 1);
      checkLen('dequantizeUnpack', 'packed', packed, rows * packedRowBytes(format, cols));
      checkLen('dequantizeUnpack', 'out', out, rows * cols);
      if (rows > 0 && cols > 0) k.dequantizeUnpack(rows, cols, format, packed, nSeg, offsets, scale, zero, rowPeriod, out);
    },
  };
}
