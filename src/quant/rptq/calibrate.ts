// RPTQ calibration for OPT: per-channel running min/max of R1..R5 per decoder layer, layer by layer, each layer's input
// taken from the already-quantized previous layer (RPTQ4LLM quantize/opt_reorder_quantize.py: `inps` → layer → `outs`).

import { LowbitError } from '../../errors.js';
import type { OPTModel } from '../../models/opt/model.js';
import { QRunState, QuantizedOPT, embed, floatQLayer, layerForward, type QLayer, type QObservePoint } from '../../models/opt/quantized.js';
import { mulberry32 } from '../../models/opt/sample.js';
import { rptqRecipe } from './recipe.js';

/** Running per-channel range of one tensor. */
export interface ChannelRange {
  min: Float32Array;
  max: Float32Array;
}

/**
 * Statistics of one decoder layer, channels in the layer's original (unfolded) order.
 * r1: self_attn_layer_norm out; q, k: q_proj / k_proj out (R2; q before the head scaling); v: v_proj out (V cache);
 * attnOut: out_proj in (R3); r4: final_layer_norm out; r5: fc2 in.
 */
export type LayerStats = Record<QObservePoint, ChannelRange>;

export interface CalibrationProgress {
  layer: number;
  layers: number;
  /** Sample passes done so far, out of `total` (layers × samples × passes per layer). */
  done: number;
  total: number;
  elapsedMs: number;
  /** Remaining time at the average pace so far. */
  etaMs: number;
}

export interface CalibrateOptions {
  onProgress?: (p: CalibrationProgress) => void;
  /**
   * Called once layer l's statistics are complete; the returned layer (the quantized one) replaces layer l when the
   * calibration inputs are propagated to layer l + 1, as the reference does. Without it every layer sees float inputs.
   */
  quantizeLayer?: (l: number, stats: LayerStats) => QLayer;
  /** Also sees every observed tensor of the float pass of layer l (e.g. GPTQ Hessians); `data` is a live view. */
  observe?: (l: number, point: QObservePoint, data: Float32Array, rows: number, cols: number) => void;
  /** Attention-probability bits used when propagating through quantized layers (default 16). */
  probsBits?: number;
}

export interface CalibrationResult {
  layers: LayerStats[];
  samples: number;
  seqLen: number;
  ms: number;
}

/**
 * `count` windows of `seqLen` tokens from `ids`, starts drawn as RPTQ4LLM's get_wikitext2 does
 * (uniform in [0, len − seqLen], seeded). E_ARG when the text is shorter than one sample.
 */
