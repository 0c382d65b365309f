// The peer graphs: Y[M, N] = A[M, K] · Wᵀ for a weight W [N, K] (lowbit's [out, in] layout), as
// fp32 MatMul, DynamicQuantizeLinear + MatMulInteger, and com.microsoft MatMulNBits.
//
// MatMulNBits (microsoft/onnxruntime `docs/ContribOperators.md`, com.microsoft.MatMulNBits, since 1):
//   Y = A · dequant(B)ᵀ, dequantized_weight = (quantized_weight − zero_point) · scale, block-wise along K.
//   attributes: K, N (ints, required), bits (2..8), block_size (power of 2, ≥ 16), accuracy_level
//     (0 unset = no quantization of A, 1 fp32, 2 fp16, 3 bf16, 4 int8: A quantized per block to int8).
//   inputs: A (T1 float), B: uint8 [N, k_blocks, blob_size] with k_blocks = ceil(K / block_size) and
//     blob_size = block_size · bits / 8, "bit-packed along the K dimension, packed within each
//     block; for 4 bits the first 4 bits are stored in the lower 4 bits of a byte and the second 4
//     bits in the higher 4 bits": byte j of a block = code 2j | code (2j+1) << 4.
//   scales: T1 [N, k_blocks] (older docs: 1-D [N · k_blocks], same order).
//   zero_points (optional): packed uint8 [N, ceil(k_blocks · bits / 8)] with the same bit packing as
//     B (block 2i in the low nibble, block 2i+1 in the high nibble, each row padded to a byte), or
//     unpacked T1 [N, k_blocks]; default 2^(bits − 1).
//
// lowbit's u4 (src/quant/formats.ts) orders nibbles differently (byte j = code j | code (j+16) << 4
// per 32 codes), so ORT's B is packed here from the same one-code-per-byte matrix: both sides use
// identical codes, scales and zero points.

import {
  DataType, DEFAULT_OPSETS, f32Tensor, i8Tensor, int, modelBytes, u8Tensor, valueInfo, type Graph,
} from './onnx.js';

/** Transposes a row-major [rows, cols] matrix. */
export function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const y = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[c * rows + r] = x[r * cols + c]!;
  return y;
}

/** fp32 MatMul: Y = A · B with B = Wᵀ [K, N] an initializer. */
export function matmulF32Model(M: number, N: number, K: number, w: Float32Array): Uint8Array {
  const g: Graph = {
    name: 'matmul_f32',
    nodes: [{ opType: 'MatMul', inputs: ['A', 'B'], outputs: ['Y'] }],
    initializers: [f32Tensor('B', [K, N], transpose(w, N, K))],
    inputs: [valueInfo('A', DataType.FLOAT, [M, K])],
    outputs: [valueInfo('Y', DataType.FLOAT, [M, N])],
  };
  return modelBytes(g, DEFAULT_OPSETS);
}

/**
 * ORT's dynamic-quantization pattern (what onnxruntime.quantization.quantize_dynamic emits):
 *   (Aq, sa, za) = DynamicQuantizeLinear(A)        uint8, per tensor, asymmetric
 *   Yi = MatMulInteger(Aq, Bq, za)                 Bq int8 [K, N], symmetric (zero point 0)
 *   Y  = Cast(Yi, float) · sa · sb                 sb [N] per output channel
 * The graph optimizer may fuse this (MatMulIntegerToFloat / DynamicQuantizeMatMul); that is ORT's
 * best path, so it is left on. `codes` are [N, K] int8 weights, `scale` [N].
 */
export function matmulIntegerModel(M: number, N: number, K: number, codes: Int8Array, scale: Float32Array): Uint8Array {
  const bq = new Int8Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) bq[k * N + n] = codes[n * K + k]!;
  const g: Graph = {
    name: 'matmul_integer',
    nodes: [
      { opType: 'DynamicQuantizeLinear', inputs: ['A'], outputs: ['Aq', 'Asc', 'Azp'] },
      { opType: 'MatMulInteger', inputs: ['Aq', 'Bq', 'Azp'], outputs: ['Yi'] },
      { opType: 'Cast', inputs: ['Yi'], outputs: ['Yf'], attrs: { to: int(DataType.FLOAT) } },
      { opType: 'Mul', inputs: ['Yf', 'Asc'], outputs: ['Ya'] },
      { opType: 'Mul', inputs: ['Ya', 'Bsc'], outputs: ['Y'] },
    ],
    initializers: [i8Tensor('Bq', [K, N], bq), f32Tensor('Bsc', [N], scale)],
    inputs: [valueInfo('A', DataType.FLOAT, [M, K])],
    outputs: [valueInfo('Y', DataType.FLOAT, [M, N])],
  };
  return modelBytes(g, DEFAULT_OPSETS);
}

export interface NBitsWeights {
  /** uint8 [N, kBlocks, blockSize / 2] */
  b: Uint8Array;
  /** f32 [N, kBlocks] */
  scales: Float32Array;
  /** packed uint8 [N, ceil(kBlocks / 2)] */
  zeroPoints: Uint8Array;
  kBlocks: number;
}

/**
 * Packs 4-bit codes (one per byte, [N, K], each 0..15) with per-block scales and zero points
 * ([N, kBlocks], kBlocks = ceil(K / blockSize)) into MatMulNBits' B / scales / zero_points.
 * Padding codes of a partial last block are 0 (they multiply padding of A that ORT treats as 0).
 */
export function packNBits4(N: number, K: number, blockSize: number, codes: Uint8Array, scale: Float32Array, zero: Uint8Array): NBitsWeights {
  const kBlocks = Math.ceil(K / blockSize);
  const blob = blockSize / 2;
  const b = new Uint8Array(N * kBlocks * blob);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const q = codes[n * K + k]!;
      if (q > 15) throw new Error(`packNBits4: code ${q} at [${n}, ${k}] is not 4-bit`);
      const blk = Math.floor(k / blockSize), i = k % blockSize;
      const at = (n * kBlocks + blk) * blob + (i >> 1);
      b[at] = b[at]! | (i & 1 ? q << 4 : q);
    }
  }
  const zpRow = Math.ceil(kBlocks / 2);
  const zeroPoints = new Uint8Array(N * zpRow);
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const z = zero[n * kBlocks + blk]!;
      const at = n * zpRow + (blk >> 1);
      zeroPoints[at] = zeroPoints[at]! | (blk & 1 ? z << 4 : z);
    }
  }
  return { b, scales: scale.slice(0, N * kBlocks), zeroPoints, kBlocks };
}

/** com.microsoft MatMulNBits, bits = 4, with packed zero points. */
export function matmulNBitsModel(M: number, N: number, K: number, blockSize: number, w: NBitsWeights, accuracyLevel = 0): Uint8Array {
  const g: Graph = {
    name: 'matmul_nbits',
    nodes: [{
      opType: 'MatMulNBits', domain: 'com.microsoft', inputs: ['A', 'B', 'scales', 'zero_points'], outputs: ['Y'],
      attrs: { K: int(K), N: int(N), bits: int(4), block_size: int(blockSize), accuracy_level: int(accuracyLevel) },
    }],
    initializers: [
      u8Tensor('B', [N, w.kBlocks, blockSize / 2], w.b),
      f32Tensor('scales', [N, w.kBlocks], w.scales),
      u8Tensor('zero_points', [N, Math.ceil(w.kBlocks / 2)], w.zeroPoints),
    ],
    inputs: [valueInfo('A', DataType.FLOAT, [M, K])],
    outputs: [valueInfo('Y', DataType.FLOAT, [M, N])],
  };
  return modelBytes(g, DEFAULT_OPSETS);
}
