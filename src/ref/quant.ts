// Reference quantization kernels in plain TypeScript: the oracle for assembly/quant.ts. The code
// positions come from the layout formulas of src/quant/formats.ts (not from the SIMD recipe), and
// every value is computed in f32 with the same operations as the kernel, so codes are bit-exact.

import type { QuantKernels } from '../kernels/quant.js';
import { FORMATS, packedRowBytes, type PackedFormat } from '../quant/formats.js';
import { quantizeValue, dequantizeValue } from '../quant/round.js';

/** Where code i of a block lives: [byte, shift] of its low bits, and for u3 the byte/bit of bit 2. */
function place(format: PackedFormat, i: number): { byte: number; shift: number; hiByte: number; hiBit: number } {
  switch (format) {
    case 'u8': return { byte: i, shift: 0, hiByte: -1, hiBit: 0 };
    case 'u4': return { byte: i & 15, shift: 4 * (i >> 4), hiByte: -1, hiBit: 0 };
    case 'u2': return { byte: i & 15, shift: 2 * (i >> 4), hiByte: -1, hiBit: 0 };
    case 'u3': return { byte: 16 * (i >> 6) + (i & 15), shift: 2 * ((i >> 4) & 3), hiByte: 32 + (i & 15), hiBit: i >> 4 };
  }
}

function getCode(format: PackedFormat, row: Uint8Array, rowOff: number, i: number): number {
  const t = FORMATS[format];
  const base = rowOff + Math.floor(i / t.blockCodes) * t.blockBytes;
  const p = place(format, i % t.blockCodes);
  if (format === 'u8') return row[base + p.byte]!;
  let q = (row[base + p.byte]! >> p.shift) & (format === 'u4' ? 15 : 3);
  if (format === 'u3') q |= ((row[base + p.hiByte]! >> p.hiBit) & 1) << 2;
  return q;
}

/** Writes codes[0..cols) as one packed row at out[rowOff ..] (padding codes 0). */
function packRow(format: PackedFormat, codes: ArrayLike<number>, cols: number, out: Uint8Array, rowOff: number): void {
  const t = FORMATS[format];
  out.fill(0, rowOff, rowOff + packedRowBytes(format, cols));
  for (let i = 0; i < cols; i++) {
    const q = codes[i]!;
    const base = rowOff + Math.floor(i / t.blockCodes) * t.blockBytes;
    const p = place(format, i % t.blockCodes);
    if (format === 'u3') {
      out[base + p.byte]! |= (q & 3) << p.shift;
      out[base + p.hiByte]! |= ((q >> 2) & 1) << p.hiBit;
    } else {
      out[base + p.byte]! |= q << p.shift;
    }
  }
}

export const refQuant: QuantKernels = {
  rangeSegments(rows, cols, x, nSeg, offsets, outMin, outMax) {
    for (let r = 0; r < rows; r++) {
      for (let s = 0; s < nSeg; s++) {
        let mn = Infinity, mx = -Infinity;
        for (let i = offsets[s]!; i < offsets[s + 1]!; i++) {
          const v = x[r * cols + i]!;
          mn = Math.min(mn, v);
          mx = Math.max(mx, v);
        }
        outMin[r * nSeg + s] = mn;
        outMax[r * nSeg + s] = mx;
      }
    }
  },

  quantizePack(rows, cols, x, nSeg, offsets, scale, zero, rowPeriod, bits, format, out) {
    const qmax = 2 ** bits - 1, rb = packedRowBytes(format, cols);
    const codes = new Uint8Array(cols);
    for (let r = 0; r < rows; r++) {
      const pr = (r % rowPeriod) * nSeg;
      for (let s = 0; s < nSeg; s++) {
        const sc = scale[pr + s]!, z = zero[pr + s]!;
        for (let i = offsets[s]!; i < offsets[s + 1]!; i++) codes[i] = quantizeValue(x[r * cols + i]!, sc, z, qmax);
      }
      packRow(format, codes, cols, out, r * rb);
    }
  },

  unpackCodes(rows, cols, format, packed, out) {
    const rb = packedRowBytes(format, cols);
    for (let r = 0; r < rows; r++) for (let i = 0; i < cols; i++) out[r * cols + i] = getCode(format, packed, r * rb, i);
  },

  packCodes(rows, cols, format, codes, out) {
    const rb = packedRowBytes(format, cols);
    for (let r = 0; r < rows; r++) packRow(format, codes.subarray(r * cols, r * cols + cols), cols, out, r * rb);
  },

  dequantizeUnpack(rows, cols, format, packed, nSeg, offsets, scale, zero, rowPeriod, out) {
    const rb = packedRowBytes(format, cols);
    for (let r = 0; r < rows; r++) {
      const pr = (r % rowPeriod) * nSeg;
      for (let s = 0; s < nSeg; s++) {
        const sc = scale[pr + s]!, z = zero[pr + s]!;
        for (let i = offsets[s]!; i < offsets[s + 1]!; i++) out[r * cols + i] = dequantizeValue(getCode(format, packed, r * rb, i), sc, z);
      }
    }
  },
};
