// Folding RPTQ channel permutations into LayerNorm and linear weights, and the R1..R5 fold of an OPT decoder layer (arXiv 2304.01089 §3.2; RPTQ4LLM quantize/opt_reorder_quantize.py `R1_reorder`..`R5_reorder`).
//
// A permutation `perm` reorders channels as `index_select(·, dim, perm)`: position j of the result
// holds original channel perm[j]. Every function here is pure: it returns new arrays and never
// mutates its input. Weights use the Hugging Face layout [out, in], row-major.

import { LowbitError } from '../../errors.js';
import type { ClusterMap } from '../types.js';
import { validateClusterMap, validateHeadLocal, validatePerm } from './cluster-map.js';

function needLen(fn: string, name: string, a: Float32Array, len: number, shape: string): void {
  if (!(a instanceof Float32Array)) throw new LowbitError('E_ARG', `${fn}: ${name} must be a Float32Array`);
  if (a.length !== len) throw new LowbitError('E_SHAPE', `${fn}: ${name} has ${a.length} elements, expected ${shape} = ${len}`);
}

/** out[j] = v[perm[j]] (a LayerNorm gamma or beta, a bias, any per-channel vector). */
export function permuteVector(v: Float32Array, perm: Int32Array): Float32Array {
  validatePerm(perm, perm?.length ?? 0, 'permuteVector');
  needLen('permuteVector', 'v', v, perm.length, '[perm.length]');
  const out = new Float32Array(perm.length);
  for (let j = 0; j < perm.length; j++) out[j] = v[perm[j]!]!;
  return out;
}

/**
 * The reorder-LayerNorm (RPTQ4LLM `ReorderLayerNorm`, whose CUDA kernel writes to `dst_index`): a
 * LayerNorm whose output comes out permuted, y'[j] = y[perm[j]]. Mean and variance do not depend on
 * channel order, so y' = LN(x[..., inputPerm]) · γ' + β' with γ' = γ[perm], β' = β[perm] and
 * inputPerm = perm. Permuting γ/β alone is NOT enough: LN(x)·γ' + β' keeps x̂ in the original order
 * and mixes channels (test/rptq-fold.test.ts shows the counterexample), so the LayerNorm must read
 * its input through `inputPerm` (`gatherColumns`; fused into the LN kernel in the paper). The input
 * itself, the residual stream, is never permuted. `beta` may be null (no bias).
 */
export function permuteLayerNorm(gamma: Float32Array, beta: Float32Array | null, perm: Int32Array):
  { gamma: Float32Array; beta: Float32Array | null; inputPerm: Int32Array } {
  return { gamma: permuteVector(gamma, perm), beta: beta === null ? null : permuteVector(beta, perm), inputPerm: perm.slice() };
}

/** out[t, j] = x[t, perm[j]] for x [rows, perm.length] row-major: the permuted read of a reorder-LayerNorm's input. */
export function gatherColumns(x: Float32Array, rows: number, perm: Int32Array): Float32Array {
  const fn = 'gatherColumns';
  const n = perm?.length ?? 0;
  validatePerm(perm, n, fn);
  if (!Number.isSafeInteger(rows) || rows < 0) throw new LowbitError('E_ARG', `${fn}: rows must be a non-negative integer, got ${String(rows)}`);
  needLen(fn, 'x', x, rows * n, `[${rows}, ${n}]`);
  const out = new Float32Array(rows * n); // [rows, n]
  for (let t = 0; t < rows; t++) {
    const o = t * n;
    for (let j = 0; j < n; j++) out[o + j] = x[o + perm[j]!]!;
  }
  return out;
}

/**
 * A consumer whose input arrives permuted: weight [out, in] with columns reordered,
 * w'[o, j] = w[o, perm[j]], so w'·(x permuted) = w·x. `perm.length` must be `inDim`.
 */
export function permuteInputColumns(w: Float32Array, outDim: number, inDim: number, perm: Int32Array): Float32Array {
  const fn = 'permuteInputColumns';
  validatePerm(perm, inDim, fn);
  needLen(fn, 'weight', w, outDim * inDim, `[${outDim}, ${inDim}]`);
  const out = new Float32Array(outDim * inDim); // [out, in]
  for (let o = 0; o < outDim; o++) {
    const r = o * inDim;
    for (let j = 0; j < inDim; j++) out[r + j] = w[r + perm[j]!]!;
  }
  return out;
}

