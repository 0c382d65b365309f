// Quantization kernels on a WASM instance: marshal typed arrays, call assembly/quant.ts exports.

import type { QuantKernels } from '../kernels/quant.js';
import { FORMATS, packedRowBytes } from '../quant/formats.js';
import type { Heap } from './heap.js';
import { marshal } from './marshal.js';

/** Raw exports of assembly/quant.ts: pointers are byte offsets into linear memory; `bits` picks the format. */
export interface QuantExports {
  range_segments(rows: number, cols: number, x: number, nSeg: number, offsets: number, outMin: number, outMax: number): void;
  quantize_pack(rows: number, cols: number, x: number, nSeg: number, offsets: number, scale: number, zero: number,
    rowPeriod: number, qmax: number, bits: number, out: number): void;
  unpack_codes(rows: number, cols: number, bits: number, src: number, out: number): void;
  pack_codes(rows: number, cols: number, bits: number, src: number, out: number): void;
  dequantize_unpack(rows: number, cols: number, bits: number, src: number, nSeg: number, offsets: number, scale: number,
    zero: number, rowPeriod: number, out: number): void;
}

/** The quantization kernels on one instance (unchecked: src/kernels/ adds the checks). */
export function wasmQuant(ex: QuantExports, h: Heap): QuantKernels {
  return {
    rangeSegments(rows, cols, x, nSeg, offsets, outMin, outMax) {
      marshal(h, [[x, 'in', rows * cols], [offsets, 'in', nSeg + 1], [outMin, 'out', rows * nSeg], [outMax, 'out', rows * nSeg]],
        (px, po, pmn, pmx) => ex.range_segments(rows, cols, px!, nSeg, po!, pmn!, pmx!));
    },
    quantizePack(rows, cols, x, nSeg, offsets, scale, zero, rowPeriod, bits, format, out) {
      const slots = Math.min(rowPeriod, rows) * nSeg;
      marshal(h, [[x, 'in', rows * cols], [offsets, 'in', nSeg + 1], [scale, 'in', slots], [zero, 'in', slots],
        [out, 'out', rows * packedRowBytes(format, cols)]],
      (px, po, ps, pz, pout) => ex.quantize_pack(rows, cols, px!, nSeg, po!, ps!, pz!, rowPeriod, 2 ** bits - 1, FORMATS[format].bits, pout!));
    },
    unpackCodes(rows, cols, format, packed, out) {
      marshal(h, [[packed, 'in', rows * packedRowBytes(format, cols)], [out, 'out', rows * cols]],
        (pp, po) => ex.unpack_codes(rows, cols, FORMATS[format].bits, pp!, po!));
    },
    packCodes(rows, cols, format, codes, out) {
      marshal(h, [[codes, 'in', rows * cols], [out, 'out', rows * packedRowBytes(format, cols)]],
        (pc, po) => ex.pack_codes(rows, cols, FORMATS[format].bits, pc!, po!));
    },
    dequantizeUnpack(rows, cols, format, packed, nSeg, offsets, scale, zero, rowPeriod, out) {
      const slots = Math.min(rowPeriod, rows) * nSeg;
      marshal(h, [[packed, 'in', rows * packedRowBytes(format, cols)], [offsets, 'in', nSeg + 1], [scale, 'in', slots],
        [zero, 'in', slots], [out, 'out', rows * cols]],
      (pp, po, ps, pz, pout) => ex.dequantize_unpack(rows, cols, FORMATS[format].bits, pp!, nSeg, po!, ps!, pz!, rowPeriod, pout!));
    },
  };
}
