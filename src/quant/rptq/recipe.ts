// RPTQ recipes: one object that names everything a quantization run needs (arXiv 2304.01089 §4; RPTQ4LLM main.py flags),
// the paper's presets, the per-tensor / per-channel baselines, validation and JSON (de)serialisation for file metadata.

import { LowbitError } from '../../errors.js';

/**
 * Tensor classes of an OPT decoder a recipe gives bits to.
 * - `weights`: every decoder linear (q/k/v/out_proj, fc1, fc2).
 * - `lmHead`: the LM head (tied to the token embedding in OPT; the embedding itself stays float).
 * - `r1`: self_attn_layer_norm output (q/k/v_proj input).  - `qk`: q_proj and k_proj outputs (R2 clusters).
 * - `attnOut`: attention output = out_proj input (R3).      - `r4`: final_layer_norm output (fc1 input).
 * - `r5`: fc2 input (after ReLU).
 * - `kv`: the KV cache, stored bit-packed: K per R2 cluster, V per R3 cluster.
 * - `attnProbs`: softmax probabilities (the P·V input), on a fixed grid of step 1/(2^b − 1) over [0, 1].
 */
export type TensorClass = 'weights' | 'lmHead' | 'r1' | 'qk' | 'attnOut' | 'r4' | 'r5' | 'kv' | 'attnProbs';
export const TENSOR_CLASSES: readonly TensorClass[] = ['weights', 'lmHead', 'r1', 'qk', 'attnOut', 'r4', 'r5', 'kv', 'attnProbs'];

/** Classes quantized with calibrated per-channel statistics (granularity applies to these). */
export type ActClass = 'r1' | 'qk' | 'attnOut' | 'r4' | 'r5' | 'kv';
export const ACT_CLASSES: readonly ActClass[] = ['r1', 'qk', 'attnOut', 'r4', 'r5', 'kv'];

/**
 * How an activation class shares ranges: `cluster` = RPTQ (one static range per reordered cluster),
 * `tensor` = one static range (baseline), `channel` = one static range per channel (baseline; not
 * expressible as an integer matmul, measured as fake-quant only).
 */
export type ActGranularity = 'cluster' | 'tensor' | 'channel';

/** Bits of a class: 2..8 quantized, 16 = kept in float (f32 at run time; the KV cache: see `Recipe.kvFloat`). */
export type ClassBits = 2 | 3 | 4 | 5 | 6 | 7 | 8 | 16;

/** How a float KV cache (`bits.kv` 16) stores K and V: 'f32', or 'bf16' (2 bytes per value, see `Recipe.kvFloat`). */
export type KvFloat = 'f32' | 'bf16';
export const KV_FLOATS: readonly KvFloat[] = ['f32', 'bf16'];

export interface Recipe {
  /** Preset name or a user label; informational. */
  name: string;
  bits: Record<TensorClass, ClassBits>;
  /**
   * Storage of the KV cache when `bits.kv` is 16: 'f32' (default; the float decoder's values), or 'bf16': each K/V
   * value rounded to bfloat16 (round half to even on the f32 bits, as torch's .to(torch.bfloat16)), half the cache bytes
   * and half the bytes attention reads per token. The paper's 16-bit KV cache is fp16; bf16 is used instead because
   * widening it is one shift (WASM has no f16 conversion), and it keeps f32's range (no overflow to inf). Relative
   * rounding error ≤ 2^-9 per value. Must be 'f32' when `bits.kv` < 16 (the packed cache has its own format).
   */
  kvFloat: KvFloat;
  granularity: Record<ActClass, ActGranularity>;
  /** Build k-means cluster maps and fold the permutations into the weights (R1..R5). Required by any `cluster` class. */
  reorder: boolean;
  clusters: {
    /** Clusters of self_attn_layer_norm output (R1). Default 32. */
    r1: number;
    /** Clusters per head of q/k outputs (R2). Default 4. */
    qkPerHead: number;
    /** Clusters per head of the attention output (R3). Default 4. */
    attnOutPerHead: number;
    /** Clusters of final_layer_norm output (R4). Default 32. */
    r4: number;
    /** Clusters of fc2 input (R5). Default 32. */
    r5: number;
  };
  /** k-means settings (RPTQ4LLM: n_init 10, random_state 0). */
  kmeans: { nInit: number; seed: number };
  calibration: {
    /** Calibration samples (default 128, as the reference). */
    samples: number;
    /** Tokens per sample (default 2048). */
    seqLen: number;
    /** Seed for picking sample windows from the calibration text. */
    seed: number;
  };
  weight: {
    method: 'rtn' | 'gptq';
    /**
     * The grid of a decoder linear's (scale, zero) pairs, over its input columns in the folded (reordered) order:
     * - 'group': per output row × group of `groupSize` consecutive input columns (the GPTQ/AWQ "W4 g128" grid).
     * - 'rowCluster': per output row × input cluster (RPTQ's grid, aligned with the activation clusters; needs
     *   `reorder`, falls back to per row for an unreordered input).
     * - 'row': one pair per output row.
     * GPTQ runs on every grid: on 'rowCluster' its groups are the input's clusters (groups of unequal widths).
     */
    granularity: WeightGranularity;
    /**
     * Input columns per group of the 'group' grid (default 128). A linear narrower than this has one group per row
     * (group = min(groupSize, width)); otherwise it must divide the width of every linear's input (quantizeOPT
     * checks before any work). Recorded but unused by the 'row' and 'rowCluster' grids.
     */
    groupSize: number;
    /** Group size of the LM head when `bits.lmHead` < 16 (per row × group of this many input channels). */
    lmHeadGroup: number;
  };
}

