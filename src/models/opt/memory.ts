// Memory accounting for an OPT model under an RPTQ recipe: weights, activations and KV cache bytes (RPTQ paper §4.3, Table 5).

import { LowbitError } from '../../errors.js';
import { formatForBits, packedRowBytes } from '../../quant/formats.js';
import { validateRecipe, type ActClass, type Recipe } from '../../quant/rptq/recipe.js';
import type { OPTConfig } from './config.js';

export interface MemoryOptions {
  batch: number;
  seqLen: number;
  /** Bytes of a float element kept in float (weights and a 16-bit KV cache): 2 = fp16, as the paper counts (default). */
  floatBytes?: number;
  /** Bytes of a run-time activation element (lowbit computes in f32: default 4). */
  activationBytes?: number;
}

export interface MemoryEstimate {
  /** Every stored parameter: packed codes + (scale f32, zero u8) per (row × cluster) + offsets + float tensors + cluster maps + static activation ranges. */
  weights: number;
  /** Peak run-state activations of one prefill of batch × seqLen (lowbit's RunState buffers, last-token logits). */
  activations: number;
  /** K and V of every layer for batch × seqLen positions, plus their per-cluster (scale, zero) parameters. */
  kvCache: number;
  total: number;
  detail: {
    linears: number; lmHead: number; embeddings: number; floatParams: number; clusterMaps: number; actParams: number;
    /** Bytes of K + V per token (all layers), parameters excluded. */
    kvBytesPerToken: number;
    kvParams: number;
  };
}

/** (scale f32 + zero u8) per quantization slot. */
const PARAM_BYTES = 5;

/**
 * Bytes a [rows, cols] matrix takes at `bits` (16 = float of `floatBytes`) with `segments` (scale, zero) slots per row:
 * rows · packedRowBytes(format, cols) + rows · segments · 5 + (segments + 1) · 4 (the i32 segment offsets).
 */
export function packedMatrixBytes(rows: number, cols: number, bits: number, segments: number, floatBytes = 2): number {
  if (bits >= 16) return rows * cols * floatBytes;
  return rows * packedRowBytes(formatForBits(bits), cols) + rows * segments * PARAM_BYTES + (segments + 1) * 4;
}

/** Static per-segment parameters of one activation tensor: slots · 5 + (slots + 1) · 4 (offsets). */
function actParamBytes(slots: number): number {
  return slots * PARAM_BYTES + (slots + 1) * 4;
}

/** Clusters of each reordered tensor under `recipe` (1 when not reordered). */
export function clusterCounts(c: OPTConfig, r: Recipe): Record<'r1' | 'qk' | 'attnOut' | 'r4' | 'r5', number> {
  if (!r.reorder) return { r1: 1, qk: 1, attnOut: 1, r4: 1, r5: 1 };
  return { r1: r.clusters.r1, qk: r.clusters.qkPerHead * c.nHeads, attnOut: r.clusters.attnOutPerHead * c.nHeads, r4: r.clusters.r4, r5: r.clusters.r5 };
}

/** Static (scale, zero) slots of an activation class with `channels` channels and `clusters` reorder clusters. */
export function actSlots(r: Recipe, cls: ActClass, channels: number, clusters: number): number {
  const g = r.granularity[cls];
  return g === 'tensor' ? 1 : g === 'channel' ? channels : clusters;
}

/**
 * (scale, zero) slots per row of a decoder linear with `width` inputs (`clusters` reorder clusters) under the recipe's
 * weight grid: width / min(groupSize, width) for 'group', the clusters for 'rowCluster', 1 for 'row' or float weights.
 */
export function weightSegments(r: Recipe, width: number, clusters: number): number {
  if (r.bits.weights >= 16) return 1;
  const g = r.weight.granularity;
  return g === 'group' ? Math.ceil(width / Math.min(r.weight.groupSize, width)) : g === 'rowCluster' ? clusters : 1;
}

/**
 * Weights, activations and KV cache bytes of an OPT model quantized by `recipe` at batch × seqLen.
 * Exact for what lowbit stores (qio.ts; with floatBytes 4 it equals the tensor bytes of a saved file): packed formats
 * u2/u3/u4/u8 by whole blocks, one f32 scale and one u8 zero per (output row × segment) of each linear (segments:
 * `weightSegments`) plus its i32 segment offsets, LM head per (row × group of `weight.lmHeadGroup`), i32 cluster
 * permutations and offsets, per-segment static activation ranges with their offsets. Float tensors count `floatBytes`
 * each. (At run time the integer kernels re-lay the codes out with every cluster padded to whole blocks.) The KV cache is 2 · layers · batch · seqLen · rowBytes with rowBytes = packed bytes of a
 * `dim`-channel row at `bits.kv` (dim · floatBytes at 16 bits; dim · 2 with kvFloat 'bf16'), plus (scale, zero) per K and V
 * cluster per layer.
 */
