// RawTensor, the plain record every checkpoint reader returns, and exact dtype → float32 conversion (IEEE 754-2008 binary16, bfloat16).

import { LowbitError, fmtShape } from '../errors.js';

/** Element types a checkpoint tensor may have (safetensors spellings). */
export type RawDtype = 'F32' | 'F16' | 'BF16' | 'I8' | 'U8' | 'I32' | 'I64' | 'F64' | 'I16' | 'U16' | 'BOOL';

/**
 * One tensor as it sits in a file: little-endian, row-major, contiguous.
 * `bytes` is a view into the source buffer where possible (zero copy), so writing to it writes to the source.
 */
export interface RawTensor {
  name: string;
  dtype: RawDtype;
  shape: number[];
  bytes: Uint8Array; // (numel * dtypeBytes(dtype))
}

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<RawDtype, number>> = {
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  F16: 2,
  BF16: 2,
  I16: 2,
  U16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isRawDtype(s: unknown): s is RawDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export function dtypeBytes(dtype: RawDtype): number {
  return DTYPE_BYTES[dtype];
}

/** Product of a shape's dimensions (1 for a scalar `[]`). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** True when this host stores typed arrays little-endian (every current JS engine; checked, not assumed). */
export const HOST_LITTLE_ENDIAN: boolean = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---- float16 / bfloat16 ---------------------------------------------------------------------------

let f16Table: Uint32Array | null = null;
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 bit pattern of one binary16 value: exact for normals, subnormals, ±0, ±inf and NaN (payload kept). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal: mant · 2^-24. Normalise the mantissa so the leading 1 moves to bit 10.
  let e = 113; // biased f32 exponent of 2^-14
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

function getF16Table(): Uint32Array {
  if (f16Table === null) {
    const t = new Uint32Array(65536); // (65536) f32 bits per f16 bit pattern
    for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32Bits(h);
    f16Table = t;
  }
  return f16Table;
}

/** binary16 bit pattern nearest to `x` (round half to even; overflow to ±inf; NaN stays NaN). */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000;
    const shift = 14 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // may carry into the exponent: correct (up to inf)
  return sign | r;
}

/** bfloat16 bit patterns widened to float32 (bits << 16, exact). */
export function bf16ToF32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length), bits = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) bits[i] = h[i]! << 16;
  return out;
}

/** bfloat16 bit pattern nearest to `x` (round half to even; NaN stays a quiet NaN). */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- conversions ------------------------------------------------------------------------------------

function checkByteLength(raw: RawTensor): number {
  const n = numelOf(raw.shape);
  const want = n * DTYPE_BYTES[raw.dtype];
  if (raw.bytes.byteLength !== want) {
    throw new LowbitError(
      'E_SHAPE',
      `tensor '${raw.name}': ${raw.dtype} ${fmtShape(raw.shape)} needs ${want} bytes, has ${raw.bytes.byteLength}`,
      { name: raw.name },
    );
  }
  return n;
}

/** A view of `bytes` as `T` when aligned and the host is little-endian, else null. */
function alignedView(bytes: Uint8Array, elemBytes: number): boolean {
  return HOST_LITTLE_ENDIAN && bytes.byteOffset % elemBytes === 0;
}

/**
 * The tensor's values as float32 (F32, F16, BF16, F64). F16 and BF16 convert exactly; F64 rounds to nearest.
 * For F32 the result is a zero-copy view of `raw.bytes` when its offset is 4-aligned (it aliases the file buffer);
 * otherwise a copy.
 */
export function toFloat32(raw: RawTensor): Float32Array {
  const n = checkByteLength(raw);
  const b = raw.bytes;
  switch (raw.dtype) {
    case 'F32': {
      if (alignedView(b, 4)) return new Float32Array(b.buffer, b.byteOffset, n);
      const out = new Float32Array(n);
      if (HOST_LITTLE_ENDIAN) {
        new Uint8Array(out.buffer).set(b);
      } else {
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      }
      return out;
    }
    case 'F16': {
      const t = getF16Table();
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      if (alignedView(b, 2)) {
        const h = new Uint16Array(b.buffer, b.byteOffset, n);
        for (let i = 0; i < n; i++) bits[i] = t[h[i]!]!;
      } else {
        for (let i = 0; i < n; i++) bits[i] = t[b[2 * i]! | (b[2 * i + 1]! << 8)]!;
      }
      return out;
    }
    case 'BF16': {
      if (alignedView(b, 2)) return bf16ToF32(new Uint16Array(b.buffer, b.byteOffset, n));
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = (b[2 * i]! | (b[2 * i + 1]! << 8)) << 16;
      return out;
    }
    case 'F64': {
      const out = new Float32Array(n);
      if (alignedView(b, 8)) {
        const d = new Float64Array(b.buffer, b.byteOffset, n);
        for (let i = 0; i < n; i++) out[i] = d[i]!;
      } else {
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      }
      return out;
    }
    default:
      throw new LowbitError('E_DTYPE', `tensor '${raw.name}': toFloat32 takes F32/F16/BF16/F64, not ${raw.dtype}`, {
        name: raw.name,
        dtype: raw.dtype,
      });
  }
}

/** Encodes float32 values as F32, F16 or BF16 little-endian bytes (F16/BF16 round half to even). */
export function encodeFloat32(values: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  const n = values.length;
  if (dtype === 'F32') {
    const out = new Uint8Array(4 * n);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setFloat32(4 * i, values[i]!, true);
    return out;
  }
  const out = new Uint8Array(2 * n);
  for (let i = 0; i < n; i++) {
    const h = dtype === 'F16' ? f32ToF16Bits(values[i]!) : f32ToBf16Bits(values[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}