/** The weight (scale, zero) grid of the decoder linears; see `Recipe.weight.granularity`. */
export type WeightGranularity = 'group' | 'rowCluster' | 'row';
export const WEIGHT_GRANULARITIES: readonly WeightGranularity[] = ['group', 'rowCluster', 'row'];

/** Default `weight.groupSize`: the standard W4 g128 grid. */
export const DEFAULT_WEIGHT_GROUP = 128;

export type RecipePresetName = 'FP' | 'W4A16' | 'W4A8' | 'W4A4' | 'W4A4KV' | 'W4A3KV' | 'W3A3KV';
export const RECIPE_PRESETS: readonly RecipePresetName[] = ['FP', 'W4A16', 'W4A8', 'W4A4', 'W4A4KV', 'W4A3KV', 'W3A3KV'];

/** Calibration presets: the reference's (128 × 2048) and a small one for small machines and CI. */
export const CALIBRATION_PRESETS = {
  reference: { samples: 128, seqLen: 2048, seed: 0 },
  small: { samples: 16, seqLen: 256, seed: 0 },
} as const;

function allBits(b: ClassBits): Record<TensorClass, ClassBits> {
  return { weights: b, lmHead: 16, r1: b, qk: b, attnOut: b, r4: b, r5: b, kv: b, attnProbs: b === 16 ? 16 : 8 };
}

function base(name: string): Recipe {
  return {
    name,
    bits: allBits(16),
    kvFloat: 'f32',
    granularity: { r1: 'cluster', qk: 'cluster', attnOut: 'cluster', r4: 'cluster', r5: 'cluster', kv: 'cluster' },
    reorder: true,
    clusters: { r1: 32, qkPerHead: 4, attnOutPerHead: 4, r4: 32, r5: 32 },
    kmeans: { nInit: 10, seed: 0 },
    calibration: { ...CALIBRATION_PRESETS.reference },
    weight: { method: 'rtn', granularity: 'rowCluster', groupSize: DEFAULT_WEIGHT_GROUP, lmHeadGroup: 128 },
  };
}

/**
 * The paper's settings. Choices recorded here (each from the reference or the paper, except the weight grid):
 * - W4A16: 4-bit weights, every activation and the KV cache in float.
 * - W4A8: 4-bit weights, every activation and K/V at 8 bits, attention probabilities at 8 bits.
 * - W4A4: 4-bit weights and activations and K/V, but the LayerNorm outputs (R1, R4) stay at 8 bits and the
 *   attention probabilities on a fixed 8-bit grid, as the reference does in A4/A3 runs.
 * - W4A4KV / W4A3KV / W3A3KV: only the weights and the KV cache are low-bit; other activations float.
 * - FP: nothing quantized but the reorder still folded (the folding-is-exact check).
 * The LM head stays in float in every preset (set `bits.lmHead` to 8 or 4 to shrink it).
 *
 * Weight grid (`weight.granularity`): every preset quantizes weights per (output row × input cluster), RPTQ's grid.
 * It is activation-aware: k-means puts the outlier channels in their own small clusters, so their weight columns get
 * their own scales, which no equal-group grid reproduces. On the OPT-125m-shaped model with outlier channels
 * (scripts/rptq-opt125m.ts, next-token KL vs float on WikiText-2, top-1 agreement): W4A16 'rowCluster' 0.0055 (56%),
 * 'group' g128 0.0158 (36%), g64 0.0150, g32 0.0147. With g128, W4A16 would be worse than W4A8 (0.0061), inverting
 * the paper's ordering. 'group' (per row × `groupSize` consecutive folded input columns, the GPTQ/AWQ "W4 g128"
 * grid) is the speed option where the linear inputs stay float (W4A16, W4A4KV, W4A3KV, W3A3KV): the packed kernels
 * pad each of the 32 uneven clusters to whole 32-code blocks (768 inputs → ~1376 codes) with one f32 epilogue per
 * (row quad × segment), while g128 runs unpadded (fc1 GEMV 768→3072: 32 clusters 0.45 ms, g128 0.19 ms, f32
 * 0.32 ms; OPT-125m-shaped W4A16 decode with a 4-bit LM head ~31 vs ~18 ms/token, FP32 ~39). W4A8 and W4A4 need
 * 'rowCluster': their integer × integer linears need the weight's segments to equal the activation clusters (one
 * rescale by s_w·s_a per row and cluster); with another grid those linears fall back to fake-quantized activations
 * on the weight-only kernel.
 * Every grid stays selectable through `overrides.weight`.
 */
