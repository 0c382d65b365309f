// GPTQ for one linear layer (arXiv 2210.17323), transcribing IST-DASLab/gptq gptq.py `GPTQ.fasterquant`:
// dead columns, static groups, act-order, damping, the upper Cholesky factor of H⁻¹, then blocks of
// columns quantized one by one with the error (w − q) / Hinv[i,i] spread over the block's later
// columns, and lazily (one GEMM per block) over the columns after it. A pure function: the weight,
// the Hessian and the options go in, codes, parameters, the dequantized weight and statistics come out.

import { LowbitError } from '../../errors.js';
import type { Kernels } from '../../kernels/index.js';
import { checkBits, formatForBits, packedBytes } from '../formats.js';
import { quantizeValue, dequantizeValue } from '../round.js';
import type { QuantizedTensor, QuantScheme } from '../types.js';
import { defaultKernels } from '../quantize.js';
import type { Hessian } from './hessian.js';
import { findParams, type MseSearch } from './quantizer.js';

const f = Math.fround;

export interface GPTQOptions {
  /** Code width, 2..8. */
  bits: number;
  /** GPTQ's symmetric quantizer (s = 2·absmax / (2^b − 1), z = 2^(b−1)). Default false (opt.py without --sym). */
  symmetric?: boolean;
  /** Columns per group, each group with its own (scale, zero) per row, recomputed at the group's start. Absent: one per row (the reference's groupsize = −1). Must divide the columns. */
  groupSize?: number;
  /**
   * Groups of unequal widths instead of `groupSize`: nGroups + 1 increasing column offsets from 0 to cols (e.g. RPTQ's
   * input clusters after folding, which makes the grid per row × input cluster). Each group's parameters are
   * recomputed at its first column as with `groupSize`; equal offsets give groupSize's result bit for bit. With
   * act-order they need `staticGroups` (the groups are of the original column order).
   */
  groupOffsets?: Int32Array;
  /** Quantize columns in order of descending diag(H) (the reference's --act-order); the permutation is undone in the result. */
  actOrder?: boolean;
  /** With groups: compute every group's parameters up front from the (dead-column-zeroed) weight, in the original column order (--static-groups). */
  staticGroups?: boolean;
  /** Columns per lazy-update block (default 128). The result does not depend on it except through rounding. */
  blockSize?: number;
  /** Damping: H[i,i] += percDamp · mean(diag H) (default 0.01). */
  percDamp?: number;
  /**
   * When H + damp·I is not positive definite, retry with the damping multiplied by 10 up to this many
   * times (default 3: percDamp 0.01 → 0.1 → 1 → 10), then throw E_NUMERIC naming the layer.
   */
  maxDampRetries?: number;
  /** GPTQ's MSE clipping search in find_params (quant.py mse=True). Default off, as opt.py. */
  mse?: boolean | MseSearch;
  /** Layer name for error messages and results (e.g. 'layers.3.fc2'). */
  name?: string;
  /** Kernels for the f64 inverse (upperCholInvF64) and the lazy-update GEMMs (default: the current backend, else the js reference). */
  kernels?: Kernels;
}

export interface GPTQResult {
  /** Codes and parameters in lowbit's own form (per-row, per-group, or per-row-cluster with the act-order permutation). */
  quantized: QuantizedTensor;
  /** (rows, cols) the dequantized weight in the original column order: what a W·A16 layer computes with. */
  dequantized: Float32Array;
  /** Act-order permutation: column perm[j] of W was quantized j-th; null without act-order. */
  perm: Int32Array | null;
  /** AutoGPTQ's g_idx: (cols) group of each original column (0 everywhere without groups). */
  gIdx: Int32Array;
  /** (rows · nGroups) scales, slot r · nGroups + g with g the g_idx group. */
  scale: Float32Array;
  /** (rows · nGroups) integer zero points 0 .. 2^bits − 1. */
  zero: Uint8Array;
  nGroups: number;
  /** The reference's `torch.sum(Losses)`: Σ (w − q)² / Hinv[i,i]² / 2. */
  loss: number;
  /** Damping actually added to the diagonal, and the percDamp it came from (after retries). */
  damp: number;
  percDamp: number;
  dampRetries: number;
  /** Columns whose diag(H) was 0 (weights zeroed, as the reference does). */
  deadColumns: number;
  rows: number;
  cols: number;
  bits: number;
  symmetric: boolean;
  groupSize: number | null;
  /** The groups' column offsets (nGroups + 1; from groupOffsets, or every groupSize columns); null without groups. */
  groupOffsets: Int32Array | null;
  actOrder: boolean;
  staticGroups: boolean;
}

