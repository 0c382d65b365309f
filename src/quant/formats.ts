// Bit-packed code formats: one data type per storage width, one traits table (ggml `type_traits`).
// Kernels: assembly/quant.ts (pack/unpack/quantize_pack), TS twins in src/ref/quant.ts.
//
// Common rules. Codes are unsigned, 0 .. 2^bits − 1 (symmetric schemes store q + 2^(b−1)). Codes
// stay in their logical order along the last (input) dimension, so groups and clusters remain
// contiguous runs of codes. Every row starts on a block boundary: a row of `cols` codes takes
// ceil(cols / blockCodes) blocks and the padding codes of its last block are 0 (consumers stop at
// `cols`). When `cols` is a multiple of the block, a [rows, cols] tensor takes exactly
// bits · rows · cols / 8 bytes. Each block is 16 bytes (48 for u3), the width of one v128 load.

import { LowbitError } from '../errors.js';

/** Storage formats for codes. 5-, 6- and 7-bit codes are stored in u8 (one code per byte). */
export type PackedFormat = 'u2' | 'u3' | 'u4' | 'u8';

export interface FormatTraits {
  readonly name: PackedFormat;
  /** Bits of storage per code (the largest code is 2^bits − 1). */
  readonly bits: 2 | 3 | 4 | 8;
  /** Codes per block. */
  readonly blockCodes: number;
  /** Bytes per block. */
  readonly blockBytes: number;
  /** Bits per weight, parameters excluded: 8 · blockBytes / blockCodes. */
  readonly bitsPerWeight: number;
}

/**
 * u8: 8 bits per weight. Block of 16 codes in 16 bytes: byte j = code j.
 * Also the storage of 5-, 6- and 7-bit codes. Integer kernels load it as-is (i8x16 / u8x16 lanes).
 */
export const U8: FormatTraits = { name: 'u8', bits: 8, blockCodes: 16, blockBytes: 16, bitsPerWeight: 8 };

/**
 * u4: 4 bits per weight. Block of 32 codes in 16 bytes (ggml q4_0's nibble order):
 *   byte j (0..15) = code j | code (j + 16) << 4
 * One v128 load gives codes 0..15 with `v128.and(v, 0x0F)` and codes 16..31 with `i8x16.shr_u(v, 4)`:
 * two ops, no shuffle, and both halves are contiguous runs of 16 codes, which is what an i8×i8 dot
 * (relaxed `i32x4.relaxed_dot_i8x16_i7x16_add_s`: codes 0..15 fit its 0..127 operand) wants.
 */
export const U4: FormatTraits = { name: 'u4', bits: 4, blockCodes: 32, blockBytes: 16, bitsPerWeight: 4 };

/**
 * u2: 2 bits per weight. Block of 64 codes in 16 bytes:
 *   byte j (0..15) = code j | code (j+16) << 2 | code (j+32) << 4 | code (j+48) << 6
 * Codes 16k .. 16k+15 = `(i8x16.shr_u(v, 2k)) & 3`: one shift and one and per 16 codes.
 */
export const U2: FormatTraits = { name: 'u2', bits: 2, blockCodes: 64, blockBytes: 16, bitsPerWeight: 2 };

/**
 * u3: 3 bits per weight. Block of 128 codes in 48 bytes, split into bit planes (as ggml q3_K's
 * `qs` + `hmask`):
 *   bytes  0..15: u2 layout of (code & 3) for codes 0..63
 *   bytes 16..31: u2 layout of (code & 3) for codes 64..127
 *   bytes 32..47: high bits, byte j bit g = bit 2 of code (16g + j), g = 0..7
 * Codes 16g .. 16g+15 = `((lo[g>>2] >> 2(g&3)) & 3) | (((hi >> g) & 1) << 2)`: three v128 loads per
 * 128 codes and only uniform shifts, ands and ors. Why not the dense stream (8 codes in 3 bytes):
 * a code straddles bytes, so SIMD unpacking needs per-lane variable shifts and byte shuffles
 * (SIMD128 has neither variable shifts nor a cheap way to gather 3-byte groups), costing several
 * shuffles per 16 codes. The planes keep exactly 3 bits per weight with the same unpack cost shape
 * as u2/u4, and a GEMV can even fold the high plane in as a separate ±4·s term.
 */