export function rptqRecipe(name: RecipePresetName, overrides: RecipeOverrides = {}): Recipe {
  const r = base(name);
  switch (name) {
    case 'FP': break;
    case 'W4A16': r.bits.weights = 4; break;
    case 'W4A8': r.bits = { ...allBits(8), weights: 4 }; break;
    case 'W4A4': r.bits = { ...allBits(4), weights: 4, r1: 8, r4: 8, attnProbs: 8 }; break;
    case 'W4A4KV': r.bits.weights = 4; r.bits.kv = 4; break;
    case 'W4A3KV': r.bits.weights = 4; r.bits.kv = 3; break;
    case 'W3A3KV': r.bits.weights = 3; r.bits.kv = 3; break;
    default: throw new LowbitError('E_ARG', `rptqRecipe: unknown preset '${String(name)}' (have ${RECIPE_PRESETS.join(', ')})`);
  }
  return validateRecipe(applyOverrides(r, overrides));
}

/**
 * A recipe with explicit weight/activation/KV bits (e.g. W16A3 for measuring activation error alone); the weight grid
 * is the presets' ('rowCluster'), overridable through `overrides.weight`.
 */
export function customRecipe(name: string, w: ClassBits, a: ClassBits, kv: ClassBits, overrides: RecipeOverrides = {}): Recipe {
  const r = base(name);
  r.bits = { ...allBits(a), weights: w, kv, attnProbs: a === 16 ? 16 : 8 };
  return validateRecipe(applyOverrides(r, overrides));
}

/**
 * Baselines at the same bits as `recipe`: activation ranges per tensor or per channel instead of per cluster,
 * no reorder, weights per output row.
 */
export function baselineRecipe(recipe: Recipe, kind: 'tensor' | 'channel'): Recipe {
  const r = cloneRecipe(recipe);
  r.name = `${recipe.name}-per${kind === 'tensor' ? 'Tensor' : 'Channel'}`;
  for (const c of ACT_CLASSES) r.granularity[c] = kind;
  r.reorder = false;
  r.weight.granularity = 'row';
  return validateRecipe(r);
}

export interface RecipeOverrides {
  name?: string;
  bits?: Partial<Record<TensorClass, ClassBits>>;
  kvFloat?: KvFloat;
  granularity?: Partial<Record<ActClass, ActGranularity>>;
  reorder?: boolean;
  clusters?: Partial<Recipe['clusters']>;
  kmeans?: Partial<Recipe['kmeans']>;
  calibration?: Partial<Recipe['calibration']>;
  weight?: Partial<Recipe['weight']>;
}

function applyOverrides(r: Recipe, o: RecipeOverrides): Recipe {
  if (!o || typeof o !== 'object') throw new LowbitError('E_ARG', 'recipe overrides must be an object');
  for (const key of Object.keys(o)) {
    if (!['name', 'bits', 'kvFloat', 'granularity', 'reorder', 'clusters', 'kmeans', 'calibration', 'weight'].includes(key)) {
      throw new LowbitError('E_ARG', `recipe: unknown field '${key}'`, { field: key });
    }
  }
  return {
    name: o.name ?? r.name,
    bits: { ...r.bits, ...o.bits },
    kvFloat: o.kvFloat ?? r.kvFloat,
    granularity: { ...r.granularity, ...o.granularity },
    reorder: o.reorder ?? r.reorder,
    clusters: { ...r.clusters, ...o.clusters },
    kmeans: { ...r.kmeans, ...o.kmeans },
    calibration: { ...r.calibration, ...o.calibration },
    weight: { ...r.weight, ...o.weight },
  };
}