function checkOptions(o: GPTQOptions, rows: number, cols: number, what: string): void {
  checkBits(o.bits, `${what}: bits`);
  if (o.groupSize !== undefined) {
    if (!Number.isSafeInteger(o.groupSize) || o.groupSize < 1) throw new LowbitError('E_ARG', `${what}: groupSize must be a positive integer, got ${o.groupSize}`);
    if (cols % o.groupSize !== 0) {
      throw new LowbitError('E_ARG', `${what}: groupSize ${o.groupSize} does not divide the ${cols} columns (pick a divisor)`, { layer: o.name, groupSize: o.groupSize, cols });
    }
  }
  const go = o.groupOffsets;
  if (go !== undefined) {
    if (o.groupSize !== undefined) throw new LowbitError('E_ARG', `${what}: give groupSize or groupOffsets, not both`);
    if (!(go instanceof Int32Array) || go.length < 2 || go[0] !== 0 || go[go.length - 1] !== cols) {
      throw new LowbitError('E_ARG', `${what}: groupOffsets must be an Int32Array of at least 2 offsets from 0 to the ${cols} columns`, { layer: o.name });
    }
    for (let g = 0; g + 1 < go.length; g++) {
      if (!(go[g + 1]! > go[g]!)) throw new LowbitError('E_ARG', `${what}: groupOffsets[${g + 1}] = ${go[g + 1]} does not exceed groupOffsets[${g}] = ${go[g]} (empty or decreasing group)`, { layer: o.name, group: g });
    }
    if (o.actOrder && !o.staticGroups) throw new LowbitError('E_ARG', `${what}: act-order with groupOffsets needs staticGroups (the groups are of the original column order)`, { layer: o.name });
  }
  if (o.staticGroups && o.groupSize === undefined && go === undefined) throw new LowbitError('E_ARG', `${what}: staticGroups needs a groupSize or groupOffsets`);
  const bs = o.blockSize ?? 128;
  if (!Number.isSafeInteger(bs) || bs < 1) throw new LowbitError('E_ARG', `${what}: blockSize must be a positive integer, got ${bs}`);
  const pd = o.percDamp ?? 0.01;
  if (!(pd >= 0) || !Number.isFinite(pd)) throw new LowbitError('E_ARG', `${what}: percDamp must be finite and >= 0, got ${pd}`);
  const mr = o.maxDampRetries ?? 3;
  if (!Number.isSafeInteger(mr) || mr < 0) throw new LowbitError('E_ARG', `${what}: maxDampRetries must be a non-negative integer, got ${mr}`);
  if (!Number.isSafeInteger(rows) || rows < 1 || !Number.isSafeInteger(cols) || cols < 1) {
    throw new LowbitError('E_SHAPE', `${what}: weight must be a non-empty [rows, cols] matrix, got [${rows}, ${cols}]`);
  }
}

/** Stable argsort of `d` descending (ties keep column order; torch.argsort's tie order is unspecified). */
function argsortDesc(d: ArrayLike<number>): Int32Array {
  const idx = Array.from({ length: d.length }, (_, i) => i);
  idx.sort((a, b) => (d[b]! - d[a]!) || (a - b));
  return Int32Array.from(idx);
}

/**
 * GPTQ-quantizes the weight W (rows × cols, row-major [out, in], f32) with the Hessian of its inputs.
 * W and H are not modified. Throws E_NONFINITE for NaN/±∞ in H or W, E_SHAPE when H's size is not
 * cols, E_ARG for bad options (a groupSize that does not divide cols), and E_NUMERIC naming the layer
 * when H + damp·I stays non-positive-definite after `maxDampRetries` increases of the damping.
 */
