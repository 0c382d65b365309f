// GPTQ weights on lowbit's packed kernels: a weight-only (W·A16) QuantizedOPT built from per-linear
// QuantizedTensors (a loaded AutoGPTQ / GPTQModel checkpoint, or gptqQuantizeOPT's results). Every decoder
// linear runs `qlinear` on the packed codes (per-group, per-row, or act-order per-row-cluster with its input
// permutation); q/k/v share one fused kernel call when their layouts allow (no act-order). Activations, the
// KV cache and attention probabilities stay f32; the LM head, embeddings and LayerNorms are the float
// model's. No reorder (RPTQ's R1..R5) is involved: the LayerNorms are plain.

import { LowbitError } from '../../errors.js';
import type { OPTModel } from '../../models/opt/model.js';
import {
  QuantizedOPT, fuseQKV, makeQLinear, type Disposable, type QLayer, type QuantizedOPTParts,
} from '../../models/opt/quantized.js';
import type { F32 } from '../../models/opt/weights.js';
import { ACT_CLASSES, rptqRecipe, cloneRecipe, validateRecipe, type ClassBits, type Recipe } from '../rptq/recipe.js';
import type { QuantizedTensor } from '../types.js';
import type { OPT_GPTQ_MODULES } from './autogptq.js';

export interface PackedGPTQOptions {
  /**
   * Take ownership of `model`: its f32 linear weights are freed now (the packed codes replace them) and its
   * other tensors (embeddings, LayerNorms, biases, LM head) are freed with the returned model. `model` must not
   * be used afterwards. Default false: the returned model shares those tensors, so keep `model` alive.
   */
  adopt?: boolean;
}

/**
 * The recipe recorded on a weight-only GPTQ model: `bits` weights on the given grid (per row, or per row × group of
 * `groupSize` input columns), everything else float, no reorder. Valid, so a packed GPTQ model saves with
 * `saveQuantizedOPT` and reloads.
 */
export function gptqRecipe(bits: number, groupSize: number | null = null): Recipe {
  const r = cloneRecipe(rptqRecipe('W4A16'));
  r.name = `GPTQ W${bits}A16${groupSize ? ` g${groupSize}` : ''}`;
  r.bits.weights = bits as ClassBits;
  r.reorder = false;
  for (const c of ACT_CLASSES) r.granularity[c] = 'tensor'; // unused: every activation stays float
  r.weight.method = 'gptq';
  r.weight.granularity = groupSize ? 'group' : 'row';
  if (groupSize) r.weight.groupSize = groupSize;
  return validateRecipe(r);
}

/** The 'group' size of a per-group QuantizedTensor, null for per row, undefined for another layout (act-order). */
function groupOf(q: QuantizedTensor): number | null | undefined {
  const g = q.scheme.granularity;
  if (g.kind === 'perGroup') return g.groupSize;
  if (g.kind === 'perChannel') return null;
  return undefined;
}

/**
 * A QuantizedOPT (integer execution, weight-only) whose six linears per layer are `layers.get('layers.{l}.{module}')`
 * packed for the qmatmul kernels, with `model`'s biases, LayerNorms, embeddings and LM head. Pre-LN models only
 * (the quantized decoder's layer is pre-LN; E_UNSUPPORTED otherwise: use dequantized execution).
 */
export function packedGPTQOPT(model: OPTModel, layers: Map<string, QuantizedTensor>, opts: PackedGPTQOptions = {}): QuantizedOPT {
  if (model.isDisposed) throw new LowbitError('E_ARG', 'packedGPTQOPT: the model was disposed');
  const c = model.config, w = model.weights, be = model.backend;
  if (!c.preLN) {
    throw new LowbitError('E_UNSUPPORTED', 'packed GPTQ execution runs pre-LN OPT models only (do_layer_norm_before = true); load with execution \'dequantized\'');
  }
  let bits = 0;
  let grid: number | null | undefined = -1; // -1: no layer seen yet; undefined: not expressible as one recipe grid
  const owned: Disposable[] = [];
  try {
    const qLayers: QLayer[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l]!;
      const lin = (m: (typeof OPT_GPTQ_MODULES)[number], b: F32 | null, outDim: number, inDim: number) => {
        const key = `layers.${l}.${m}`;
        const q = layers.get(key);
        if (!q) throw new LowbitError('E_KEY', `packedGPTQOPT: no quantized tensor for '${key}'`, { key });
        if (q.rows !== outDim || q.cols !== inDim) {
          throw new LowbitError('E_SHAPE', `packedGPTQOPT: '${key}' is [${q.rows}, ${q.cols}], the model's layer is [${outDim}, ${inDim}]`, { key });
        }
        bits = Math.max(bits, q.scheme.bits);
        const g = groupOf(q);
        if (grid === -1) grid = g;
        else if (grid !== g) grid = undefined;
        return makeQLinear(be, q, b, 'integer', owned);
      };
      const layer: QLayer = {
        ln1W: lw.attnLnW, ln1B: lw.attnLnB, ln2W: lw.ffnLnW, ln2B: lw.ffnLnB, ln1Perm: null, ln2Perm: null,
        q: lin('self_attn.q_proj', lw.bq, c.dim, c.dim), k: lin('self_attn.k_proj', lw.bk, c.dim, c.dim), v: lin('self_attn.v_proj', lw.bv, c.dim, c.dim),
        o: lin('self_attn.out_proj', lw.bo, c.dim, c.dim), fc1: lin('fc1', lw.b1, c.hiddenDim, c.dim), fc2: lin('fc2', lw.b2, c.dim, c.hiddenDim),
        act: { r1: null, q: null, k: null, attnOut: null, r4: null, r5: null }, kv: null, maps: {},
      };
      fuseQKV(be, layer, owned);
      qLayers.push(layer);
    }
    const parts: QuantizedOPTParts = {
      tokEmb: w.tokEmb, posEmb: w.posEmb, projectIn: w.projectIn, projectOut: w.projectOut, finalLnW: w.finalLnW, finalLnB: w.finalLnB,
      lmHead: { outDim: c.vocabSize, inDim: c.wordEmbedProjDim, w: w.lmHead, b: null, q: null, packed: null }, tied: w.tied, layers: qLayers,
    };
    if (opts.adopt) {
      for (const lw of w.layers) for (const t of [lw.wq, lw.wk, lw.wv, lw.wo, lw.w1, lw.w2]) t.dispose();
      owned.push({ dispose: () => model.dispose() });
    }
    // act-order (per row × permuted group) or mixed layouts have no recipe grid: recorded per row, and
    // saveQuantizedOPT refuses them (see qio); the model runs the same either way
    return new QuantizedOPT(c, gptqRecipe(bits, typeof grid === 'number' && grid > 0 ? grid : null), parts, be, owned, 'integer');
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}