/**
 * A producer whose output is to come out permuted: weight [out, in] rows and bias [out] reordered,
 * w'[j, :] = w[perm[j], :], b'[j] = b[perm[j]]. `perm.length` must be `outDim`; bias may be null.
 */
export function permuteOutputRows(w: Float32Array, bias: Float32Array | null, outDim: number, inDim: number,
  perm: Int32Array): { weight: Float32Array; bias: Float32Array | null } {
  const fn = 'permuteOutputRows';
  validatePerm(perm, outDim, fn);
  needLen(fn, 'weight', w, outDim * inDim, `[${outDim}, ${inDim}]`);
  if (bias !== null) needLen(fn, 'bias', bias, outDim, `[${outDim}]`);
  const weight = new Float32Array(outDim * inDim); // [out, in]
  for (let j = 0; j < outDim; j++) weight.set(w.subarray(perm[j]! * inDim, (perm[j]! + 1) * inDim), j * inDim);
  return { weight, bias: bias === null ? null : permuteVector(bias, perm) };
}

// ---------------------------------------------------------------------------------------------
// OPT decoder layer
// ---------------------------------------------------------------------------------------------

/** One OPT decoder layer's float weights (HF names in comments), [out, in] row-major. */
export interface OptLayerWeights {
  ln1Gamma: Float32Array; // [dim]            self_attn_layer_norm.weight
  ln1Beta: Float32Array; // [dim]             self_attn_layer_norm.bias
  qW: Float32Array; // [dim, dim]             self_attn.q_proj.weight
  qB: Float32Array; // [dim]                  self_attn.q_proj.bias
  kW: Float32Array; // [dim, dim]             self_attn.k_proj.weight
  kB: Float32Array; // [dim]                  self_attn.k_proj.bias
  vW: Float32Array; // [dim, dim]             self_attn.v_proj.weight
  vB: Float32Array; // [dim]                  self_attn.v_proj.bias
  oW: Float32Array; // [dim, dim]             self_attn.out_proj.weight
  oB: Float32Array; // [dim]                  self_attn.out_proj.bias
  ln2Gamma: Float32Array; // [dim]            final_layer_norm.weight
  ln2Beta: Float32Array; // [dim]             final_layer_norm.bias
  fc1W: Float32Array; // [hiddenDim, dim]     fc1.weight
  fc1B: Float32Array; // [hiddenDim]          fc1.bias
  fc2W: Float32Array; // [dim, hiddenDim]     fc2.weight
  fc2B: Float32Array; // [dim]                fc2.bias
  /**
   * [dim] reorder-LayerNorm input index of self_attn_layer_norm (set by R1): the LN computes
   * LN(x[..., ln1InputPerm]) · ln1Gamma + ln1Beta. Absent or null: a plain LayerNorm.
   */
  ln1InputPerm?: Int32Array | null;
  /** [dim] the same for final_layer_norm (set by R4). */
  ln2InputPerm?: Int32Array | null;
}

/** The Float32Array fields of OptLayerWeights. */
export type OptWeightKey = Exclude<keyof OptLayerWeights, 'ln1InputPerm' | 'ln2InputPerm'>;

export interface OptLayerDims {
  dim: number;
  nHeads: number;
  hiddenDim: number;
  /**
   * OPT's `do_layer_norm_before` (true for every OPT but opt-350m). R1 and R4 fold into a LayerNorm
   * whose output feeds only the projections, which holds only for pre-LN layers; a post-LN layer
   * with r1 or r4 is E_UNSUPPORTED. Default true.
   */
  layerNormBefore?: boolean;
}

/** The five RPTQ reorders of a layer; each is optional (the reference's `--reorder 12345`). */
export interface OptLayerMaps {
  /** [dim] output of self_attn_layer_norm. */
  r1?: ClusterMap;
  /** [dim] outputs of q_proj and k_proj (one map for both); must stay within each head. */
  r2?: ClusterMap;
  /** [dim] attention output = input of out_proj; must stay within each head. */
  r3?: ClusterMap;
  /** [dim] output of final_layer_norm. */
  r4?: ClusterMap;
  /** [hiddenDim] output of fc1 = input of fc2 (ReLU is elementwise). */
  r5?: ClusterMap;
}