export function gptqQuantize(weight: Float32Array, rows: number, cols: number, hessian: Hessian, opts: GPTQOptions): GPTQResult {
  const name = opts.name ?? 'weight';
  const what = `gptq(${name})`;
  checkOptions(opts, rows, cols, what);
  if (weight.length !== rows * cols) throw new LowbitError('E_SHAPE', `${what}: weight holds ${weight.length} values, [${rows}, ${cols}] needs ${rows * cols}`);
  if (hessian.cols !== cols || hessian.h.length !== cols * cols) {
    throw new LowbitError('E_SHAPE', `${what}: the Hessian is ${hessian.cols} × ${hessian.cols}, the weight has ${cols} columns`);
  }
  const k = opts.kernels ?? defaultKernels();
  const bits = opts.bits, sym = opts.symmetric ?? false, maxq = 2 ** bits - 1;
  const gs = opts.groupSize ?? null, actOrder = opts.actOrder ?? false, staticGroups = opts.staticGroups ?? false;
  const B = opts.blockSize ?? 128;
  const mse: MseSearch | null = opts.mse ? (opts.mse === true ? {} : opts.mse) : null;
  // groups as column offsets (equal groups of gs, or the caller's); colGroup[c]: the group of column c
  const offs: Int32Array | null = opts.groupOffsets ? opts.groupOffsets.slice() : gs !== null ? Int32Array.from({ length: cols / gs + 1 }, (_, g) => g * gs) : null;
  const nG = offs ? offs.length - 1 : 1;
  const colGroup = new Int32Array(cols);
  if (offs) for (let g = 0; g < nG; g++) colGroup.fill(g, offs[g]!, offs[g + 1]!);

  for (let i = 0; i < weight.length; i++) {
    if (!Number.isFinite(weight[i]!)) throw new LowbitError('E_NONFINITE', `${what}: weight element ${i} (row ${Math.floor(i / cols)}, column ${i % cols}) is ${weight[i]}`, { layer: name, index: i });
  }
  const H = hessian.h.slice();
  for (let i = 0; i < H.length; i++) {
    if (!Number.isFinite(H[i]!)) {
      throw new LowbitError('E_NONFINITE', `${what}: Hessian entry [${Math.floor(i / cols)}, ${i % cols}] is ${H[i]} (non-finite calibration inputs?)`, { layer: name, index: i });
    }
  }
  const W = weight.slice();

  // ---- per-row parameters without groups: find_params on the original W (before dead columns are zeroed)
  const scale = new Float32Array(rows * nG), zero = new Uint8Array(rows * nG);
  if (!offs) findParams(W, rows, cols, 0, cols, bits, sym, mse, scale, zero);

  // ---- dead columns: H[i,i] = 1, W[:, i] = 0
  let deadColumns = 0;
  for (let i = 0; i < cols; i++) {
    if (H[i * cols + i] === 0) {
      H[i * cols + i] = 1;
      deadColumns++;
      for (let r = 0; r < rows; r++) W[r * cols + i] = 0;
    }
  }

  // ---- static groups: every group's parameters from the zeroed W, original column order
  if (offs && staticGroups) {
    for (let g = 0; g < nG; g++) findParams(W, rows, cols, offs[g]!, offs[g + 1]! - offs[g]!, bits, sym, mse, scale, zero, nG, g);
  }

  // ---- act-order: permute W's columns and H by descending diag(H)
  let perm: Int32Array | null = null;
  let Wp = W, Hp = H;
  if (actOrder) {
    const diag = new Float64Array(cols);
    for (let i = 0; i < cols; i++) diag[i] = H[i * cols + i]!;
    perm = argsortDesc(diag);
    Wp = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) Wp[r * cols + j] = W[r * cols + perm[j]!]!;
    Hp = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) {
      const src = perm[i]! * cols, dst = i * cols;
      for (let j = 0; j < cols; j++) Hp[dst + j] = H[src + perm[j]!]!;
    }
  }

  // ---- damping (with retries), then U = upper Cholesky factor of H⁻¹ (f64, the backend's linalg kernels),
  // rounded to f32 as the reference keeps it
  let mean = 0;
  for (let i = 0; i < cols; i++) mean += Hp[i * cols + i]!;
  mean /= cols;
  const maxRetries = opts.maxDampRetries ?? 3;
  let pd = opts.percDamp ?? 0.01, damp = 0, retries = 0;
  let U: Float64Array | null = null, failedRow = -1;
  const Hd = new Float64Array(cols * cols);
  for (;;) {
    damp = pd * mean;
    Hd.set(Hp);
    for (let i = 0; i < cols; i++) Hd[i * cols + i]! += damp;
    // in place on the backend's kernels: Hd becomes U
    failedRow = k.upperCholInvF64(cols, Hd, Hd);
    if (failedRow < 0) { U = Hd; break; }
    if (retries >= maxRetries) {
      const col = perm ? perm[failedRow]! : failedRow;
      throw new LowbitError('E_NUMERIC', `${what}: the Hessian is not positive definite even with damping ${pd} · mean(diag H) = ${damp} `
        + `(after ${retries} retries, each ×10; pivot of column ${col} failed). Use more calibration data or a larger percDamp.`, { layer: name, percDamp: pd, column: col });
    }
    retries++;
    pd *= 10;
  }
  const Hinv = new Float32Array(cols * cols);
  for (let i = 0; i < Hinv.length; i++) Hinv[i] = U[i]!;
  U = null;

  // ---- the column loop
  const codes = new Uint8Array(rows * cols); // (rows, cols) in processing (permuted) order
  const Q = new Float32Array(rows * cols); // (rows, cols) dequantized, processing order
  const W1 = new Float32Array(rows * B); // (rows, B) the current block
  const Err1 = new Float32Array(rows * B); // (rows, B)
  const upd = new Float32Array(rows * cols); // (rows, cols − i2) lazy update Err1 · Hinv[i1:i2, i2:]
  const hrow = new Float32Array(B * cols); // (count, cols − i2) Hinv[i1:i2, i2:]
  let loss = 0;
  const slotOf = new Int32Array(B); // group slot of each column of the block
  for (let i1 = 0; i1 < cols; i1 += B) {
    const i2 = Math.min(i1 + B, cols), count = i2 - i1;
    // dynamic groups starting in this block: find_params reads W (not W1), which the block does not change
    // until its lazy update, so all of them can be computed here from W's state at the block start
    // (for a group starting inside the block this is the reference's own quirk: it misses the block's in-block updates).
    if (offs && !staticGroups) {
      for (let c = i1; c < i2; c++) {
        const g = colGroup[c]!;
        if (c === offs[g]) findParams(Wp, rows, cols, c, offs[g + 1]! - c, bits, sym, mse, scale, zero, nG, g);
      }
    }
    for (let i = 0; i < count; i++) {
      const c = i1 + i;
      slotOf[i] = !offs ? 0 : staticGroups ? colGroup[perm ? perm[c]! : c]! : colGroup[c]!;
    }
    for (let r = 0; r < rows; r++) {
      const wo = r * cols + i1, bo = r * B;
      for (let i = 0; i < count; i++) W1[bo + i] = Wp[wo + i]!;
      for (let i = 0; i < count; i++) {
        const c = i1 + i, hi = c * cols;
        const d = Hinv[hi + c]!;
        const p = r * nG + slotOf[i]!;
        const s = scale[p]!, z = zero[p]!;
        const w = W1[bo + i]!;
        const code = quantizeValue(w, s, z, maxq);
        const q = dequantizeValue(code, s, z);
        codes[r * cols + c] = code;
        Q[r * cols + c] = q;
        const e = f(w - q);
        loss += f(f(e * e) / f(d * d)) / 2;
        const err = f(e / d);
        Err1[bo + i] = err;
        for (let j = i + 1; j < count; j++) W1[bo + j] = f(W1[bo + j]! - f(err * Hinv[hi + i1 + j]!));
      }
    }
    // W[:, i2:] −= Err1 · Hinv[i1:i2, i2:]
    const rest = cols - i2;
    if (rest > 0) {
      for (let i = 0; i < count; i++) hrow.set(Hinv.subarray((i1 + i) * cols + i2, (i1 + i) * cols + cols), i * rest);
      k.sgemmNN(rows, rest, count, Err1, B, hrow, rest, upd, rest, null);
      for (let r = 0; r < rows; r++) {
        const wo = r * cols + i2, uo = r * rest;
        for (let j = 0; j < rest; j++) Wp[wo + j] = f(Wp[wo + j]! - upd[uo + j]!);
      }
    }
  }

  // ---- results in the original column order (lowbit's tensor keeps processing order for act-order groups)
  const dequantized = new Float32Array(rows * cols);
  const gIdx = new Int32Array(cols);
  if (perm) {
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) dequantized[r * cols + perm[j]!] = Q[r * cols + j]!;
    for (let j = 0; j < cols; j++) gIdx[perm[j]!] = !offs ? 0 : staticGroups ? colGroup[perm[j]!]! : colGroup[j]!;
  } else {
    dequantized.set(Q);
    gIdx.set(colGroup);
  }
  const dynamicPerm = perm !== null && offs !== null && !staticGroups;
  let layoutCodes = codes;
  if (perm && !dynamicPerm) {
    layoutCodes = new Uint8Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) layoutCodes[r * cols + perm[j]!] = codes[r * cols + j]!;
  }
  const quantized = buildTensor(k, layoutCodes, rows, cols, bits, sym, gs, dynamicPerm ? perm : null, scale, zero, opts.groupOffsets ? offs : null);
  return {
    quantized, dequantized, perm, gIdx, scale, zero, nGroups: nG, loss, damp, percDamp: pd, dampRetries: retries, deadColumns,
    rows, cols, bits, symmetric: sym, groupSize: gs, groupOffsets: offs, actOrder, staticGroups,
  };
}

