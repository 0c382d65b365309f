// OPT decoder forward pass in float32 (HF transformers modeling_opt.py, OPTForCausalLM), laid out as llama2.c run.c.

import { LowbitError } from '../../errors.js';
import { readCheckpoint } from '../../io/checkpoint.js';
import type { RawTensor } from '../../io/tensor.js';
import { currentBackend, type Backend } from '../../runtime.js';
import { Tensor } from '../../tensor.js';
import { POS_OFFSET, configFromHF, type OPTConfig } from './config.js';
import { loadWeights, weightTensors, type F32, type OPTWeights } from './weights.js';

type I32 = Tensor<'i32'>;

// ---------------------------------------------------------------------------------------------
// Model: config + weights on one backend
// ---------------------------------------------------------------------------------------------

export interface LoadOptions {
  /** Backend whose kernels run the model and whose heap holds the weights. Default: `currentBackend()`. */
  backend?: Backend;
  /** Used in error messages when `weights` are bytes. */
  fileName?: string;
}

export class OPTModel {
  readonly config: OPTConfig;
  readonly weights: OPTWeights;
  readonly backend: Backend;
  private disposed = false;

  constructor(config: OPTConfig, weights: OPTWeights, backend: Backend) {
    this.config = config;
    this.weights = weights;
    this.backend = backend;
  }

  get isDisposed(): boolean { return this.disposed; }

  /** Frees the weights' WASM memory. The model (and any RunState of it) is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    for (const t of weightTensors(this.weights)) t.dispose();
    this.disposed = true;
  }
}

/**
 * Loads an OPT model from its `config.json` (object, text or bytes) and its weights: a safetensors or torch.save
 * zip file (chosen by content), or tensors already read (e.g. from `loadShardedSafetensors`). Weights are converted
 * to f32 and copied into the backend's heap; the input buffers are not kept.
 */
export function loadOPT(config: unknown, weights: Uint8Array | ArrayBuffer | Map<string, RawTensor>, opts: LoadOptions = {}): OPTModel {
  const cfg = configFromHF(config);
  const backend = opts.backend ?? currentBackend();
  const tensors = weights instanceof Map ? weights : readCheckpoint(weights, opts.fileName !== undefined ? { fileName: opts.fileName } : {}).tensors;
  return new OPTModel(cfg, loadWeights(cfg, tensors, backend), backend);
}

// ---------------------------------------------------------------------------------------------
// KV cache and run state: allocated once, resident in the model's heap
// ---------------------------------------------------------------------------------------------

/** Keys and values of every layer for `batch` sequences of up to `capacity` positions. */
export class KVCache {
  readonly nLayers: number;
  readonly batch: number;
  readonly capacity: number;
  readonly dim: number;
  readonly key: F32[]; // (nLayers) × (batch, capacity, dim), heads side by side in dim
  readonly value: F32[]; // (nLayers) × (batch, capacity, dim)
  readonly mask: Uint8Array; // (batch, capacity) 1 where the position holds a real token, 0 for padding
  /** Positions 0..length-1 are filled (the same for every sequence of the batch). */
  length = 0;

  constructor(c: OPTConfig, batch: number, capacity: number, heap: Backend['heap'], owned: Tensor[]) {
    this.nLayers = c.nLayers;
    this.batch = batch;
    this.capacity = capacity;
    this.dim = c.dim;
    const alloc = () => { const t = Tensor.empty([batch, capacity, c.dim], 'f32', { heap }) as F32; owned.push(t); return t; };
    this.key = [];
    this.value = [];
    for (let l = 0; l < c.nLayers; l++) { this.key.push(alloc()); this.value.push(alloc()); }
    this.mask = new Uint8Array(batch * capacity);
  }

  /** Forgets every position (the buffers are kept). */
  reset(): void { this.length = 0; }