/**
 * Folds RPTQ's reorders into one OPT decoder layer (pure: every returned array is new). With all
 * five maps the layer's output is unchanged up to float summation order, provided the decoder
 * applies `ln1InputPerm` / `ln2InputPerm` (a column gather of the LayerNorm input; R1 and R4 cannot
 * live in weights alone):
 *
 * - R1 (self_attn_layer_norm out): ln1 γ/β permuted and `ln1InputPerm` set (the LayerNorm reads the
 *   unpermuted residual through it, see `permuteLayerNorm`); q/k/v_proj input columns permuted.
 * - R2 (q_proj, k_proj out): rows and biases of q_proj and k_proj permuted by the same map. It must
 *   stay within each head: per head, q·kᵀ = Σ_c q_c k_c is invariant when q and k share the order.
 * - R3 (attention out = out_proj in): v_proj rows and bias permuted; out_proj input columns permuted.
 *   Attention mixes v over tokens per channel (o[h,c] = Σ_s p_h[s] v[s,h,c]), so the order carries
 *   through as long as the map stays within each head (p depends on the head).
 * - R4 (final_layer_norm out): ln2 γ/β permuted and `ln2InputPerm` set; fc1 input columns permuted.
 * - R5 (fc2 in): fc1 rows and bias permuted; fc2 input columns permuted.
 *
 * Untouched by design: out_proj rows and bias and fc2 rows and bias (their outputs join the
 * residual stream, which is never permuted), and the residual itself. A layer folded again composes
 * the LayerNorm input indices (new[j] = old[perm[j]]).
 * q_proj/k_proj take R1 on columns and R2 on rows; v_proj takes R1 on columns and R3 on rows.
 *
 * Errors: E_ARG for bad dims or maps (invalid ClusterMap, R2/R3 crossing a head), E_SHAPE for a
 * weight of the wrong length (naming it), E_UNSUPPORTED for r1/r4 on a post-LN layer.
 */