export function cloneRecipe(r: Recipe): Recipe {
  return JSON.parse(JSON.stringify(r)) as Recipe;
}

function posInt(what: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new LowbitError('E_ARG', `recipe.${what} must be a positive integer, got ${JSON.stringify(v)}`, { field: what });
  }
}

function exactKeys(what: string, obj: unknown, keys: readonly string[]): Record<string, unknown> {
  const pre = what ? `recipe.${what}` : 'recipe', dot = what ? `${what}.` : '';
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new LowbitError('E_ARG', `${pre} must be an object`, { field: what });
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new LowbitError('E_ARG', `${pre}: unknown ${what === 'bits' || what === 'granularity' ? 'tensor class' : 'field'} '${k}' (expected ${keys.join(', ')})`, { field: `${dot}${k}` });
  }
  for (const k of keys) if (!(k in o)) throw new LowbitError('E_ARG', `${pre}.${k} is missing`, { field: `${dot}${k}` });
  return o;
}

/**
 * Checks every field and returns the recipe. E_ARG naming the class or field: an unknown tensor class, bits
 * outside 2..8 and not 16, an unknown granularity, a `cluster` class without `reorder`, non-positive cluster or
 * calibration counts, attention probabilities below 2 bits, an unknown weight method or grid, a non-positive
 * weight.groupSize, GPTQ with the 'rowCluster' grid. (Whether groupSize divides each linear's width depends on the
 * model: `weightGroupOf`, checked by quantizeOPT.)
 */
export function validateRecipe(r: Recipe): Recipe {
  if (!r || typeof r !== 'object') throw new LowbitError('E_ARG', 'recipe must be an object');
  exactKeys('', r, ['name', 'bits', 'kvFloat', 'granularity', 'reorder', 'clusters', 'kmeans', 'calibration', 'weight']);
  if (typeof r.name !== 'string') throw new LowbitError('E_ARG', 'recipe.name must be a string', { field: 'name' });
  const bits = exactKeys('bits', r.bits, TENSOR_CLASSES);
  for (const c of TENSOR_CLASSES) {
    const b = bits[c];
    if (!(typeof b === 'number' && ((Number.isInteger(b) && b >= 2 && b <= 8) || b === 16))) {
      throw new LowbitError('E_ARG', `recipe.bits.${c} must be an integer from 2 to 8, or 16 (float), got ${JSON.stringify(b)}`, { field: `bits.${c}` });
    }
  }
  if (!KV_FLOATS.includes(r.kvFloat)) {
    throw new LowbitError('E_ARG', `recipe.kvFloat must be f32 or bf16, got ${JSON.stringify(r.kvFloat)}`, { field: 'kvFloat' });
  }
  if (r.kvFloat !== 'f32' && r.bits.kv < 16) {
    throw new LowbitError('E_ARG', `recipe.kvFloat is '${r.kvFloat}' but recipe.bits.kv is ${r.bits.kv}: a float cache format needs bits.kv 16 (a ${r.bits.kv}-bit cache is packed)`, { field: 'kvFloat' });
  }
  const g = exactKeys('granularity', r.granularity, ACT_CLASSES);
  for (const c of ACT_CLASSES) {
    if (!['cluster', 'tensor', 'channel'].includes(g[c] as string)) {
      throw new LowbitError('E_ARG', `recipe.granularity.${c} must be cluster, tensor or channel, got ${JSON.stringify(g[c])}`, { field: `granularity.${c}` });
    }
    if (g[c] === 'cluster' && !r.reorder) {
      throw new LowbitError('E_ARG', `recipe.granularity.${c} is 'cluster' but recipe.reorder is false (clusters come from the reorder)`, { field: `granularity.${c}` });
    }
  }
  if (typeof r.reorder !== 'boolean') throw new LowbitError('E_ARG', 'recipe.reorder must be a boolean', { field: 'reorder' });
  const cl = exactKeys('clusters', r.clusters, ['r1', 'qkPerHead', 'attnOutPerHead', 'r4', 'r5']);
  for (const k of Object.keys(cl)) posInt(`clusters.${k}`, cl[k]);
  const km = exactKeys('kmeans', r.kmeans, ['nInit', 'seed']);
  posInt('kmeans.nInit', km['nInit']);
  if (!Number.isSafeInteger(km['seed'])) throw new LowbitError('E_ARG', `recipe.kmeans.seed must be an integer`, { field: 'kmeans.seed' });
  const ca = exactKeys('calibration', r.calibration, ['samples', 'seqLen', 'seed']);
  posInt('calibration.samples', ca['samples']);
  posInt('calibration.seqLen', ca['seqLen']);
  if (!Number.isSafeInteger(ca['seed'])) throw new LowbitError('E_ARG', `recipe.calibration.seed must be an integer`, { field: 'calibration.seed' });
  const w = exactKeys('weight', r.weight, ['method', 'granularity', 'groupSize', 'lmHeadGroup']);
  if (w['method'] !== 'rtn' && w['method'] !== 'gptq') throw new LowbitError('E_ARG', `recipe.weight.method must be rtn or gptq, got ${JSON.stringify(w['method'])}`, { field: 'weight.method' });
  if (!WEIGHT_GRANULARITIES.includes(w['granularity'] as WeightGranularity)) {
    throw new LowbitError('E_ARG', `recipe.weight.granularity must be group, rowCluster or row, got ${JSON.stringify(w['granularity'])}`, { field: 'weight.granularity' });
  }
  posInt('weight.groupSize', w['groupSize']);
  posInt('weight.lmHeadGroup', w['lmHeadGroup']);
  return r;
}

