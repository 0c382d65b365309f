// RPTQ end to end on OPT: calibrate → cluster → fold → quantize weights per (row × group of folded input columns, or
// row × input cluster) → static per-cluster activation and KV ranges (arXiv 2304.01089; RPTQ4LLM quantize/opt_reorder_quantize.py).

import { LowbitError } from '../../errors.js';
import type { Kernels } from '../../kernels/index.js';
import type { OPTModel } from '../../models/opt/model.js';
import {
  QuantizedOPT, actQuant, checkQuantizable, fuseQKV, heapF32, makeQLinear, type ActQuant, type Disposable, type Execution,
  type QLayer, type QLinear,
} from '../../models/opt/quantized.js';
import type { F32 } from '../../models/opt/weights.js';
import type { Backend } from '../../runtime.js';
import { Tensor } from '../../tensor.js';
import { quantize } from '../quantize.js';
import { qparamsFromRanges } from '../range.js';
import type { ClusterMap, QuantScheme } from '../types.js';
import { calibrate, calibrationSamples, type CalibrationProgress, type ChannelRange, type LayerStats } from './calibrate.js';
import { buildClusterMap, clusterPerHead, minMaxFeatures, qkFeatures } from './cluster-map.js';
import { foldOptLayer, type OptLayerMaps, type OptLayerWeights } from './fold.js';
import { checkWeightGrid, validateRecipe, weightGroupOf, type ActClass, type Recipe } from './recipe.js';
import { addBatch, createHessian, type Hessian } from '../gptq/hessian.js';
import { gptqQuantize } from '../gptq/gptq.js';
import { nextTokenKLOf, type NextTokenKL } from '../gptq/eval.js';

/** GPTQ Hessians of one layer's linear inputs, channels in the original (unfolded) order. */
export interface LayerHessians { r1: Hessian; attnOut: Hessian; r4: Hessian; r5: Hessian }

/** H' = H[perm][:, perm]: the Hessian of inputs whose channels were reordered by perm. */
function permuteHessian(h: Hessian, perm: Int32Array | null): Hessian {
  if (!perm) return h;
  const n = h.cols, out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) { const r = perm[i]! * n; for (let j = 0; j < n; j++) out[i * n + j] = h.h[r + perm[j]!]!; }
  return { cols: n, h: out, nSamples: h.nSamples, nRows: h.nRows };
}

export interface QuantizeOPTOptions {
  /** Calibration token ids (windows are drawn per recipe.calibration) or ready samples of equal length. */
  calibration: ArrayLike<number> | ArrayLike<number>[];
  onProgress?: (p: CalibrationProgress) => void;
  /** How quantized linears run (default 'integer': the qmatmul kernels on packed codes). */
  execution?: Execution;
}

const ident = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

function permRange(r: ChannelRange, perm: Int32Array | null): ChannelRange {
  if (!perm) return r;
  const min = new Float32Array(perm.length), max = new Float32Array(perm.length);
  for (let j = 0; j < perm.length; j++) { min[j] = r.min[perm[j]!]!; max[j] = r.max[perm[j]!]!; }
  return { min, max };
}

/** Segment offsets of an activation class: its cluster map, one segment, or one per channel. */
function segmentsOf(recipe: Recipe, cls: ActClass, n: number, map: ClusterMap | undefined): Int32Array {
  const g = recipe.granularity[cls];
  if (g === 'tensor') return Int32Array.from([0, n]);
  if (g === 'channel') return Int32Array.from({ length: n + 1 }, (_, i) => i);
  if (!map) throw new LowbitError('E_ARG', `recipe.granularity.${cls} is 'cluster' but the layer has no cluster map for it`);
  return map.offsets;
}

/** Static per-segment asymmetric params from per-channel ranges already in the folded order. */
export function actQuantFromRange(bits: number, offsets: Int32Array, r: ChannelRange): ActQuant {
  const nSeg = offsets.length - 1, lo = new Float32Array(nSeg), hi = new Float32Array(nSeg);
  for (let s = 0; s < nSeg; s++) {
    let a = Infinity, b = -Infinity;
    for (let j = offsets[s]!; j < offsets[s + 1]!; j++) { if (r.min[j]! < a) a = r.min[j]!; if (r.max[j]! > b) b = r.max[j]!; }
    if (!Number.isFinite(a) || !Number.isFinite(b)) throw new LowbitError('E_NONFINITE', `calibration range of segment ${s} is not finite (${a}, ${b})`, { segment: s });
    lo[s] = a; hi[s] = b;
  }
  const p = qparamsFromRanges(lo, hi, bits, false);
  return actQuant(bits, offsets, p.scale, p.zero);
}