  /** Bytes of K and V. */
  get bytes(): number { return 2 * this.nLayers * this.batch * this.capacity * this.dim * 4; }
}

export interface RunStateOptions {
  /** Sequences per forward call (default 1). */
  batch?: number;
  /** Most new tokens per sequence in one forward call (default: maxContext). */
  maxTokens?: number;
  /** KV cache positions per sequence (default and at most: max_position_embeddings, or more with left padding). */
  maxContext?: number;
  /**
   * Rows of the logits buffer (default: batch × maxTokens when that is at most 64 MiB of logits, else batch).
   * `logits: 'all'` needs batch × T rows; `'last'` needs batch.
   */
  logitRows?: number;
}

/** Buffers for one forward pass, sized once (llama2.c `RunState`). `rows` = batch × maxTokens. */
export class RunState {
  readonly batch: number;
  readonly maxTokens: number;
  readonly maxContext: number;
  readonly logitRows: number;
  readonly x: F32; // (rows, dim) residual stream
  readonly xb: F32; // (rows, dim) LayerNorm output, then attention context (out_proj input)
  readonly q: F32; // (rows, dim) scaled queries; then out_proj / fc2 output before the residual add
  readonly k: F32; // (rows, dim) new keys (copied into the cache per sequence)
  readonly v: F32; // (rows, dim) new values
  readonly hb: F32; // (rows, hiddenDim) FFN hidden
  readonly emb: F32 | null; // (rows, wordEmbedProjDim) token embeddings before project_in
  readonly hOut: F32 | null; // (rows, wordEmbedProjDim) project_out output: the LM head's input
  readonly logits: F32; // (logitRows, vocabSize)
  readonly ids: I32; // (rows) token ids of this call
  readonly posIds: I32; // (rows) position-table rows: cumsum(mask) * mask - 1 + 2
  readonly cache: KVCache;
  /** Which buffer holds the final hidden states after a forward (rows of wordEmbedProjDim). */
  final: F32;
  /** Tokens per sequence in the last forward call. */
  lastT = 0;
  private readonly owned: Tensor[];

  constructor(readonly model: OPTModel, opts: RunStateOptions = {}) {
    const c = model.config;
    const heap = model.backend.heap;
    const batch = opts.batch ?? 1;
    const maxContext = opts.maxContext ?? c.maxPos;
    const maxTokens = opts.maxTokens ?? maxContext;
    for (const [k, v] of Object.entries({ batch, maxTokens, maxContext })) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new LowbitError('E_ARG', `RunState: ${k} must be a positive integer, got ${v}`);
    }
    if (maxTokens > maxContext) throw new LowbitError('E_ARG', `RunState: maxTokens (${maxTokens}) exceeds maxContext (${maxContext})`);
    const rows = batch * maxTokens;
    const logitRows = opts.logitRows ?? (rows * c.vocabSize * 4 <= 64 * 2 ** 20 ? rows : batch);
    if (!Number.isSafeInteger(logitRows) || logitRows < batch) {
      throw new LowbitError('E_ARG', `RunState: logitRows must be an integer >= batch (${batch}), got ${logitRows}`);
    }
    this.batch = batch;
    this.maxTokens = maxTokens;
    this.maxContext = maxContext;
    this.logitRows = logitRows;
    const owned: Tensor[] = [];
    this.owned = owned;
    try {
      const f = (shape: number[]) => { const t = Tensor.empty(shape, 'f32', { heap }) as F32; owned.push(t); return t; };
      const i = (n: number) => { const t = Tensor.empty([n], 'i32', { heap }) as I32; owned.push(t); return t; };
      const proj = c.wordEmbedProjDim !== c.dim;
      this.x = f([rows, c.dim]);
      this.xb = f([rows, c.dim]);
      this.q = f([rows, c.dim]);
      this.k = f([rows, c.dim]);
      this.v = f([rows, c.dim]);
      this.hb = f([rows, c.hiddenDim]);
      this.emb = proj ? f([rows, c.wordEmbedProjDim]) : null;
      this.hOut = proj ? f([rows, c.wordEmbedProjDim]) : null;
      this.logits = f([logitRows, c.vocabSize]);
      this.ids = i(rows);
      this.posIds = i(rows);
      this.cache = new KVCache(c, batch, maxContext, heap, owned);
      this.final = this.x;
    } catch (e) {
      for (const t of owned) t.dispose();
      throw e;
    }
  }

  /** Frees the state's WASM memory. */
  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
  }
}

