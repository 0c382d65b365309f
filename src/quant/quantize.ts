// quantize / dequantize: pure functions from a Tensor and a QuantScheme to a QuantizedTensor and
// back, on any backend's Kernels (fused quantize+pack and dequantize kernels in assembly/quant.ts).

import { LowbitError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import type { Kernels } from '../kernels/index.js';
import { withChecks } from '../kernels/index.js';
import { refKernels } from '../ref/index.js';
import { currentBackend } from '../runtime.js';
import { formatForBits, packedBytes } from './formats.js';
import { estimateParams } from './range.js';
import { layoutOf, paramSlots, validateScheme } from './scheme.js';
import type { QParams, QuantizedTensor, QuantLayout, QuantScheme } from './types.js';

export interface QuantizeOptions {
  /** Kernels to run on (default: the backend `init()` chose, else the js reference). */
  kernels?: Kernels;
}

let jsKernels: Kernels | null = null;

/** The current backend's kernels, or the checked js reference before `init()`. */
export function defaultKernels(): Kernels {
  try {
    return currentBackend().kernels;
  } catch (e) {
    if (e instanceof LowbitError && e.code === 'E_NOT_INIT') return (jsKernels ??= withChecks(refKernels()));
    throw e;
  }
}

/** Copies columns into cluster order: out[r, j] = x[r, perm[j]]. */
function gatherColumns(x: Float32Array, rows: number, cols: number, perm: Int32Array): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) out[o + j] = x[o + perm[j]!]!;
  }
  return out;
}

function checkParams(p: QParams, slots: number, bits: number): void {
  if (!(p.scale instanceof Float32Array) || !(p.zero instanceof Uint8Array)) {
    throw new LowbitError('E_ARG', 'params must be {scale: Float32Array, zero: Uint8Array}');
  }
  if (p.scale.length !== slots || p.zero.length !== slots) {
    throw new LowbitError('E_SHAPE', `params: the scheme needs ${slots} (scale, zero) slots, got ${p.scale.length} scales and ${p.zero.length} zeros`);
  }
  const qmax = 2 ** bits - 1;
  for (let i = 0; i < slots; i++) {
    if (!(p.scale[i]! > 0) || p.scale[i] === Infinity) throw new LowbitError('E_ARG', `params.scale[${i}] must be finite and > 0, got ${p.scale[i]}`);
    if (p.zero[i]! > qmax) throw new LowbitError('E_RANGE', `params.zero[${i}] = ${p.zero[i]} is above the largest ${bits}-bit code ${qmax}`);
  }
}

/** The [rows, cols] view of x in layout column order, plus a map from view index to x's flat index. */
function viewOf(x: Tensor, l: QuantLayout): { data: Float32Array; orig: (i: number) => number } {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new LowbitError('E_DTYPE', `quantize: tensor must be f32 or f16, got ${x.dtype}`);
  const flat = (x.dtype === 'f32' ? x.contiguous({ heap: null }) : x.astype('f32', { heap: null })).data as Float32Array;
  if (!l.perm) return { data: flat, orig: (i) => i };
  const perm = l.perm, cols = l.cols;
  return { data: gatherColumns(flat, l.rows, cols, perm), orig: (i) => Math.floor(i / cols) * cols + perm[i % cols]! };
}

/**
 * Parameters for `x` under `scheme` (range from `scheme.range`, default min-max). Throws E_NONFINITE
 * naming the first NaN/±∞ element of x.
 */
export function computeParams(x: Tensor, scheme: QuantScheme, opts: QuantizeOptions = {}): QParams {
  validateScheme(scheme);
  const l = layoutOf(x.shape, scheme.granularity);
  const v = viewOf(x, l);
  return estimateParams(opts.kernels ?? defaultKernels(), v.data, l, scheme.bits, scheme.symmetric, scheme.range ?? { kind: 'minmax' }, v.orig);
}

/**
 * Quantizes `x` (f32 or f16) under `scheme`: q = clamp(round(x / s) + z, 0, 2^b − 1) per element
 * with its slot's (s, z), packed in the format for b bits. `params` (e.g. static, calibrated
 * activation ranges) skips range estimation; without it the range comes from x itself.
 * Never mutates x. The result holds codes, scales, zero points and the layout (cluster map order).
 */
export function quantize(x: Tensor, scheme: QuantScheme, params?: QParams, opts: QuantizeOptions = {}): QuantizedTensor {
  validateScheme(scheme);
  const k = opts.kernels ?? defaultKernels();
  const l = layoutOf(x.shape, scheme.granularity);
  const v = viewOf(x, l);
  const slots = paramSlots(l);
  let p: QParams;
  if (params) {
    checkParams(params, slots, scheme.bits);
    p = { scale: params.scale.slice(), zero: params.zero.slice() };
  } else {
    p = estimateParams(k, v.data, l, scheme.bits, scheme.symmetric, scheme.range ?? { kind: 'minmax' }, v.orig);
  }
  const format = formatForBits(scheme.bits);
  const qs = new Uint8Array(packedBytes(format, l.rows, l.cols));
  k.quantizePack(l.rows, l.cols, v.data, l.offsets.length - 1, l.offsets, p.scale, p.zero, l.rowPeriod, scheme.bits, format, qs);
  return { format, scheme, shape: [...x.shape], qs, scale: p.scale, zero: p.zero, rows: l.rows, cols: l.cols, offsets: l.offsets, rowPeriod: l.rowPeriod, perm: l.perm };
}

/** x' = s · (q − z) for every element, back in the original shape and channel order. */
export function dequantize(q: QuantizedTensor, opts: QuantizeOptions = {}): Tensor {
  const k = opts.kernels ?? defaultKernels();
  const n = q.rows * q.cols;
  if (q.shape.reduce((a, b) => a * b, 1) !== n) throw new LowbitError('E_SHAPE', `dequantize: shape ${fmtShape(q.shape)} does not hold ${q.rows}×${q.cols} codes`);
  const y = new Float32Array(n);
  k.dequantizeUnpack(q.rows, q.cols, q.format, q.qs, q.offsets.length - 1, q.offsets, q.scale, q.zero, q.rowPeriod, y);
  if (!q.perm) return Tensor.fromArray(y, q.shape);
  const out = new Float32Array(n);
  for (let r = 0; r < q.rows; r++) {
    const o = r * q.cols;
    for (let j = 0; j < q.cols; j++) out[o + q.perm[j]!] = y[o + j]!;
  }
  return Tensor.fromArray(out, q.shape);
}

/** dequantize(quantize(x, scheme, params)): the values the quantized tensor represents. */
export function fakeQuantize(x: Tensor, scheme: QuantScheme, params?: QParams, opts: QuantizeOptions = {}): Tensor {
  return dequantize(quantize(x, scheme, params, opts), opts);
}

/** The codes of q, one per byte, [rows, cols] in layout column order. */
export function codesOf(q: QuantizedTensor, opts: QuantizeOptions = {}): Uint8Array {
  const out = new Uint8Array(q.rows * q.cols);
  (opts.kernels ?? defaultKernels()).unpackCodes(q.rows, q.cols, q.format, q.qs, out);
  return out;
}

/** Bytes the quantized tensor occupies: packed codes + scales + zero points (+ the cluster permutation). */
export function quantizedByteLength(q: QuantizedTensor): number {
  return q.qs.byteLength + q.scale.byteLength + q.zero.byteLength + (q.perm ? q.perm.byteLength + q.offsets.byteLength : 0);
}