/** RTN-quantizes a [out, in] weight: per (row × segment of `inOffsets`) when given, else per row (packed codes + params). */
export function quantizeWeight(k: Kernels, w: Float32Array, outDim: number, inDim: number, bits: number, inOffsets: Int32Array | null):
  { q: ReturnType<typeof quantize> } {
  const scheme: QuantScheme = inOffsets
    ? { bits: bits as QuantScheme['bits'], symmetric: false, granularity: { kind: 'perRowCluster', clusters: { perm: ident(inDim), offsets: inOffsets } } }
    : { bits: bits as QuantScheme['bits'], symmetric: false, granularity: { kind: 'perChannel', axis: 0 } };
  const q = quantize(Tensor.fromArray(w, [outDim, inDim]), scheme, undefined, { kernels: k });
  return { q };
}

/** Offsets of equal groups of `g` columns over `n` (g divides n). */
const groupOffsets = (n: number, g: number) => Int32Array.from({ length: n / g + 1 }, (_, i) => i * g);

function linearOf(be: Backend, owned: Disposable[], execution: Execution, w: Float32Array, b: Float32Array | null, outDim: number, inDim: number,
  bits: number, inOffsets: Int32Array | null, gptq?: { h: Hessian; name: string; groupSize: number | null; groupOffsets: Int32Array | null }): QLinear {
  const bias = b ? heapF32(be, b, [outDim], owned) : null;
  if (bits >= 16) return { outDim, inDim, w: heapF32(be, w, [outDim, inDim], owned), b: bias, q: null, packed: null };
  if (gptq) {
    const r = gptqQuantize(w, outDim, inDim, gptq.h, {
      bits, kernels: be.kernels, name: gptq.name,
      ...(gptq.groupSize ? { groupSize: gptq.groupSize } : gptq.groupOffsets ? { groupOffsets: gptq.groupOffsets } : {}),
    });
    return makeQLinear(be, r.quantized, bias, execution, owned);
  }
  const { q } = quantizeWeight(be.kernels, w, outDim, inDim, bits, inOffsets);
  return makeQLinear(be, q, bias, execution, owned);
}

/** The cluster maps of one layer from its statistics (k-means per the recipe). */
export function clusterMapsOf(model: OPTModel, st: LayerStats, recipe: Recipe): OptLayerMaps {
  const c = model.config, km = { nInit: recipe.kmeans.nInit, seed: recipe.kmeans.seed }, cl = recipe.clusters;
  const kOf = (k: number, n: number, what: string) => {
    if (k > n) throw new LowbitError('E_ARG', `recipe.clusters.${what} = ${k} exceeds the ${n} channels`, { field: `clusters.${what}` });
    return k;
  };
  return {
    r1: buildClusterMap(st.r1.min, st.r1.max, kOf(cl.r1, c.dim, 'r1'), km).map,
    r2: clusterPerHead(qkFeatures(st.q.min, st.q.max, st.k.min, st.k.max), c.nHeads, c.headSize, kOf(cl.qkPerHead, c.headSize, 'qkPerHead'), km).map,
    r3: clusterPerHead(minMaxFeatures(st.attnOut.min, st.attnOut.max), c.nHeads, c.headSize, kOf(cl.attnOutPerHead, c.headSize, 'attnOutPerHead'), km).map,
    r4: buildClusterMap(st.r4.min, st.r4.max, kOf(cl.r4, c.dim, 'r4'), km).map,
    r5: buildClusterMap(st.r5.min, st.r5.max, kOf(cl.r5, c.hiddenDim, 'r5'), km).map,
  };
}

function layerArrays(model: OPTModel, l: number): OptLayerWeights {
  const c = model.config, w = model.weights.layers[l]!;
  const v = (t: F32 | null, n: number, fill = 0) => (t ? t.data.slice() : new Float32Array(n).fill(fill));
  return {
    ln1Gamma: v(w.attnLnW, c.dim, 1), ln1Beta: v(w.attnLnB, c.dim), qW: v(w.wq, 0), qB: v(w.bq, c.dim), kW: v(w.wk, 0), kB: v(w.bk, c.dim),
    vW: v(w.wv, 0), vB: v(w.bv, c.dim), oW: v(w.wo, 0), oB: v(w.bo, c.dim), ln2Gamma: v(w.ffnLnW, c.dim, 1), ln2Beta: v(w.ffnLnB, c.dim),
    fc1W: v(w.w1, 0), fc1B: v(w.b1, c.hiddenDim), fc2W: v(w.w2, 0), fc2B: v(w.b2, c.dim),
  };
}

/**
 * Builds quantized layer l from its statistics: cluster maps (when recipe.reorder), fold, weights on the recipe's grid
 * (per row × group, row × input cluster, or row) with RTN or GPTQ (`hessians` of the layer's linear inputs in the
 * original channel order, permuted here like the folded columns; on the rowCluster grid GPTQ's groups are the input's
 * clusters), static per-segment
 * activation and KV ranges. Tensors go to `be`'s heap and are registered in `owned`.
 */