/** Allocates the run state (activations, scores, logits, KV cache) of `model` once. */
export function createRunState(model: OPTModel, opts: RunStateOptions = {}): RunState {
  return new RunState(model, opts);
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

/** Activation checkpoints a calibration observer may read (RPTQ R1..R5 are qkvIn, q/k, outProjIn, fc1In, fc2In). */
export type ObservePoint = 'qkvIn' | 'q' | 'k' | 'v' | 'outProjIn' | 'fc1In' | 'fc2In';

/** Sees `rows × cols` activations at `point` of `layer`. `data` is a live view: read it, do not keep it. */
export type Observer = (layer: number, point: ObservePoint, data: Float32Array, rows: number, cols: number) => void;

export interface ForwardOptions {
  /** (batch, T) attention mask of the new tokens: 1 real, 0 padding (left padding). Default all 1. */
  mask?: ArrayLike<number>;
  /** Which logits to compute: every position, the last of each sequence (default), or none. */
  logits?: 'all' | 'last' | 'none';
  /** Called with intermediate activations (calibration statistics); q before its headSize^-0.5 scaling. */
  observe?: Observer;
}

/**
 * Runs `tokens` (batch × T ids, row-major; T new tokens per sequence) through the decoder at cache positions
 * pos..pos+T-1 and returns logits: (batch × T, vocab) for `'all'`, (batch, vocab) for `'last'` (default).
 * `pos` is at most the cache's length; a smaller `pos` rewinds the cache. Position ids come from the mask as in HF:
 * `cumsum(mask) * mask - 1 + 2`, so left-padded sequences see the same positions as unpadded ones, and padded keys
 * are masked out of attention. The returned array is a view of the state's logits buffer, valid until the next call.
 */
export function forward(model: OPTModel, s: RunState, tokens: ArrayLike<number>, pos: number, opts: ForwardOptions = {}): Float32Array {
  if (model.isDisposed) throw new LowbitError('E_ARG', 'forward: the model was disposed');
  if (s.model !== model) throw new LowbitError('E_ARG', 'forward: the run state belongs to another model');
  const c = model.config, w = model.weights, k = model.backend.kernels, cache = s.cache;
  const B = s.batch, dim = c.dim, hs = c.headSize, cap = cache.capacity, pd = c.wordEmbedProjDim;
  const n = tokens.length;
  if (n === 0 || n % B !== 0) throw new LowbitError('E_ARG', `forward: ${n} tokens do not split into ${B} sequences of T >= 1 tokens`);
  const T = n / B;
  if (T > s.maxTokens) throw new LowbitError('E_ARG', `forward: ${T} tokens per sequence exceed the run state's maxTokens (${s.maxTokens})`);
  if (!Number.isSafeInteger(pos) || pos < 0 || pos > cache.length) {
    throw new LowbitError('E_ARG', `forward: pos must be an integer in [0, ${cache.length}] (the cache length), got ${pos}`);
  }
  if (pos + T > cap) {
    throw new LowbitError('E_RANGE', `forward: positions ${pos}..${pos + T - 1} do not fit the KV cache of ${cap} positions`);
  }
  const mode = opts.logits ?? 'last';
  if (mode === 'all' && n > s.logitRows) {
    throw new LowbitError('E_ARG', `forward: logits 'all' needs ${n} rows, the run state has ${s.logitRows} (set RunStateOptions.logitRows or use 'last')`);
  }
  const mask = opts.mask;

  // ---- ids and positions (validated before anything is written)
  const padded = maskedPositions('forward', c, tokens, mask, B, T, pos, cache.mask, cap, s.ids.data, s.posIds.data);
  const L = pos + T; // keys visible to the last new token

  // ---- embeddings: x = project_in(embed_tokens[ids]) + embed_positions[posIds]
  if (w.projectIn) {
    k.gatherRows(n, pd, w.tokEmb.data, s.ids.data, s.emb!.data);
    k.sgemmNT(n, dim, pd, s.emb!.data, pd, w.projectIn.data, pd, s.x.data, dim, null);
  } else {
    k.gatherRows(n, dim, w.tokEmb.data, s.ids.data, s.x.data);
  }
  k.gatherRows(n, dim, w.posEmb.data, s.posIds.data, s.xb.data);
  k.add(n * dim, s.x.data, s.xb.data, s.x.data);

  const scale = Math.fround(hs ** -0.5);
  const obs = opts.observe;
  for (let l = 0; l < c.nLayers; l++) {
    const lw = w.layers[l]!;
    const bias = (t: F32 | null) => (t ? t.data : null);

    // ---- self-attention block
    let inp = s.x;
    if (c.preLN) {
      k.layerNorm(n, dim, s.x.data, bias(lw.attnLnW), bias(lw.attnLnB), c.lnEps, s.xb.data);
      inp = s.xb;
    }
    if (obs) obs(l, 'qkvIn', inp.data.subarray(0, n * dim), n, dim);
    k.sgemmNT(n, dim, dim, inp.data, dim, lw.wq.data, dim, s.q.data, dim, bias(lw.bq));
    k.sgemmNT(n, dim, dim, inp.data, dim, lw.wk.data, dim, s.k.data, dim, bias(lw.bk));
    k.sgemmNT(n, dim, dim, inp.data, dim, lw.wv.data, dim, s.v.data, dim, bias(lw.bv));
    if (obs) {
      obs(l, 'q', s.q.data.subarray(0, n * dim), n, dim);
      obs(l, 'k', s.k.data.subarray(0, n * dim), n, dim);
      obs(l, 'v', s.v.data.subarray(0, n * dim), n, dim);
    }
    const q = s.q.data;
    for (let i = 0; i < n * dim; i++) q[i] = q[i]! * scale; // HF: q_proj(x) * scaling, bias included
    const kc = cache.key[l]!.data, vc = cache.value[l]!.data;
    for (let b = 0; b < B; b++) {
      kc.set(s.k.data.subarray(b * T * dim, (b + 1) * T * dim), (b * cap + pos) * dim);
      vc.set(s.v.data.subarray(b * T * dim, (b + 1) * T * dim), (b * cap + pos) * dim);
    }
    for (let b = 0; b < B; b++) {
      // all heads in one call: softmax(q_h·K_hᵀ, padded keys masked, causal: query t at position pos + t
      // sees keys 0..pos + t) · V_h
      const keyMask = padded[b] ? cache.mask.subarray(b * cap, b * cap + L) : null;
      k.attention(c.nHeads, hs, T, L, s.q.data.subarray(b * T * dim), dim, cache.key[l]!.data.subarray(b * cap * dim), dim,
        cache.value[l]!.data.subarray(b * cap * dim), s.xb.data.subarray(b * T * dim), dim, pos, keyMask, 0);
    }
    if (obs) obs(l, 'outProjIn', s.xb.data.subarray(0, n * dim), n, dim);
    k.sgemmNT(n, dim, dim, s.xb.data, dim, lw.wo.data, dim, s.q.data, dim, bias(lw.bo));
    k.add(n * dim, s.x.data, s.q.data, s.x.data);
    if (!c.preLN) k.layerNorm(n, dim, s.x.data, bias(lw.attnLnW), bias(lw.attnLnB), c.lnEps, s.x.data);

    // ---- FFN block
    inp = s.x;
    if (c.preLN) {
      k.layerNorm(n, dim, s.x.data, bias(lw.ffnLnW), bias(lw.ffnLnB), c.lnEps, s.xb.data);
      inp = s.xb;
    }
    if (obs) obs(l, 'fc1In', inp.data.subarray(0, n * dim), n, dim);
    k.sgemmNT(n, c.hiddenDim, dim, inp.data, dim, lw.w1.data, dim, s.hb.data, c.hiddenDim, bias(lw.b1));
    if (c.activation === 'relu') k.relu(n * c.hiddenDim, s.hb.data, s.hb.data);
    else k.gelu(n * c.hiddenDim, s.hb.data, s.hb.data);
    if (obs) obs(l, 'fc2In', s.hb.data.subarray(0, n * c.hiddenDim), n, c.hiddenDim);
    k.sgemmNT(n, dim, c.hiddenDim, s.hb.data, c.hiddenDim, lw.w2.data, c.hiddenDim, s.q.data, dim, bias(lw.b2));
    k.add(n * dim, s.x.data, s.q.data, s.x.data);
    if (!c.preLN) k.layerNorm(n, dim, s.x.data, bias(lw.ffnLnW), bias(lw.ffnLnB), c.lnEps, s.x.data);
  }
  cache.length = L;
  s.lastT = T;

  // ---- final LayerNorm, project_out
  let fin = s.x;
  if (c.finalLN) {
    k.layerNorm(n, dim, s.x.data, w.finalLnW ? w.finalLnW.data : null, w.finalLnB ? w.finalLnB.data : null, c.lnEps, s.xb.data);
    fin = s.xb;
  }
  if (w.projectOut) {
    k.sgemmNT(n, pd, dim, fin.data, dim, w.projectOut.data, dim, s.hOut!.data, pd, null);
    fin = s.hOut!;
  }
  s.final = fin;

  // ---- LM head
  if (mode === 'none') return s.logits.data.subarray(0, 0);
  if (mode === 'all') return lmHead(model, s, 0, n);
  if (T > 1) {
    // move each sequence's last row to row b (rows only move down, so in order is safe)
    const f = fin.data;
    for (let b = 0; b < B; b++) f.copyWithin(b * pd, (b * T + T - 1) * pd, (b * T + T) * pd);
  }
  return lmHead(model, s, 0, B);
}

/**
 * Validates B×T new `tokens` and their `mask` (1 real, 0 left padding; default all 1), then writes their ids, their HF
 * position ids (`cumsum(mask) * mask - 1 + 2` over the cached and new positions of each sequence, so left-padded
 * sequences see the positions unpadded ones would) and their entries of the cache mask (batch × cap). Nothing is
 * written when a check fails. Returns, per sequence, whether any of its keys 0..pos+T-1 is padding (attention then
 * needs its mask row). Shared by `forward` and the quantized decoder's `qforward`.
 */
export function maskedPositions(what: string, c: OPTConfig, tokens: ArrayLike<number>, mask: ArrayLike<number> | undefined,
  B: number, T: number, pos: number, cacheMask: Uint8Array, cap: number, ids: Int32Array, posIds: Int32Array): boolean[] {
  const n = B * T;
  if (mask !== undefined && mask.length !== n) throw new LowbitError('E_SHAPE', `${what}: mask has ${mask.length} entries, tokens have ${n}`);
  for (let i = 0; i < n; i++) {
    const id = tokens[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
      throw new LowbitError('E_RANGE', `${what}: token ${i} is ${id}, outside the vocabulary of ${c.vocabSize}`);
    }
    const m = mask === undefined ? 1 : mask[i];
    if (m !== 0 && m !== 1) throw new LowbitError('E_ARG', `${what}: mask[${i}] is ${m}; expected 0 or 1`);
  }
  const p = new Int32Array(n);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let j = 0; j < pos; j++) count += cacheMask[b * cap + j]!;
    for (let t = 0; t < T; t++) {
      const m = mask === undefined ? 1 : mask[b * T + t]!;
      count += m;
      if (m && count - 1 >= c.maxPos) {
        throw new LowbitError('E_RANGE', `${what}: sequence ${b} reaches ${count} tokens, more than max_position_embeddings (${c.maxPos})`);
      }
      p[b * T + t] = (m ? count - 1 : -1) + POS_OFFSET;
    }
  }
  posIds.set(p);
  for (let i = 0; i < n; i++) ids[i] = tokens[i]!;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) cacheMask[b * cap + pos + t] = mask === undefined ? 1 : mask[b * T + t]!;
  }
  const L = pos + T;
  return Array.from({ length: B }, (_, b) => cacheMask.subarray(b * cap, b * cap + L).includes(0));
}

/**
 * Logits of final-hidden rows row0..row0+rows-1 of the last forward (rows of `s.final`), written to the start
 * of the logits buffer: (rows, vocab). Used by `forward` and, in chunks, by perplexity over long windows.
 */
export function lmHead(model: OPTModel, s: RunState, row0: number, rows: number): Float32Array {
  const c = model.config, pd = c.wordEmbedProjDim, V = c.vocabSize;
  if (rows > s.logitRows) throw new LowbitError('E_ARG', `lmHead: ${rows} rows exceed the logits buffer's ${s.logitRows}`);
  model.backend.kernels.sgemmNT(rows, V, pd, s.final.data.subarray(row0 * pd), pd, model.weights.lmHead.data, pd, s.logits.data, V, null);
  return s.logits.data.subarray(0, rows * V);
}