export function foldOptLayer(w: OptLayerWeights, dims: OptLayerDims, maps: OptLayerMaps): OptLayerWeights {
  const fn = 'foldOptLayer';
  const { dim, nHeads, hiddenDim } = dims ?? ({} as OptLayerDims);
  for (const [name, v] of [['dim', dim], ['nHeads', nHeads], ['hiddenDim', hiddenDim]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new LowbitError('E_ARG', `${fn}: dims.${name} must be a positive integer, got ${String(v)}`);
  }
  if (dim % nHeads !== 0) throw new LowbitError('E_ARG', `${fn}: dims.dim ${dim} is not a multiple of nHeads ${nHeads}`);
  const headSize = dim / nHeads;
  const shapes: Record<OptWeightKey, [number, string]> = {
    ln1Gamma: [dim, `[${dim}]`], ln1Beta: [dim, `[${dim}]`],
    qW: [dim * dim, `[${dim}, ${dim}]`], qB: [dim, `[${dim}]`],
    kW: [dim * dim, `[${dim}, ${dim}]`], kB: [dim, `[${dim}]`],
    vW: [dim * dim, `[${dim}, ${dim}]`], vB: [dim, `[${dim}]`],
    oW: [dim * dim, `[${dim}, ${dim}]`], oB: [dim, `[${dim}]`],
    ln2Gamma: [dim, `[${dim}]`], ln2Beta: [dim, `[${dim}]`],
    fc1W: [hiddenDim * dim, `[${hiddenDim}, ${dim}]`], fc1B: [hiddenDim, `[${hiddenDim}]`],
    fc2W: [dim * hiddenDim, `[${dim}, ${hiddenDim}]`], fc2B: [dim, `[${dim}]`],
  };
  if (!w || typeof w !== 'object') throw new LowbitError('E_ARG', `${fn}: weights must be an object of Float32Arrays`);
  for (const key of Object.keys(shapes) as OptWeightKey[]) needLen(fn, key, w[key], ...shapes[key]);

  const { r1, r2, r3, r4, r5 } = maps ?? {};
  if ((dims.layerNormBefore ?? true) === false && (r1 || r4)) {
    throw new LowbitError('E_UNSUPPORTED', `${fn}: R1/R4 fold into a pre-LN layer's LayerNorm; this layer is post-LN (layerNormBefore = false)`);
  }
  if (r1) validateClusterMap(r1, dim, `${fn}: maps.r1`);
  if (r2) validateHeadLocal(r2, nHeads, headSize, `${fn}: maps.r2`);
  if (r3) validateHeadLocal(r3, nHeads, headSize, `${fn}: maps.r3`);
  if (r4) validateClusterMap(r4, dim, `${fn}: maps.r4`);
  if (r5) validateClusterMap(r5, hiddenDim, `${fn}: maps.r5`);

  const out: OptLayerWeights = {
    ln1Gamma: w.ln1Gamma.slice(), ln1Beta: w.ln1Beta.slice(),
    qW: w.qW.slice(), qB: w.qB.slice(), kW: w.kW.slice(), kB: w.kB.slice(),
    vW: w.vW.slice(), vB: w.vB.slice(), oW: w.oW.slice(), oB: w.oB.slice(),
    ln2Gamma: w.ln2Gamma.slice(), ln2Beta: w.ln2Beta.slice(),
    fc1W: w.fc1W.slice(), fc1B: w.fc1B.slice(), fc2W: w.fc2W.slice(), fc2B: w.fc2B.slice(),
    ln1InputPerm: w.ln1InputPerm ? w.ln1InputPerm.slice() : null,
    ln2InputPerm: w.ln2InputPerm ? w.ln2InputPerm.slice() : null,
  };
  if (r1) {
    out.ln1Gamma = permuteVector(out.ln1Gamma, r1.perm);
    out.ln1Beta = permuteVector(out.ln1Beta, r1.perm);
    out.ln1InputPerm = composePerm(out.ln1InputPerm, r1.perm, dim, `${fn}: weights.ln1InputPerm`);
    out.qW = permuteInputColumns(out.qW, dim, dim, r1.perm);
    out.kW = permuteInputColumns(out.kW, dim, dim, r1.perm);
    out.vW = permuteInputColumns(out.vW, dim, dim, r1.perm);
  }
  if (r2) {
    const q = permuteOutputRows(out.qW, out.qB, dim, dim, r2.perm);
    const k = permuteOutputRows(out.kW, out.kB, dim, dim, r2.perm);
    out.qW = q.weight; out.qB = q.bias!;
    out.kW = k.weight; out.kB = k.bias!;
  }
  if (r3) {
    const v = permuteOutputRows(out.vW, out.vB, dim, dim, r3.perm);
    out.vW = v.weight; out.vB = v.bias!;
    out.oW = permuteInputColumns(out.oW, dim, dim, r3.perm);
  }
  if (r4) {
    out.ln2Gamma = permuteVector(out.ln2Gamma, r4.perm);
    out.ln2Beta = permuteVector(out.ln2Beta, r4.perm);
    out.ln2InputPerm = composePerm(out.ln2InputPerm, r4.perm, dim, `${fn}: weights.ln2InputPerm`);
    out.fc1W = permuteInputColumns(out.fc1W, hiddenDim, dim, r4.perm);
  }
  if (r5) {
    const f = permuteOutputRows(out.fc1W, out.fc1B, hiddenDim, dim, r5.perm);
    out.fc1W = f.weight; out.fc1B = f.bias!;
    out.fc2W = permuteInputColumns(out.fc2W, dim, hiddenDim, r5.perm);
  }
  return out;
}

/** The input index after applying `perm` on top of an existing one (null = identity): out[j] = prev[perm[j]]. */
function composePerm(prev: Int32Array | null | undefined, perm: Int32Array, n: number, what: string): Int32Array {
  if (!prev) return perm.slice();
  validatePerm(prev, n, what);
  const out = new Int32Array(n);
  for (let j = 0; j < n; j++) out[j] = prev[perm[j]!]!;
  return out;
}