export function buildQLayer(model: OPTModel, l: number, st: LayerStats, recipe: Recipe, be: Backend, owned: Disposable[],
  mapsIn?: OptLayerMaps, hessians?: LayerHessians, execution: Execution = 'integer'): QLayer {
  const c = model.config, b = recipe.bits, d = c.dim, h = c.hiddenDim;
  const useGptq = b.weights < 16 && recipe.weight.method === 'gptq';
  if (useGptq && !hessians) throw new LowbitError('E_ARG', `buildQLayer: recipe.weight.method gptq needs the layer's Hessians`);
  const maps: OptLayerMaps = mapsIn ?? (recipe.reorder ? clusterMapsOf(model, st, recipe) : {});
  const f = foldOptLayer(layerArrays(model, l), { dim: d, nHeads: c.nHeads, hiddenDim: h }, maps);
  const p1 = maps.r1?.perm ?? null, p2 = maps.r2?.perm ?? null, p3 = maps.r3?.perm ?? null, p4 = maps.r4?.perm ?? null, p5 = maps.r5?.perm ?? null;
  const grid = recipe.weight.granularity;
  // 'group': equal groups of the folded input columns; 'rowCluster': the input's clusters; 'row' (or no map): per row
  const gOf = (n: number, name: string) => (grid === 'group' ? weightGroupOf(recipe, n, `layers.${l}.${name}`) : null);
  const inOff = (m: ClusterMap | undefined, n: number, name: string): Int32Array | null => {
    const g = gOf(n, name);
    return g !== null ? groupOffsets(n, g) : grid === 'rowCluster' && m ? m.offsets : null;
  };
  const bias = (a: Float32Array) => (c.enableBias ? a : null);
  const lnv = (a: Float32Array) => (c.lnAffine ? heapF32(be, a, [d], owned) : null);
  const act = (cls: ActClass, bits: number, n: number, map: ClusterMap | undefined, r: ChannelRange, perm: Int32Array | null) =>
    (bits < 16 ? actQuantFromRange(bits, segmentsOf(recipe, cls, n, map), permRange(r, perm)) : null);
  const H1 = useGptq ? permuteHessian(hessians!.r1, p1) : null;
  // GPTQ on the same grid: equal groups, or (rowCluster) the input's clusters as groups of unequal widths
  const G = (hh: Hessian | null, name: string, n: number, m: ClusterMap | undefined) =>
    (hh ? { h: hh, name: `layers.${l}.${name}`, groupSize: gOf(n, name), groupOffsets: grid === 'rowCluster' && m ? m.offsets : null } : undefined);
  const layer: QLayer = {
    ln1W: lnv(f.ln1Gamma), ln1B: lnv(f.ln1Beta), ln2W: lnv(f.ln2Gamma), ln2B: lnv(f.ln2Beta),
    ln1Perm: f.ln1InputPerm ?? null, ln2Perm: f.ln2InputPerm ?? null,
    q: linearOf(be, owned, execution, f.qW, bias(f.qB), d, d, b.weights, inOff(maps.r1, d, 'q_proj'), G(H1, 'q_proj', d, maps.r1)),
    k: linearOf(be, owned, execution, f.kW, bias(f.kB), d, d, b.weights, inOff(maps.r1, d, 'k_proj'), G(H1, 'k_proj', d, maps.r1)),
    v: linearOf(be, owned, execution, f.vW, bias(f.vB), d, d, b.weights, inOff(maps.r1, d, 'v_proj'), G(H1, 'v_proj', d, maps.r1)),
    o: linearOf(be, owned, execution, f.oW, bias(f.oB), d, d, b.weights, inOff(maps.r3, d, 'out_proj'), G(useGptq ? permuteHessian(hessians!.attnOut, p3) : null, 'out_proj', d, maps.r3)),
    fc1: linearOf(be, owned, execution, f.fc1W, bias(f.fc1B), h, d, b.weights, inOff(maps.r4, d, 'fc1'), G(useGptq ? permuteHessian(hessians!.r4, p4) : null, 'fc1', d, maps.r4)),
    fc2: linearOf(be, owned, execution, f.fc2W, bias(f.fc2B), d, h, b.weights, inOff(maps.r5, h, 'fc2'), G(useGptq ? permuteHessian(hessians!.r5, p5) : null, 'fc2', h, maps.r5)),
    act: {
      r1: act('r1', b.r1, d, maps.r1, st.r1, p1),
      q: act('qk', b.qk, d, maps.r2, st.q, p2),
      k: b.kv < 16 ? null : act('qk', b.qk, d, maps.r2, st.k, p2),
      attnOut: act('attnOut', b.attnOut, d, maps.r3, st.attnOut, p3),
      r4: act('r4', b.r4, d, maps.r4, st.r4, p4),
      r5: act('r5', b.r5, h, maps.r5, st.r5, p5),
    },
    kv: b.kv < 16 ? { k: act('kv', b.kv, d, maps.r2, st.k, p2)!, v: act('kv', b.kv, d, maps.r3, st.v, p3)! } : null,
    maps,
  };
  if (execution === 'integer') fuseQKV(be, layer, owned);
  return layer;
}