export function calibrationSamples(ids: ArrayLike<number>, count: number, seqLen: number, seed = 0): Int32Array[] {
  for (const [k, v] of Object.entries({ count, seqLen })) {
    if (!Number.isSafeInteger(v) || v < 1) throw new LowbitError('E_ARG', `calibrationSamples: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (!ids || ids.length < seqLen) {
    throw new LowbitError('E_ARG', `calibrationSamples: the calibration text has ${ids?.length ?? 0} tokens, shorter than one sample of ${seqLen} tokens`);
  }
  const rng = mulberry32(seed >>> 0);
  const out: Int32Array[] = [];
  for (let i = 0; i < count; i++) {
    const start = Math.floor(rng() * (ids.length - seqLen + 1));
    out.push(Int32Array.from({ length: seqLen }, (_, j) => ids[start + j]!));
  }
  return out;
}

function newRange(n: number): ChannelRange {
  return { min: new Float32Array(n).fill(Infinity), max: new Float32Array(n).fill(-Infinity) };
}

function update(r: ChannelRange, x: Float32Array, rows: number, cols: number): void {
  const mn = r.min, mx = r.max;
  for (let t = 0; t < rows; t++) {
    const o = t * cols;
    for (let j = 0; j < cols; j++) {
      const v = x[o + j]!;
      if (v < mn[j]!) mn[j] = v;
      if (v > mx[j]!) mx[j] = v;
    }
  }
}

/**
 * Runs calibration samples (equal-length token id arrays) through `model` layer by layer and collects the running
 * per-channel min/max of the five RPTQ tensors of every layer. Memory: the statistics plus one residual stream per
 * sample (samples × seqLen × dim f32, the reference's `inps`), never the activations at the observed points.
 * Pre-LN OPT only (E_UNSUPPORTED otherwise); E_ARG for no samples or samples of different lengths.
 */
export function calibrate(model: OPTModel, samples: ArrayLike<number>[], opts: CalibrateOptions = {}): CalibrationResult {
  const c = model.config;
  if (!c.preLN) throw new LowbitError('E_UNSUPPORTED', 'calibrate: post-LN OPT (do_layer_norm_before = false) is not supported');
  if (!Array.isArray(samples) || samples.length === 0) throw new LowbitError('E_ARG', 'calibrate: need at least one calibration sample');
  const T = samples[0]!.length;
  if (!(T >= 1)) throw new LowbitError('E_ARG', 'calibrate: calibration samples must not be empty');
  if (T > c.maxPos) throw new LowbitError('E_ARG', `calibrate: samples of ${T} tokens exceed max_position_embeddings (${c.maxPos})`);
  samples.forEach((s, i) => {
    if (s.length !== T) throw new LowbitError('E_ARG', `calibrate: sample ${i} has ${s.length} tokens, sample 0 has ${T} (all samples must have the same length)`, { index: i });
  });
  const t0 = Date.now(), N = samples.length, w = model.weights;
  const passes = opts.quantizeLayer ? 2 : 1;
  const total = c.nLayers * N * passes;
  let done = 0;
  const tick = (layer: number) => {
    done++;
    if (opts.onProgress) {
      const elapsedMs = Date.now() - t0;
      opts.onProgress({ layer, layers: c.nLayers, done, total, elapsedMs, etaMs: (elapsedMs / done) * (total - done) });
    }
  };
  const shell = (layer: QLayer) => new QuantizedOPT(c, rptqRecipe('FP'), {
    tokEmb: w.tokEmb, posEmb: w.posEmb, projectIn: w.projectIn, projectOut: w.projectOut, finalLnW: w.finalLnW, finalLnB: w.finalLnB,
    lmHead: { outDim: c.vocabSize, inDim: c.wordEmbedProjDim, w: w.lmHead, b: null, q: null, packed: null }, tied: w.tied, layers: [layer],
  }, model.backend, []);
  const stateOf = (m: QuantizedOPT) => new QRunState(m, { batch: 1, maxTokens: T, maxContext: T, logitRows: 1 });

  // residual stream of every sample after the embeddings
  const resid: Float32Array[] = [];
  {
    const m = shell(floatQLayer(w.layers[0]!, c)), s = stateOf(m);
    try {
      for (const ids of samples) { embed(m, s, ids, 0, 1, T); resid.push(s.x.data.slice(0, T * c.dim)); }
    } finally { s.dispose(); }
  }
  const layers: LayerStats[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const st: LayerStats = {
      r1: newRange(c.dim), q: newRange(c.dim), k: newRange(c.dim), v: newRange(c.dim), attnOut: newRange(c.dim),
      r4: newRange(c.dim), r5: newRange(c.hiddenDim),
    };
    const fm = shell(floatQLayer(w.layers[l]!, c)), fs = stateOf(fm);
    try {
      for (let j = 0; j < N; j++) {
        fs.x.data.set(resid[j]!);
        layerForward(fm, fm.parts.layers[0]!, 0, fs, 1, T, 0, 16, (p, data, rows, cols) => {
          update(st[p], data, rows, cols);
          opts.observe?.(l, p, data, rows, cols);
        });
        if (!opts.quantizeLayer) resid[j]!.set(fs.x.data.subarray(0, T * c.dim));
        tick(l);
      }
    } finally { fs.dispose(); }
    layers.push(st);
    if (opts.quantizeLayer) {
      const ql = opts.quantizeLayer(l, st);
      const qm = shell(ql), qs = stateOf(qm);
      try {
        for (let j = 0; j < N; j++) {
          qs.x.data.set(resid[j]!);
          layerForward(qm, ql, 0, qs, 1, T, 0, opts.probsBits ?? 16);
          resid[j]!.set(qs.x.data.subarray(0, T * c.dim));
          tick(l);
        }
      } finally { qs.dispose(); }
    }
  }
  return { layers, samples: N, seqLen: T, ms: Date.now() - t0 };
}