export function estimateMemory(config: OPTConfig, recipe: Recipe, opts: MemoryOptions): MemoryEstimate {
  validateRecipe(recipe);
  const { batch, seqLen } = opts ?? ({} as MemoryOptions);
  const fb = opts.floatBytes ?? 2, ab = opts.activationBytes ?? 4;
  for (const [k, v] of Object.entries({ batch, seqLen, floatBytes: fb, activationBytes: ab })) {
    if (!Number.isSafeInteger(v) || v < 1) throw new LowbitError('E_ARG', `estimateMemory: ${k} must be a positive integer, got ${String(v)}`);
  }
  const c = config, L = c.nLayers, d = c.dim, h = c.hiddenDim, pd = c.wordEmbedProjDim, V = c.vocabSize;
  const k = clusterCounts(c, recipe), wb = recipe.bits.weights;
  const seg = (width: number, clusters: number) => weightSegments(recipe, width, clusters);
  const linears = L * (
    3 * packedMatrixBytes(d, d, wb, seg(d, k.r1), fb) + packedMatrixBytes(d, d, wb, seg(d, k.attnOut), fb) +
    packedMatrixBytes(h, d, wb, seg(d, k.r4), fb) + packedMatrixBytes(d, h, wb, seg(h, k.r5), fb));
  const floatParams = L * ((c.enableBias ? 5 * d + h : 0) + (c.lnAffine ? 4 * d : 0)) * fb;
  let embeddings = (V * pd + (c.maxPos + 2) * d) * fb;
  if (pd !== d) embeddings += 2 * d * pd * fb;
  if (c.finalLN && c.lnAffine) embeddings += 2 * d * fb;
  const lb = recipe.bits.lmHead;
  const lmHead = lb < 16 ? packedMatrixBytes(V, pd, lb, Math.ceil(pd / recipe.weight.lmHeadGroup), fb) : 0; // tied: shares embed_tokens
  const clusterMaps = recipe.reorder
    ? L * 4 * ((4 * d + h) + (k.r1 + 1) + (k.qk + 1) + (k.attnOut + 1) + (k.r4 + 1) + (k.r5 + 1)) // perms of R1..R4 (dim) and R5 (ffn)
    : 0;
  const b = recipe.bits;
  let act = 0;
  if (b.r1 < 16) act += actParamBytes(actSlots(recipe, 'r1', d, k.r1));
  if (b.qk < 16) act += actParamBytes(actSlots(recipe, 'qk', d, k.qk)) * (b.kv < 16 ? 1 : 2); // q; k too when the cache is float
  if (b.attnOut < 16) act += actParamBytes(actSlots(recipe, 'attnOut', d, k.attnOut));
  if (b.r4 < 16) act += actParamBytes(actSlots(recipe, 'r4', d, k.r4));
  if (b.r5 < 16) act += actParamBytes(actSlots(recipe, 'r5', h, k.r5));
  const actParams = L * act;
  const weights = linears + floatParams + embeddings + lmHead + clusterMaps + actParams;

  const rows = batch * seqLen;
  // scores: the fused attention kernel's per-head row of seqLen (heads × seqLen), not a seqLen² matrix
  let activations = ab * (5 * rows * d + rows * h + c.nHeads * seqLen + batch * V) + 2 * rows * 4;
  if (pd !== d) activations += ab * 2 * rows * pd;

  // a 16-bit cache takes floatBytes per value, except kvFloat 'bf16', which lowbit stores in 2 bytes whatever the count
  const kvRow = b.kv < 16 ? packedRowBytes(formatForBits(b.kv), d) : d * (recipe.kvFloat === 'bf16' ? 2 : fb);
  const kvBytesPerToken = 2 * L * kvRow;
  const kvParams = b.kv < 16 ? L * (actParamBytes(actSlots(recipe, 'kv', d, k.qk)) + actParamBytes(actSlots(recipe, 'kv', d, k.attnOut))) : 0;
  const kvCache = kvBytesPerToken * rows + kvParams;
  return {
    weights, activations, kvCache, total: weights + activations + kvCache,
    detail: { linears, lmHead, embeddings, floatParams, clusterMaps, actParams, kvBytesPerToken, kvParams },
  };
}