/**
 * Input columns per weight group of a linear `width` inputs wide under `recipe.weight` ('group' grid): min(groupSize,
 * width), which must divide `width`. E_ARG naming the layer and its width otherwise.
 */
export function weightGroupOf(r: Recipe, width: number, layer: string): number {
  const g = Math.min(r.weight.groupSize, width);
  if (width % g !== 0) {
    throw new LowbitError('E_ARG', `recipe.weight.groupSize ${r.weight.groupSize} does not divide the ${width} input columns of ${layer} (pick a divisor of every linear's input width)`,
      { field: 'weight.groupSize', layer, width });
  }
  return g;
}

/**
 * Checks, before any work, that the recipe's weight grid fits every decoder linear of an OPT model of these widths:
 * with 'group', groupSize (or the width, when narrower) divides each input width. E_ARG naming the linear and its
 * width otherwise.
 */
export function checkWeightGrid(dims: { dim: number; hiddenDim: number }, r: Recipe): void {
  if (r.bits.weights >= 16 || r.weight.granularity !== 'group') return;
  const lin: Array<[string, number]> = [['q_proj', dims.dim], ['k_proj', dims.dim], ['v_proj', dims.dim], ['out_proj', dims.dim], ['fc1', dims.dim], ['fc2', dims.hiddenDim]];
  for (const [name, width] of lin) weightGroupOf(r, width, `layers.*.${name}`);
}

/** Canonical JSON (keys in a fixed order) for `__metadata__`. */
export function recipeToJSON(r: Recipe): string {
  validateRecipe(r);
  return JSON.stringify({
    name: r.name, bits: Object.fromEntries(TENSOR_CLASSES.map((c) => [c, r.bits[c]])), kvFloat: r.kvFloat,
    granularity: Object.fromEntries(ACT_CLASSES.map((c) => [c, r.granularity[c]])), reorder: r.reorder,
    clusters: r.clusters, kmeans: r.kmeans, calibration: r.calibration,
    weight: { method: r.weight.method, granularity: r.weight.granularity, groupSize: r.weight.groupSize, lmHeadGroup: r.weight.lmHeadGroup },
  });
}

/**
 * Parses and validates a recipe from JSON (E_FORMAT for malformed JSON, E_ARG for a bad recipe). A recipe written
 * before `weight.groupSize` existed (grid 'row' or 'rowCluster', which do not use it) gets the default 128; a 'group'
 * recipe without it is E_ARG. One written before `kvFloat` existed ran an f32 cache: with `legacyKvFloat` (default;
 * the file loader passes false for format version 3 and later, which always write it) it gets 'f32'.
 */
export function recipeFromJSON(json: string, opts: { legacyKvFloat?: boolean } = {}): Recipe {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw new LowbitError('E_FORMAT', `recipe JSON is malformed (${(e as Error).message})`);
  }
  if ((opts.legacyKvFloat ?? true) && v && typeof v === 'object' && !Array.isArray(v) && !('kvFloat' in v)) {
    (v as Record<string, unknown>)['kvFloat'] = 'f32';
  }
  const w = (v as { weight?: unknown } | null)?.weight;
  if (w && typeof w === 'object' && !Array.isArray(w) && !('groupSize' in w)) {
    const g = (w as Record<string, unknown>)['granularity'];
    if (g === 'row' || g === 'rowCluster') (w as Record<string, unknown>)['groupSize'] = DEFAULT_WEIGHT_GROUP;
  }
  return validateRecipe(v as Recipe);
}

/** Whether a class is quantized (bits < 16). */
export function isQuantized(r: Recipe, c: TensorClass): boolean {
  return r.bits[c] < 16;
}
