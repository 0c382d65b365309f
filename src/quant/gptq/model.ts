// Layer-wise GPTQ of an OPT model, as IST-DASLab/gptq opt.py `opt_sequential`: calibration samples run
// through decoder layers 0..l−1 of the already-quantized model; the inputs of layer l's linears give
// their Hessians (q/k/v share one); the layer is quantized and re-run to give layer l+1 its inputs.
// Only one layer's Hessians exist at a time. The caller's model is not modified (a copy is quantized)
// unless `inPlace` is set; progress and ETA reach the caller through a callback, nothing is printed.

import { LowbitError } from '../../errors.js';
import type { Kernels } from '../../kernels/index.js';
import { OPTModel } from '../../models/opt/model.js';
import { POS_OFFSET } from '../../models/opt/config.js';
import { mulberry32 } from '../../models/opt/sample.js';
import type { F32, OPTLayerWeights, OPTWeights } from '../../models/opt/weights.js';
import { addBatch, createHessian, type GramScratch, type Hessian } from './hessian.js';
import { gptqQuantize, rtnQuantize, type GPTQOptions, type GPTQResult } from './gptq.js';
import { OPT_GPTQ_MODULES } from './autogptq.js';

/** The CPU-sized calibration default: 32 samples of 512 tokens (the paper uses 128 × 2048). */
export const GPTQ_CPU_PRESET = { nSamples: 32, seqLen: 512 } as const;

export type OPTLinear = (typeof OPT_GPTQ_MODULES)[number];

export interface GPTQProgress {
  /** Decoder layer being processed and how many there are. */
  layer: number;
  nLayers: number;
  /** The module just quantized. */
  module: OPTLinear;
  /** Linear layers quantized so far / in total (6 per decoder layer). */
  done: number;
  total: number;
  elapsedMs: number;
  /** Estimated time left: elapsed time per linear so far × linears left. */
  etaMs: number;
  /** The module's GPTQ loss (Σ (w − q)² / Hinv[i,i]² / 2). */
  loss: number;
}

export interface GPTQModelOptions extends Omit<GPTQOptions, 'name' | 'kernels'> {
  /**
   * 'layer' (default, opt.py): every linear's inputs come from one pass of the unquantized layer;
   * 'true' (AutoGPTQ true_sequential, OPT groups [q,k,v], [out_proj], [fc1], [fc2]): each group's
   * inputs are recomputed after the groups before it are quantized.
   */
  sequential?: 'layer' | 'true';
  /** Quantize the given model's weights instead of a copy. */
  inPlace?: boolean;
  onProgress?: (p: GPTQProgress) => void;
  signal?: AbortSignal;
}

export interface GPTQLayerTiming {
  layer: number;
  /** ms running calibration samples through the layer (Hessian passes and the output pass). */
  forwardMs: number;
  /** ms accumulating Hessians (the XᵀX GEMMs). */
  hessianMs: number;
  /** ms in gptqQuantize (damping, Cholesky, column loop). */
  quantizeMs: number;
}

export interface GPTQModelResult {
  /** The quantized model (dequantized f32 weights: W·A16 emulation in the f32 decoder). */
  model: OPTModel;
  /** Per linear, 'layers.{l}.{module}'. */
  results: Map<string, GPTQResult>;
  timings: GPTQLayerTiming[];
  totalMs: number;
}

// ---------------------------------------------------------------------------------------------
// Model copies
// ---------------------------------------------------------------------------------------------

/** A deep copy of the model's weights on the same backend (the tied LM head stays tied). */
export function cloneOPT(model: OPTModel): OPTModel {
  const heap = model.backend.heap;
  const c = (t: F32 | null): F32 | null => (t ? (t.clone({ heap }) as F32) : null);
  const w = model.weights;
  const tokEmb = c(w.tokEmb)!;
  const layers: OPTLayerWeights[] = w.layers.map((lw) => {
    const out = {} as Record<keyof OPTLayerWeights, F32 | null>;
    for (const k of Object.keys(lw) as Array<keyof OPTLayerWeights>) out[k] = c(lw[k]);
    return out as OPTLayerWeights;
  });
  const weights: OPTWeights = {
    tokEmb, posEmb: c(w.posEmb)!, projectIn: c(w.projectIn), projectOut: c(w.projectOut), finalLnW: c(w.finalLnW), finalLnB: c(w.finalLnB),
    lmHead: w.tied ? tokEmb : c(w.lmHead)!, tied: w.tied, layers,
  };
  return new OPTModel(model.config, weights, model.backend);
}

