// Shared quantization types: schemes, range methods, cluster maps, quantized tensors.
// Formulas (DESIGN.md; round = round-half-to-even, as PyTorch's nearbyint):
//   asymmetric: s = (max − min) / (2^b − 1), z = clamp(round(−min / s), 0, 2^b − 1),
//               q = clamp(round(x / s) + z, 0, 2^b − 1), x' = s · (q − z)
//   symmetric:  s = absmax / (2^(b−1) − 1), z = 0, q = clamp(round(x / s), −(2^(b−1) − 1), 2^(b−1) − 1)

import type { PackedFormat } from './formats.js';

/**
 * A permutation of channels into contiguous clusters (RPTQ, arXiv 2304.01089 §3).
 * `perm[j]` is the original channel placed at position j; cluster c covers positions
 * `offsets[c] .. offsets[c+1]-1`. Invariants (checked by `validateClusterMap`): `perm` is a
 * permutation of 0..n−1, `offsets[0] = 0`, offsets strictly increase, `offsets[k] = n`.
 */
export interface ClusterMap {
  perm: Int32Array;
  offsets: Int32Array;
}

/** Where the quantization range comes from. */
export type RangeMethod =
  /** min and max of the data (range widened to include 0, as GPTQ and PyTorch observers do). */
  | { kind: 'minmax' }
  /** GPTQ's `mse` search: shrink the range by (1 − i/grid)·…, keep the one minimising Σ|x − x'|^norm. */
  | { kind: 'mse'; grid?: number; maxShrink?: number; norm?: number }
  /** The p-th and (100 − p)-th percentiles (p in (50, 100]). */
  | { kind: 'percentile'; p: number };

/** Which elements share one (scale, zero point). Named variants, not sentinels. */
export type Granularity =
  | { kind: 'perTensor' }
  /** One range per index along `axis` (e.g. axis 0 = per output row of a [out, in] weight). */
  | { kind: 'perChannel'; axis: number }
  /** Per row and per group of `groupSize` consecutive elements along the last (input) dim. */
  | { kind: 'perGroup'; groupSize: number }
  /** Dynamic, for activations: one range per token (per row over the last dim), computed at quantize time. */
  | { kind: 'perToken' }
  /** RPTQ activations: one range per channel cluster of the last dim. */
  | { kind: 'perCluster'; clusters: ClusterMap }
  /** RPTQ weights [out, in]: one range per (output row × input-channel cluster). */
  | { kind: 'perRowCluster'; clusters: ClusterMap };

export type Bits = 2 | 3 | 4 | 5 | 6 | 7 | 8;

export interface QuantScheme {
  bits: Bits;
  symmetric: boolean;
  granularity: Granularity;
  /** Default: minmax. */
  range?: RangeMethod;
}

/** Quantization parameters, one slot per (parameter row, segment); see `QuantLayout`. */
export interface QParams {
  /** f32 scales, each finite and > 0. */
  scale: Float32Array;
  /** Zero points in code units (0 .. 2^bits − 1); symmetric schemes store 2^(bits−1). */
  zero: Uint8Array;
}

/**
 * How a granularity maps a tensor onto the kernels' [rows, cols] view (src/kernels/quant.ts):
 * the columns of each row are split into `offsets.length − 1` segments and segment s of row r uses
 * parameter slot (r % rowPeriod) · nSeg + s. `perm` (per-cluster granularities with a non-identity
 * ClusterMap) reorders the last dim: column j of the view is channel perm[j] of the tensor.
 */
export interface QuantLayout {
  rows: number;
  cols: number;
  offsets: Int32Array;
  rowPeriod: number;
  perm: Int32Array | null;
}

/**
 * A quantized tensor: packed codes plus everything needed to dequantize them. `qs` holds
 * [rows, packedRowBytes(format, cols)] bytes in the layout's column order (cluster order for
 * per-cluster schemes, which is what integer kernels consume); `scale`/`zero` have
 * paramRows · nSeg slots (paramRows = 1 when rowPeriod = 1, else rowPeriod).
 * Dequantize: x'[r, j] = scale[p] · (q[r, j] − zero[p]), p = (r % rowPeriod) · nSeg + seg(j).
 */
export interface QuantizedTensor extends QParams, QuantLayout {
  format: PackedFormat;
  scheme: QuantScheme;
  shape: readonly number[];
  qs: Uint8Array;
}