export const U3: FormatTraits = { name: 'u3', bits: 3, blockCodes: 128, blockBytes: 48, bitsPerWeight: 3 };

/** The traits table, by format name. */
export const FORMATS: Readonly<Record<PackedFormat, FormatTraits>> = { u2: U2, u3: U3, u4: U4, u8: U8 };

/** The storage format for codes of `bits` bits (2 → u2, 3 → u3, 4 → u4, 5..8 → u8). */
export function formatForBits(bits: number): PackedFormat {
  checkBits(bits);
  return bits === 2 ? 'u2' : bits === 3 ? 'u3' : bits === 4 ? 'u4' : 'u8';
}

/** Throws E_ARG (naming `bits`) unless bits is an integer in 2..8. */
export function checkBits(bits: number, what = 'bits'): void {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) {
    throw new LowbitError('E_ARG', `${what} must be an integer from 2 to 8, got ${bits}`);
  }
}

/** The traits of a format name; E_ARG for an unknown one. */
export function formatTraits(format: string): FormatTraits {
  const t = (FORMATS as Record<string, FormatTraits | undefined>)[format];
  if (!t) throw new LowbitError('E_ARG', `format must be one of u2, u3, u4, u8, got '${format}'`);
  return t;
}

/** Bytes of one packed row of `cols` codes (whole blocks). */
export function packedRowBytes(format: PackedFormat, cols: number): number {
  const t = FORMATS[format];
  return Math.ceil(cols / t.blockCodes) * t.blockBytes;
}

/** Bytes of a packed [rows, cols] code matrix. */
export function packedBytes(format: PackedFormat, rows: number, cols: number): number {
  return rows * packedRowBytes(format, cols);
}

/**
 * The kernels' weight layout (assembly/qmatmul.ts): packed rows taken in quads of 4, each quad's four
 * rows interleaved block by block, so a row quad is one forward stream of memory (the GEMV kernels
 * read the four rows together, and a single stream is what the hardware prefetcher follows best).
 * Quad q takes 4·rb bytes at q·4·rb; block k of its row l (0..3) sits at q·4·rb + (4k + l)·blockBytes;
 * bytes past 4·packedRowBytes(format, cols) in a quad are padding (rb ≥ packedRowBytes).
 * `rowMajor` holds `rows` packed rows of packedRowBytes(format, cols) bytes; `rows` is a multiple of 4.
 */
export function quadInterleave(format: PackedFormat, rows: number, cols: number, rowMajor: Uint8Array, rb = packedRowBytes(format, cols)): Uint8Array {
  const bb = FORMATS[format].blockBytes, need = packedRowBytes(format, cols), nb = need / bb;
  if (rows % 4 !== 0) throw new LowbitError('E_SHAPE', `quadInterleave: ${rows} rows is not a multiple of 4`);
  if (rb < need) throw new LowbitError('E_SHAPE', `quadInterleave: row stride ${rb} bytes is less than the ${need} bytes of ${cols} ${format} codes`);
  if (rowMajor.length < rows * need) throw new LowbitError('E_SHAPE', `quadInterleave: ${rowMajor.length} bytes, expected ${rows * need} (${rows} rows of ${need})`);
  const out = new Uint8Array(rows * rb);
  for (let q = 0; q < rows / 4; q++) {
    for (let l = 0; l < 4; l++) {
      const src = (4 * q + l) * need;
      for (let k = 0; k < nb; k++) out.set(rowMajor.subarray(src + k * bb, src + (k + 1) * bb), q * 4 * rb + (4 * k + l) * bb);
    }
  }
  return out;
}

/** Row n of a quad-interleaved matrix (see quadInterleave) as one packed row of packedRowBytes(format, cols) bytes. */
export function quadRow(format: PackedFormat, cols: number, w: Uint8Array, rb: number, n: number,
  out = new Uint8Array(packedRowBytes(format, cols))): Uint8Array {
  const bb = FORMATS[format].blockBytes, nb = packedRowBytes(format, cols) / bb;
  const base = (n >> 2) * 4 * rb + (n & 3) * bb;
  for (let k = 0; k < nb; k++) out.set(w.subarray(base + 4 * k * bb, base + 4 * k * bb + bb), k * bb);
  return out;
}