/** The LM head under the recipe: the (tied) float weights, or codes per (row × group of weight.lmHeadGroup). */
export function buildLmHead(model: OPTModel, recipe: Recipe, be: Backend, owned: Disposable[], execution: Execution = 'integer'): QLinear {
  const c = model.config, V = c.vocabSize, pd = c.wordEmbedProjDim, bits = recipe.bits.lmHead;
  if (bits >= 16) return { outDim: V, inDim: pd, w: model.weights.lmHead, b: null, q: null, packed: null };
  const g = Math.min(recipe.weight.lmHeadGroup, pd);
  if (pd % g !== 0) throw new LowbitError('E_ARG', `recipe.weight.lmHeadGroup ${g} does not divide the LM head width ${pd}`, { field: 'weight.lmHeadGroup' });
  const offs = Int32Array.from({ length: pd / g + 1 }, (_, i) => i * g);
  const { q } = quantizeWeight(be.kernels, model.weights.lmHead.data, V, pd, bits, offs);
  return makeQLinear(be, q, null, execution, owned);
}

/**
 * Calibrates and quantizes `model` with `recipe`. Layer by layer: statistics of layer l with inputs from the quantized
 * layers 0..l−1, cluster maps, fold, quantize; then the calibration inputs go through quantized layer l. With GPTQ, each
 * linear's Hessian comes from the same float pass of layer l (the reference's sequential GPTQ also feeds fc2 the
 * output of the already-quantized fc1 within the layer; lowbit does not, yet). The float model
 * is not modified; the result shares its token/position embeddings (and the LM head when tied and float), so keep the
 * float model alive while the quantized one is used (qio.ts's loader builds a self-contained one).
 */
export function quantizeOPT(model: OPTModel, recipe: Recipe, opts: QuantizeOPTOptions): QuantizedOPT {
  validateRecipe(recipe);
  checkQuantizable(model.config);
  checkWeightGrid(model.config, recipe);
  const cal = opts.calibration;
  const samples = Array.isArray(cal) && cal.length > 0 && typeof cal[0] !== 'number'
    ? (cal as ArrayLike<number>[])
    : calibrationSamples(cal as ArrayLike<number>, recipe.calibration.samples, recipe.calibration.seqLen, recipe.calibration.seed);
  const be = model.backend, owned: Disposable[] = [], execution = opts.execution ?? 'integer';
  const layers: QLayer[] = [];
  const c = model.config, useGptq = recipe.bits.weights < 16 && recipe.weight.method === 'gptq';
  let hs: LayerHessians | null = null;
  try {
    calibrate(model, samples, {
      probsBits: recipe.bits.attnProbs,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(useGptq ? {
        observe: (_l: number, p: string, data: Float32Array, rows: number) => {
          hs ??= { r1: createHessian(c.dim), attnOut: createHessian(c.dim), r4: createHessian(c.dim), r5: createHessian(c.hiddenDim) };
          if (p === 'r1' || p === 'attnOut' || p === 'r4' || p === 'r5') addBatch(hs[p], be.kernels, data.slice(), rows, 1);
        },
      } : {}),
      quantizeLayer: (l, st) => {
        const q = buildQLayer(model, l, st, recipe, be, owned, undefined, hs ?? undefined, execution);
        hs = null;
        layers.push(q);
        return q;
      },
    });
    const w = model.weights;
    return new QuantizedOPT(model.config, recipe, {
      tokEmb: w.tokEmb, posEmb: w.posEmb, projectIn: w.projectIn, projectOut: w.projectOut, finalLnW: w.finalLnW, finalLnB: w.finalLnB,
      lmHead: buildLmHead(model, recipe, be, owned, execution), tied: w.tied, layers,
    }, be, owned, execution);
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}

/** Mean next-token KL(float ‖ quantized) in nats, tokens compared, and top-1 agreement. */
export type KLResult = NextTokenKL;

/**
 * Mean next-token KL(p_float ‖ p_quantized) and top-1 agreement over non-overlapping windows of
 * `seqLen` tokens of `ids` (at most `maxWindows`): `nextTokenKLOf` (src/quant/gptq/eval.ts).
 */
export function nextTokenKL(floatModel: OPTModel, qm: QuantizedOPT, ids: ArrayLike<number>, seqLen: number, maxWindows = Infinity): KLResult {
  return nextTokenKLOf(floatModel, qm, ids, seqLen, maxWindows);
}