/**
 * lowbit's QuantizedTensor for GPTQ codes: per row (perChannel axis 0), per group (perGroup), per (row × group of
 * unequal widths, `groupOffsets`) as perRowCluster with the identity permutation (the tensor RTN makes on RPTQ's
 * grid), or, for act-order with dynamic groups, per (row × contiguous group of the permuted columns) with the
 * permutation as the cluster map (perRowCluster), which is exactly how those groups are laid out.
 */
export function buildTensor(k: Kernels, codes: Uint8Array, rows: number, cols: number, bits: number, sym: boolean, gs: number | null,
  perm: Int32Array | null, scale: Float32Array, zero: Uint8Array, groupOffsets: Int32Array | null = null): QuantizedTensor {
  const nG = groupOffsets ? groupOffsets.length - 1 : gs === null ? 1 : cols / gs;
  const offsets = groupOffsets ?? Int32Array.from({ length: nG + 1 }, (_, g) => (gs === null ? (g ? cols : 0) : g * gs));
  const identity = () => Int32Array.from({ length: cols }, (_, i) => i);
  const scheme: QuantScheme = {
    bits: bits as QuantScheme['bits'], symmetric: sym,
    granularity: groupOffsets ? { kind: 'perRowCluster', clusters: { perm: perm ?? identity(), offsets } }
      : gs === null ? { kind: 'perChannel', axis: 0 } : perm ? { kind: 'perRowCluster', clusters: { perm, offsets } } : { kind: 'perGroup', groupSize: gs },
  };
  const format = formatForBits(bits);
  const qs = new Uint8Array(packedBytes(format, rows, cols));
  k.packCodes(rows, cols, format, codes, qs);
  return { format, scheme, shape: [rows, cols], qs, scale, zero, rows, cols, offsets, rowPeriod: rows, perm };
}

/**
 * Round-to-nearest with GPTQ's quantizer, the baseline GPTQ is compared with (opt.py `--nearest`:
 * find_params on each row (or group) of W, then quantize). Returns the dequantized (rows, cols) weight.
 */
export function rtnQuantize(weight: Float32Array, rows: number, cols: number,
  opts: { bits: number; symmetric?: boolean; groupSize?: number; mse?: boolean | MseSearch }): Float32Array {
  checkOptions({ ...opts, name: 'rtn' }, rows, cols, 'rtn');
  const gs = opts.groupSize ?? cols, nG = cols / gs, maxq = 2 ** opts.bits - 1, sym = opts.symmetric ?? false;
  const mse = opts.mse ? (opts.mse === true ? {} : opts.mse) : null;
  const scale = new Float32Array(rows * nG), zero = new Uint8Array(rows * nG);
  for (let g = 0; g < nG; g++) findParams(weight, rows, cols, g * gs, gs, opts.bits, sym, mse, scale, zero, nG, g);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const p = r * nG + Math.floor(j / gs);
      out[r * cols + j] = dequantizeValue(quantizeValue(weight[r * cols + j]!, scale[p]!, zero[p]!, maxq), scale[p]!, zero[p]!);
    }
  }
  return out;
}