const FIELD: Record<OPTLinear, 'wq' | 'wk' | 'wv' | 'wo' | 'w1' | 'w2'> = {
  'self_attn.q_proj': 'wq', 'self_attn.k_proj': 'wk', 'self_attn.v_proj': 'wv', 'self_attn.out_proj': 'wo', fc1: 'w1', fc2: 'w2',
};

/**
 * Random calibration windows as GPTQ's datautils.get_wikitext2 draws them: `nSamples` windows of
 * `seqLen` tokens starting at uniform offsets in [0, ids.length − seqLen − 1] (seeded mulberry32).
 */
export function calibrationSamples(ids: ArrayLike<number>, nSamples: number = GPTQ_CPU_PRESET.nSamples, seqLen: number = GPTQ_CPU_PRESET.seqLen, seed = 0): Int32Array[] {
  if (ids.length < seqLen + 1) throw new LowbitError('E_ARG', `calibrationSamples: ${ids.length} tokens are fewer than seqLen + 1 = ${seqLen + 1}`);
  const rng = mulberry32(seed), out: Int32Array[] = [];
  for (let s = 0; s < nSamples; s++) {
    const i = Math.floor(rng() * (ids.length - seqLen));
    out.push(Int32Array.from({ length: seqLen }, (_, t) => ids[i + t]!));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// One decoder layer on one sample (no KV cache: T tokens, causal), in stages
// ---------------------------------------------------------------------------------------------

type Point = 'qkvIn' | 'outProjIn' | 'fc1In' | 'fc2In';
const ORDER: Point[] = ['qkvIn', 'outProjIn', 'fc1In', 'fc2In'];

interface Scratch {
  x: Float32Array; // (T, dim) residual stream, updated in place when the layer runs to its end
  xb: Float32Array; // (T, dim)
  q: Float32Array; // (T, dim)
  k: Float32Array; // (T, dim)
  v: Float32Array; // (T, dim)
  ctx: Float32Array; // (T, dim)
  att: Float32Array; // (T, T)
  hb: Float32Array; // (T, hiddenDim)
}

/**
 * Runs layer `lw` on x (T × dim): calls `hook` at each point up to `stop` with that point's input,
 * and when `stop` is 'out' updates x to the layer's output (HF OPTDecoderLayer, as models/opt/model.ts).
 */
function runLayer(model: OPTModel, k: Kernels, lw: OPTLayerWeights, T: number, s: Scratch, stop: Point | 'out', hook: (p: Point, data: Float32Array, cols: number) => void): void {
  const c = model.config, dim = c.dim, hs = c.headSize, H = c.hiddenDim;
  const b = (t: F32 | null) => (t ? t.data : null);
  const idx = stop === 'out' ? 4 : ORDER.indexOf(stop);
  let inp = s.x;
  if (c.preLN) { k.layerNorm(T, dim, s.x, b(lw.attnLnW), b(lw.attnLnB), c.lnEps, s.xb); inp = s.xb; }
  hook('qkvIn', inp, dim);
  if (idx === 0) return;
  k.sgemmNT(T, dim, dim, inp, dim, lw.wq.data, dim, s.q, dim, b(lw.bq));
  k.sgemmNT(T, dim, dim, inp, dim, lw.wk.data, dim, s.k, dim, b(lw.bk));
  k.sgemmNT(T, dim, dim, inp, dim, lw.wv.data, dim, s.v, dim, b(lw.bv));
  const scale = Math.fround(hs ** -0.5);
  for (let i = 0; i < T * dim; i++) s.q[i] = s.q[i]! * scale;
  for (let h = 0; h < c.nHeads; h++) {
    const o = h * hs;
    k.sgemmNT(T, T, hs, s.q.subarray(o), dim, s.k.subarray(o), dim, s.att, T, null);
    k.softmax(T, T, s.att, s.att, 0);
    k.sgemmNN(T, hs, T, s.att, T, s.v.subarray(o), dim, s.ctx.subarray(o), dim, null);
  }
  hook('outProjIn', s.ctx, dim);
  if (idx === 1) return;
  k.sgemmNT(T, dim, dim, s.ctx, dim, lw.wo.data, dim, s.q, dim, b(lw.bo));
  // the residual is formed in xb so a stop before 'out' leaves x untouched
  k.add(T * dim, s.x, s.q, s.xb);
  if (!c.preLN) k.layerNorm(T, dim, s.xb, b(lw.attnLnW), b(lw.attnLnB), c.lnEps, s.xb);
  const resid = s.k; // k is free now: keep the post-attention residual there
  resid.set(s.xb);
  inp = s.xb;
  if (c.preLN) { k.layerNorm(T, dim, resid, b(lw.ffnLnW), b(lw.ffnLnB), c.lnEps, s.xb); inp = s.xb; }
  hook('fc1In', inp, dim);
  if (idx === 2) return;
  k.sgemmNT(T, H, dim, inp, dim, lw.w1.data, dim, s.hb, H, b(lw.b1));
  if (c.activation === 'relu') k.relu(T * H, s.hb, s.hb);
  else k.gelu(T * H, s.hb, s.hb);
  hook('fc2In', s.hb, H);
  if (idx === 3) return;
  k.sgemmNT(T, dim, H, s.hb, H, lw.w2.data, H, s.q, dim, b(lw.b2));
  k.add(T * dim, resid, s.q, s.x);
  if (!c.preLN) k.layerNorm(T, dim, s.x, b(lw.ffnLnW), b(lw.ffnLnB), c.lnEps, s.x);
}

/** The decoder's input for one sample: project_in(embed_tokens[ids]) + embed_positions[t + 2]. */
function embed(model: OPTModel, k: Kernels, ids: Int32Array, out: Float32Array): void {
  const c = model.config, w = model.weights, T = ids.length, dim = c.dim, pd = c.wordEmbedProjDim;
  for (const id of ids) if (!(id >= 0 && id < c.vocabSize)) throw new LowbitError('E_RANGE', `gptqQuantizeOPT: token ${id} is outside the vocabulary of ${c.vocabSize}`);
  if (w.projectIn) {
    const e = new Float32Array(T * pd);
    k.gatherRows(T, pd, w.tokEmb.data, ids, e);
    k.sgemmNT(T, dim, pd, e, pd, w.projectIn.data, pd, out, dim, null);
  } else {
    k.gatherRows(T, dim, w.tokEmb.data, ids, out);
  }
  const pos = Int32Array.from({ length: T }, (_, t) => t + POS_OFFSET);
  const p = new Float32Array(T * dim);
  k.gatherRows(T, dim, w.posEmb.data, pos, p);
  k.add(T * dim, out, p, out);
}

/**
 * GPTQ-quantizes every linear layer of an OPT model (72 for OPT-125m) with calibration `samples`
 * (token id windows of equal length, e.g. from `calibrationSamples`; GPTQ_CPU_PRESET is 32 × 512).
 * Returns the quantized copy (or the model itself with `inPlace`), each layer's GPTQResult and timings.
 * Async: yields to the event loop after each linear so progress can be shown and `signal` honoured.
 */
export async function gptqQuantizeOPT(model: OPTModel, samples: ArrayLike<number>[], opts: GPTQModelOptions): Promise<GPTQModelResult> {
  if (model.isDisposed) throw new LowbitError('E_ARG', 'gptqQuantizeOPT: the model was disposed');
  if (samples.length < 1) throw new LowbitError('E_ARG', 'gptqQuantizeOPT: no calibration samples');
  const T = samples[0]!.length, c = model.config;
  if (T < 1 || T > c.maxPos) throw new LowbitError('E_ARG', `gptqQuantizeOPT: samples must have 1..${c.maxPos} tokens, got ${T}`);
  for (const [i, s] of samples.entries()) {
    if (s.length !== T) throw new LowbitError('E_SHAPE', `gptqQuantizeOPT: sample ${i} has ${s.length} tokens, sample 0 has ${T} (all must be equal)`);
  }
  const mode = opts.sequential ?? 'layer';
  if (mode !== 'layer' && mode !== 'true') throw new LowbitError('E_ARG', `gptqQuantizeOPT: sequential must be 'layer' or 'true', got ${String(mode)}`);
  const t0 = Date.now();
  const q = opts.inPlace ? model : cloneOPT(model);
  const k = q.backend.kernels;
  const dim = c.dim, H = c.hiddenDim, N = samples.length;
  // inps / outs: (N, T, dim) layer inputs and outputs of every sample (opt_sequential's inps / outs)
  let inps = new Float32Array(N * T * dim), outs = new Float32Array(N * T * dim);
  for (let j = 0; j < N; j++) embed(q, k, Int32Array.from(samples[j]!), inps.subarray(j * T * dim, (j + 1) * T * dim));
  const s: Scratch = {
    x: new Float32Array(T * dim), xb: new Float32Array(T * dim), q: new Float32Array(T * dim), k: new Float32Array(T * dim),
    v: new Float32Array(T * dim), ctx: new Float32Array(T * dim), att: new Float32Array(T * T), hb: new Float32Array(T * H),
  };
  const results = new Map<string, GPTQResult>();
  const timings: GPTQLayerTiming[] = [];
  const gram: GramScratch = { xt: new Float32Array(0), g: new Float32Array(0) };
  const groups: Array<[Point, OPTLinear[]]> = [
    ['qkvIn', ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj']], ['outProjIn', ['self_attn.out_proj']], ['fc1In', ['fc1']], ['fc2In', ['fc2']],
  ];
  const total = 6 * c.nLayers;
  let done = 0;
  for (let l = 0; l < c.nLayers; l++) {
    const lw = q.weights.layers[l]!;
    const tm: GPTQLayerTiming = { layer: l, forwardMs: 0, hessianMs: 0, quantizeMs: 0 };
    // passes: 'layer' collects every Hessian in one pass of the unquantized layer; 'true' one pass per group
    const passes: Array<Array<[Point, OPTLinear[]]>> = mode === 'layer' ? [groups] : groups.map((g) => [g]);
    for (const pass of passes) {
      const hess = new Map<Point, Hessian>(pass.map(([p]) => [p, createHessian(p === 'fc2In' ? H : dim)]));
      const stop = pass[pass.length - 1]![0];
      for (let j = 0; j < N; j++) {
        s.x.set(inps.subarray(j * T * dim, (j + 1) * T * dim));
        const tf = Date.now();
        let th = 0;
        runLayer(q, k, lw, T, s, stop, (p, data, cols) => {
          const h = hess.get(p);
          if (!h) return;
          const t1 = Date.now();
          addBatch(h, k, data, T, 1, gram);
          th += Date.now() - t1;
        });
        tm.hessianMs += th;
        tm.forwardMs += Date.now() - tf - th;
      }
      for (const [p, mods] of pass) {
        const h = hess.get(p)!;
        for (const m of mods) {
          if (opts.signal?.aborted) throw new LowbitError('E_ARG', 'gptqQuantizeOPT: aborted');
          const key = `layers.${l}.${m}`;
          const wt = lw[FIELD[m]];
          const [rows, cols] = [wt.shape[0]!, wt.shape[1]!];
          const tq = Date.now();
          const { onProgress: _p, signal: _s, sequential: _q, inPlace: _i, ...g } = opts;
          const r = gptqQuantize(wt.data.slice(), rows, cols, h, { ...g, name: key, kernels: k });
          wt.data.set(r.dequantized);
          tm.quantizeMs += Date.now() - tq;
          results.set(key, r);
          done++;
          const elapsedMs = Date.now() - t0;
          opts.onProgress?.({ layer: l, nLayers: c.nLayers, module: m, done, total, elapsedMs, etaMs: (elapsedMs / done) * (total - done), loss: r.loss });
          await new Promise<void>((res) => setTimeout(res, 0));
        }
        hess.delete(p);
      }
    }
    // outputs of the quantized layer: the next layer's inputs
    const tf = Date.now();
    for (let j = 0; j < N; j++) {
      s.x.set(inps.subarray(j * T * dim, (j + 1) * T * dim));
      runLayer(q, k, lw, T, s, 'out', () => {});
      outs.set(s.x, j * T * dim);
    }
    tm.forwardMs += Date.now() - tf;
    timings.push(tm);
    [inps, outs] = [outs, inps];
  }
  return { model: q, results, timings, totalMs: Date.now() - t0 };
}

/**
 * The input of every decoder layer for one sample (T token ids), through the same staged layer code the
 * quantizer uses: out[l] is (T, dim). For checking that code against `forward`'s observe points.
 */
export function decoderLayerInputs(model: OPTModel, ids: ArrayLike<number>): Float32Array[] {
  const c = model.config, k = model.backend.kernels, T = ids.length, dim = c.dim;
  const s: Scratch = {
    x: new Float32Array(T * dim), xb: new Float32Array(T * dim), q: new Float32Array(T * dim), k: new Float32Array(T * dim),
    v: new Float32Array(T * dim), ctx: new Float32Array(T * dim), att: new Float32Array(T * T), hb: new Float32Array(T * c.hiddenDim),
  };
  embed(model, k, Int32Array.from(ids), s.x);
  const out: Float32Array[] = [];
  for (const lw of model.weights.layers) {
    out.push(s.x.slice());
    runLayer(model, k, lw, T, s, 'out', () => {});
  }
  return out;
}

/**
 * The RTN baseline (opt.py --nearest): a copy of the model with every decoder linear quantized by
 * GPTQ's find_params + quantize per row (or per group), no calibration.
 */
export function rtnQuantizeOPT(model: OPTModel, opts: { bits: number; symmetric?: boolean; groupSize?: number; inPlace?: boolean }): OPTModel {
  const q = opts.inPlace ? model : cloneOPT(model);
  for (const lw of q.weights.layers) {
    for (const m of OPT_GPTQ_MODULES) {
      const wt = lw[FIELD[m]];
      wt.data.set(rtnQuantize(wt.data.slice(), wt.shape[0]!, wt.shape[1]!, opts));
    }
  }
  return q;
}
