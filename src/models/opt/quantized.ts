// The RPTQ-quantized OPT decoder: reorder folded into the weights, reorder-LayerNorm (input gather), weights quantized per
// (row × input cluster) or (row × group of folded input columns), activations quantized per cluster with static calibrated ranges, a bit-packed per-cluster
// KV cache, attention probabilities on a fixed grid (arXiv 2304.01089; RPTQ4LLM models/int_opt_layer.py).
//
// Execution (see `Execution`): by default quantized linears run the qmatmul kernels on the packed codes: weight-only
// (`qlinear`, f32 activations: W4A16 and the KV presets) or integer × integer (`qlinearIntF32`: the activation is
// quantized inside the kernels' prep) when the input activation is quantized per cluster with exactly the weight's
// segments (RPTQ W4A8 / W4A4: R1→q/k/v, R3→out_proj, R4→fc1, R5→fc2). Other quantized activations (q/k outputs, per-tensor/per-channel baselines) are fake-quantized:
// quantizePack → dequantizeUnpack with their static per-segment (scale, zero). 'dequantized' execution keeps f32
// copies of the dequantized weights and fake-quantizes every activation (the reference numerics).

import { LowbitError } from '../../errors.js';
import { formatForBits, packedRowBytes, type PackedFormat } from '../../quant/formats.js';
import type { QuantizedTensor } from '../../quant/types.js';
import { dequantize } from '../../quant/quantize.js';
import { packQLinear, qlinear, qlinearIntF32, QLinearScratch, type QLinear as PackedLinear } from '../../quant/qlinear.js';
import type { OptLayerMaps } from '../../quant/rptq/fold.js';
import type { Recipe } from '../../quant/rptq/recipe.js';
import type { Kernels } from '../../kernels/index.js';
import type { PackedRows } from '../../kernels/f32.js';
import type { Backend } from '../../runtime.js';
import { Tensor } from '../../tensor.js';
import type { OPTConfig } from './config.js';
import { maskedPositions } from './model.js';
import type { F32, OPTLayerWeights } from './weights.js';

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/**
 * Static per-segment quantization of an activation (or KV) tensor whose channels are already in cluster order:
 * segment s covers channels offsets[s]..offsets[s+1]−1 and uses (scale[s], zero[s]), asymmetric:
 * q = clamp(round(x / s) + z, 0, 2^b − 1), x' = s · (q − z).
 */
export interface ActQuant {
  bits: number;
  format: PackedFormat;
  offsets: Int32Array;
  scale: Float32Array;
  zero: Uint8Array;
}

/**
 * How quantized linears run. 'integer': the packed codes through the qmatmul kernels (src/quant/qlinear.ts):
 * weight-only `qlinear` (f32 activations; W4A16) or integer × integer `qlinearIntF32` when the input activation is
 * quantized per cluster with the same segments as the weight (W4A8, W4A4); no f32 copy of the weights exists.
 * 'dequantized': f32 weights dequantized once, f32 GEMM, activations fake-quantized (the reference numerics).
 */
export type Execution = 'integer' | 'dequantized';

/** A linear layer [out, in]: float weights, or packed codes run by the integer kernels or dequantized once. */
export interface QLinear {
  outDim: number;
  inDim: number;
  /** f32 weights in the backend's heap: the float weights, or the dequantized codes ('dequantized' execution). Null when `packed`. */
  w: F32 | null;
  b: F32 | null;
  /** Packed codes + (scale, zero) per (row × segment): perRowCluster / perChannel / perGroup layouts of the quant core. */
  q: QuantizedTensor | null;
  /** The codes in the qmatmul kernels' layout, resident in the heap ('integer' execution). */
  packed: PackedLinear | null;
}

/**
 * Integer execution: packs q/k/v_proj of `layer` into one [3·dim, dim] linear (rows q, then k, then v; same input
 * segments) and frees the three separate packings. No-op unless all three are packed with equal segments.
 */
export function fuseQKV(be: Backend, layer: QLayer, owned: Disposable[]): void {
  const { q, k, v } = layer;
  if (!q.packed || !k.packed || !v.packed || !q.q || !k.q || !v.q) return;
  const a = q.q, parts = [q.q, k.q, v.q];
  if (!parts.every((t) => t.format === a.format && t.cols === a.cols && t.perm === null && t.rowPeriod === t.rows &&
    t.offsets.length === a.offsets.length && t.offsets.every((x, i) => x === a.offsets[i]))) return;
  const rows = parts.reduce((n, t) => n + t.rows, 0);
  const cat = <T extends Uint8Array | Float32Array>(xs: T[], make: (n: number) => T): T => {
    const out = make(xs.reduce((n, x) => n + x.length, 0));
    let o = 0;
    for (const x of xs) { out.set(x as never, o); o += x.length; }
    return out;
  };
  const fused: QuantizedTensor = {
    ...a, shape: [rows, a.cols], rows, rowPeriod: rows,
    qs: cat(parts.map((t) => t.qs), (n) => new Uint8Array(n)),
    scale: cat(parts.map((t) => t.scale), (n) => new Float32Array(n)),
    zero: cat(parts.map((t) => t.zero), (n) => new Uint8Array(n)),
  };
  const packed = packQLinear(fused, { kernels: be.kernels, heap: be.heap });
  owned.push(packed);
  const cpu = q.b && k.b && v.b ? cat([q.b.data.slice(), k.b.data.slice(), v.b.data.slice()], (n) => new Float32Array(n)) : null;
  // the fused bias lives in the heap (kernels read it in place); `bias` is a fresh view of it
  const bt = cpu && be.heap ? heapF32(be, cpu, [cpu.length], owned) : null;
  for (const l of [q, k, v]) { l.packed!.dispose(); l.packed = null; }
  layer.qkv = bt ? { packed, get bias() { return bt.data; } } : { packed, bias: cpu };
}

/** Something the quantized model frees on dispose (heap tensors, packed linears). */
export interface Disposable { dispose(): void }

/** A QLinear of codes `q` for `execution` (`deq`: the dequantized weights if already at hand). */
export function makeQLinear(be: Backend, q: QuantizedTensor, b: F32 | null, execution: Execution, owned: Disposable[], deq?: Float32Array): QLinear {
  const [outDim, inDim] = [q.rows, q.cols];
  if (execution === 'integer') {
    const packed = packQLinear(q, { kernels: be.kernels, heap: be.heap });
    owned.push(packed);
    return { outDim, inDim, w: null, b, q, packed };
  }
  const d = deq ?? (dequantize(q, { kernels: be.kernels }).data as Float32Array);
  return { outDim, inDim, w: heapF32(be, d, [outDim, inDim], owned), b, q, packed: null };
}

export interface QLayerAct {
  r1: ActQuant | null; // self_attn_layer_norm out (q/k/v_proj in), R1 clusters
  q: ActQuant | null; // q_proj out (before the head scaling), R2 clusters
  k: ActQuant | null; // k_proj out when the KV cache is float, R2 clusters
  attnOut: ActQuant | null; // out_proj in, R3 clusters
  r4: ActQuant | null; // final_layer_norm out (fc1 in), R4 clusters
  r5: ActQuant | null; // fc2 in, R5 clusters
}

/** One decoder layer of the quantized model (pre-LN OPT). */
export interface QLayer {
  ln1W: F32 | null;
  ln1B: F32 | null;
  ln2W: F32 | null;
  ln2B: F32 | null;
  /** Reorder-LayerNorm input index (R1/R4): LN(x[..., perm]) · γ' + β'. Null = plain LayerNorm. */
  ln1Perm: Int32Array | null;
  ln2Perm: Int32Array | null;
  q: QLinear; k: QLinear; v: QLinear; o: QLinear; fc1: QLinear; fc2: QLinear;
  act: QLayerAct;
  /** KV cache storage: K per R2 segment, V per R3 segment; null = f32 cache. */
  kv: { k: ActQuant; v: ActQuant } | null;
  /** The folded cluster maps (provenance; saved with the model). */
  maps: OptLayerMaps;
  /**
   * q/k/v_proj fused into one packed [3·dim, dim] linear (integer execution; they share the R1 input and its
   * clusters), one kernel call per token group; the three QLinears then keep only their codes (`packed` null).
   */
  qkv?: { packed: PackedLinear; bias: Float32Array | null } | null;
}

export interface QuantizedOPTParts {
  tokEmb: F32;
  posEmb: F32;
  projectIn: F32 | null;
  projectOut: F32 | null;
  finalLnW: F32 | null;
  finalLnB: F32 | null;
  /** LM head: `w` is tokEmb itself when tied and kept in float. */
  lmHead: QLinear;
  /** Whether the LM head (in float) is the token embedding. */
  tied: boolean;
  layers: QLayer[];
}

/** An OPT model with RPTQ quantization applied. Owns its tensors except those shared with `shares` (the float model). */
export class QuantizedOPT {
  private disposed = false;
  constructor(readonly config: OPTConfig, readonly recipe: Recipe, readonly parts: QuantizedOPTParts, readonly backend: Backend,
    private readonly owned: Disposable[], readonly execution: Execution = 'integer') {}

  get isDisposed(): boolean { return this.disposed; }

  dispose(): void {
    if (this.disposed) return;
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
    this.disposed = true;
  }
}

/** Copies a Float32Array into a tensor in `backend`'s heap (JS memory without a heap); registers it in `owned`. */
export function heapF32(backend: Backend, data: Float32Array, shape: readonly number[], owned: Disposable[]): F32 {
  const t = Tensor.empty(shape, 'f32', backend.heap ? { heap: backend.heap } : {}) as F32;
  t.data.set(data);
  owned.push(t);
  return t;
}

/** A float, unfolded layer view of an OPT layer (shares the model's tensors): what calibration observes. */
export function floatQLayer(w: OPTLayerWeights, c: OPTConfig): QLayer {
  const lin = (wt: F32, b: F32 | null, outDim: number, inDim: number): QLinear => ({ outDim, inDim, w: wt, b, q: null, packed: null });
  return {
    ln1W: w.attnLnW, ln1B: w.attnLnB, ln2W: w.ffnLnW, ln2B: w.ffnLnB, ln1Perm: null, ln2Perm: null,
    q: lin(w.wq, w.bq, c.dim, c.dim), k: lin(w.wk, w.bk, c.dim, c.dim), v: lin(w.wv, w.bv, c.dim, c.dim),
    o: lin(w.wo, w.bo, c.dim, c.dim), fc1: lin(w.w1, w.b1, c.hiddenDim, c.dim), fc2: lin(w.w2, w.b2, c.dim, c.hiddenDim),
    act: { r1: null, q: null, k: null, attnOut: null, r4: null, r5: null }, kv: null, maps: {},
  };
}

/** Builds an ActQuant, checking its shape. */
export function actQuant(bits: number, offsets: Int32Array, scale: Float32Array, zero: Uint8Array): ActQuant {
  const nSeg = offsets.length - 1;
  if (scale.length !== nSeg || zero.length !== nSeg) {
    throw new LowbitError('E_SHAPE', `actQuant: ${nSeg} segments need ${nSeg} scales and zeros, got ${scale.length} and ${zero.length}`);
  }
  return { bits, format: formatForBits(bits), offsets, scale, zero };
}

// ---------------------------------------------------------------------------------------------
// Run state with a (possibly packed) KV cache
// ---------------------------------------------------------------------------------------------

/**
 * K and V of every layer: f32 rows, bf16 rows (recipe.kvFloat 'bf16': 2 bytes per value), or packed rows of
 * `packedRowBytes(format, dim)` bytes per position, in the backend's heap when it has one (attention, attentionBf16
 * and attentionPacked read them in place, without copies).
 */
export class QKVCache {
  readonly keyF32: (F32 | null)[] = [];
  readonly valueF32: (F32 | null)[] = [];
  /** bf16 bits, dim per position (Uint16Array views: `bf16Rows`). */
  readonly keyBf16: (Tensor<'u8'> | null)[] = [];
  readonly valueBf16: (Tensor<'u8'> | null)[] = [];
  readonly keyPacked: (Tensor<'u8'> | null)[] = [];
  readonly valuePacked: (Tensor<'u8'> | null)[] = [];
  /** (batch, capacity): 1 where the position holds a real token, 0 for left padding (as KVCache.mask). */
  readonly mask: Uint8Array;
  length = 0;
  constructor(readonly m: QuantizedOPT, readonly batch: number, readonly capacity: number, owned: Tensor[] = []) {
    const d = m.config.dim, heap = m.backend.heap, opts = heap ? { heap } : {};
    this.mask = new Uint8Array(batch * capacity);
    const f = () => { const t = Tensor.empty([batch, capacity, d], 'f32', opts) as F32; owned.push(t); return t; };
    const u8 = (bytes: number) => {
      const t = Tensor.empty([batch * capacity * bytes], 'u8', opts) as Tensor<'u8'>;
      owned.push(t);
      return t;
    };
    const bf16 = m.recipe.kvFloat === 'bf16';
    for (const layer of m.parts.layers) {
      const packed = layer.kv !== null, half = !packed && bf16;
      this.keyPacked.push(packed ? u8(packedRowBytes(layer.kv!.k.format, d)) : null);
      this.valuePacked.push(packed ? u8(packedRowBytes(layer.kv!.v.format, d)) : null);
      this.keyBf16.push(half ? u8(2 * d) : null); this.valueBf16.push(half ? u8(2 * d) : null);
      this.keyF32.push(!packed && !half ? f() : null); this.valueF32.push(!packed && !half ? f() : null);
    }
  }
  /** Positions p0 .. p0 + n − 1 of sequence b in a bf16 cache tensor, as bf16 bits (a fresh view: growth detaches). */
  bf16Rows(t: Tensor<'u8'>, b: number, p0: number, n: number): Uint16Array {
    const d = this.m.config.dim, u = t.data;
    return new Uint16Array(u.buffer, u.byteOffset + 2 * (b * this.capacity + p0) * d, n * d);
  }
  /** Bytes of stored K and V (per-cluster parameters, which live in the model, excluded). */
  get bytes(): number {
    let n = 0;
    for (let l = 0; l < this.keyF32.length; l++) {
      n += 4 * ((this.keyF32[l]?.size ?? 0) + (this.valueF32[l]?.size ?? 0)) + (this.keyPacked[l]?.size ?? 0) + (this.valuePacked[l]?.size ?? 0) +
        (this.keyBf16[l]?.size ?? 0) + (this.valueBf16[l]?.size ?? 0);
    }
    return n;
  }
  /** Bytes of K + V per cached token (all layers). */
  get bytesPerToken(): number { return this.bytes / (this.batch * this.capacity); }
  reset(): void { this.length = 0; }
}

export interface QRunStateOptions { batch?: number; maxTokens?: number; maxContext?: number; logitRows?: number }

/** Buffers for one forward pass of a QuantizedOPT (as RunState), resident in the backend's heap. */
export class QRunState {
  readonly batch: number; readonly maxTokens: number; readonly maxContext: number; readonly logitRows: number;
  readonly x: F32; readonly xb: F32; readonly xg: F32; readonly q: F32; readonly k: F32; readonly v: F32;
  readonly hb: F32; readonly logits: F32;
  readonly emb: F32 | null; readonly hOut: F32 | null;
  readonly ids: Tensor<'i32'>; readonly posIds: Tensor<'i32'>;
  readonly cache: QKVCache;
  /** Activation scratch of the packed linears (null without a heap), reused across calls. */
  readonly scratch: QLinearScratch | null;
  final: F32;
  /**
   * Per sequence: whether its cached keys include left padding (set by qforward's mask; attention then reads the
   * cache mask). All false until a mask says otherwise, so layerForward run on its own (calibration) masks nothing.
   */
  keyPadded: boolean[];
  private readonly owned: Tensor[] = [];
  constructor(readonly model: QuantizedOPT, opts: QRunStateOptions = {}) {
    const c = model.config, heap = model.backend.heap;
    this.batch = opts.batch ?? 1;
    this.maxContext = opts.maxContext ?? c.maxPos;
    this.maxTokens = opts.maxTokens ?? this.maxContext;
    for (const [k, v] of Object.entries({ batch: this.batch, maxTokens: this.maxTokens, maxContext: this.maxContext })) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new LowbitError('E_ARG', `QRunState: ${k} must be a positive integer, got ${v}`);
    }
    if (this.maxTokens > this.maxContext) throw new LowbitError('E_ARG', `QRunState: maxTokens (${this.maxTokens}) exceeds maxContext (${this.maxContext})`);
    const rows = this.batch * this.maxTokens;
    this.logitRows = opts.logitRows ?? (rows * c.vocabSize * 4 <= 64 * 2 ** 20 ? rows : this.batch);
    const f = (shape: number[]) => { const t = Tensor.empty(shape, 'f32', heap ? { heap } : {}) as F32; this.owned.push(t); return t; };
    const proj = c.wordEmbedProjDim !== c.dim;
    this.x = f([rows, c.dim]); this.xb = f([rows, c.dim]); this.xg = f([rows, c.dim]);
    this.q = f([rows, c.dim]); this.k = f([rows, c.dim]); this.v = f([rows, c.dim]);
    this.hb = f([rows, c.hiddenDim]);
    this.logits = f([this.logitRows, c.vocabSize]);
    this.emb = proj ? f([rows, c.wordEmbedProjDim]) : null;
    this.hOut = proj ? f([rows, c.wordEmbedProjDim]) : null;
    const i = (n: number) => { const t = Tensor.empty([n], 'i32', heap ? { heap } : {}) as Tensor<'i32'>; this.owned.push(t); return t; };
    this.ids = i(rows); this.posIds = i(rows);
    this.cache = new QKVCache(model, this.batch, this.maxContext, this.owned);
    this.scratch = heap ? new QLinearScratch(heap) : null;
    this.final = this.x;
    this.keyPadded = new Array<boolean>(this.batch).fill(false);
  }
  dispose(): void { for (const t of this.owned) t.dispose(); this.owned.length = 0; this.scratch?.dispose(); }
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

/** Calibration hook: per-channel statistics of a layer's R-points in the layer's own channel order. */
export type QObservePoint = 'r1' | 'q' | 'k' | 'v' | 'attnOut' | 'r4' | 'r5';
export type QObserver = (point: QObservePoint, data: Float32Array, rows: number, cols: number) => void;

/** x ← dequantize(quantize(x)) with static per-segment parameters (rows × cols, channels in cluster order). */
export function fakeQuantAct(k: Kernels, a: ActQuant, x: Float32Array | (() => Float32Array), rows: number, cols: number): void {
  const nSeg = a.offsets.length - 1;
  const view = typeof x === 'function' ? x : () => x; // a WASM view goes stale if the first call grows the heap
  const packed = new Uint8Array(rows * packedRowBytes(a.format, cols));
  k.quantizePack(rows, cols, view(), nSeg, a.offsets, a.scale, a.zero, 1, a.bits, a.format, packed);
  k.dequantizeUnpack(rows, cols, a.format, packed, nSeg, a.offsets, a.scale, a.zero, 1, view());
}

function gather(x: Float32Array, out: Float32Array, rows: number, cols: number, perm: Int32Array): void {
  for (let t = 0; t < rows; t++) {
    const o = t * cols;
    for (let j = 0; j < cols; j++) out[o + j] = x[o + perm[j]!]!;
  }
}

/**
 * y = x·Wᵀ + b for n rows. With packed codes: `aq` (the input's activation codes, same segments as the weight) runs
 * integer × integer, else the weight-only kernel on f32 x. Views are taken fresh (heap growth detaches them).
 */
function linear(be: Backend, n: number, lin: QLinear, x: () => Float32Array, y: () => Float32Array, aq: ActQuant | null = null,
  scratch: QLinearScratch | null = null): void {
  const k = be.kernels;
  if (lin.packed) {
    // heap views of x, the bias and y are passed as they are: qlinear/qlinearIntF32 re-create them after allocating
    const o = { kernels: k, heap: be.heap, out: y().subarray(0, n * lin.outDim), ...(scratch ? { scratch } : {}) };
    const bias = lin.b ? lin.b.data : null;
    if (aq) qlinearIntF32(x().subarray(0, n * lin.inDim), aq, lin.packed, bias, o);
    else qlinear(x().subarray(0, n * lin.inDim), lin.packed, bias, o);
    return;
  }
  k.sgemmNT(n, lin.outDim, lin.inDim, x(), lin.inDim, lin.w!.data, lin.inDim, y(), lin.outDim, lin.b ? lin.b.data : null);
}

function sameOffsets(a: Int32Array, b: Int32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * The activation at one R-point, quantized with its static per-segment parameters. When every consumer runs the
 * integer kernels with the same segments, returns the parameters: each consumer quantizes x inside its activation
 * prep (qlinearIntF32, the same codes as quantizePack). Otherwise writes the dequantized values back into x (fake
 * quantization) and returns null.
 */
function quantizeAct(be: Backend, a: ActQuant | null, x: () => Float32Array, rows: number, cols: number, consumers: QLinear[]): ActQuant | null {
  if (!a) return null;
  if (consumers.every((c) => c.packed && sameOffsets(c.packed.offsets, a.offsets) && c.packed.perm === null)) return a;
  const k = be.kernels, nSeg = a.offsets.length - 1;
  const qs = new Uint8Array(rows * packedRowBytes(a.format, cols));
  k.quantizePack(rows, cols, x(), nSeg, a.offsets, a.scale, a.zero, 1, a.bits, a.format, qs);
  k.dequantizeUnpack(rows, cols, a.format, qs, nSeg, a.offsets, a.scale, a.zero, 1, x());
  return null;
}

/**
 * One pre-LN decoder layer on s.x rows (B sequences × T tokens at cache positions pos..pos+T−1), in place.
 * `cache` holds K/V of this layer (packed or f32); `probsBits` < 16 rounds probabilities to the grid 1/(2^b − 1).
 */
export function layerForward(m: QuantizedOPT, layer: QLayer, l: number, s: QRunState, B: number, T: number, pos: number,
  probsBits: number, obs?: QObserver): void {
  // Views of WASM memory go stale when a kernel call grows the heap (marshalling JS arrays): take them fresh each time.
  const c = m.config, k = m.backend.kernels, dim = c.dim, hs = c.headSize, cap = s.cache.capacity, n = B * T, L = pos + T, nd = n * dim;
  const X = () => s.x.data, XB = () => s.xb.data.subarray(0, nd), XG = () => s.xg.data;
  const Q = () => s.q.data.subarray(0, nd), K_ = () => s.k.data.subarray(0, nd), V_ = () => s.v.data.subarray(0, nd);
  const HB = () => s.hb.data.subarray(0, n * c.hiddenDim);
  const ln = (perm: Int32Array | null, w: F32 | null, b: F32 | null) => {
    if (perm) gather(X(), XG(), n, dim, perm);
    k.layerNorm(n, dim, (perm ? XG() : X()).subarray(0, nd), w ? w.data : null, b ? b.data : null, c.lnEps, XB());
  };
  // ---- self-attention
  ln(layer.ln1Perm, layer.ln1W, layer.ln1B);
  if (obs) obs('r1', XB(), n, dim);
  const be = m.backend;
  if (layer.qkv) {
    const f = layer.qkv, a = layer.act.r1;
    const a1 = a ? quantizeAct(be, a, XB, n, dim, [{ outDim: 3 * dim, inDim: dim, w: null, b: null, q: null, packed: f.packed }]) : null;
    // [n, 3·dim] into hb when it is wide enough (free until the FFN), else a new array
    const out = c.hiddenDim >= 3 * dim ? HB().subarray(0, n * 3 * dim) : undefined;
    const o = { kernels: k, heap: be.heap, ...(out ? { out } : {}), ...(s.scratch ? { scratch: s.scratch } : {}) };
    const y = a1 ? qlinearIntF32(XB(), a1, f.packed, f.bias, o) : qlinear(XB(), f.packed, f.bias, o);
    const q = Q(), kk = K_(), vv = V_();
    for (let t = 0; t < n; t++) {
      const r = t * 3 * dim;
      q.set(y.subarray(r, r + dim), t * dim); kk.set(y.subarray(r + dim, r + 2 * dim), t * dim); vv.set(y.subarray(r + 2 * dim, r + 3 * dim), t * dim);
    }
  } else {
    const a1 = quantizeAct(be, layer.act.r1, XB, n, dim, [layer.q, layer.k, layer.v]);
    linear(be, n, layer.q, XB, Q, a1, s.scratch);
    linear(be, n, layer.k, XB, K_, a1, s.scratch);
    linear(be, n, layer.v, XB, V_, a1, s.scratch);
  }
  if (obs) { obs('q', Q(), n, dim); obs('k', K_(), n, dim); obs('v', V_(), n, dim); }
  if (layer.act.q) fakeQuantAct(k, layer.act.q, Q, n, dim);
  if (layer.act.k && !layer.kv) fakeQuantAct(k, layer.act.k, K_, n, dim);
  const scale = Math.fround(hs ** -0.5);
  { const q = Q(); for (let i = 0; i < nd; i++) q[i] = q[i]! * scale; }
  // ---- store K/V of the new tokens, then attend over every visible position (a packed cache is read as it is)
  const kv = layer.kv, cache = s.cache;
  const levels = probsBits < 16 ? 2 ** probsBits - 1 : 0;
  for (let b = 0; b < B; b++) {
    // a sequence with left padding among its keys passes its mask row (as forward does)
    const keyMask = s.keyPadded[b] ? cache.mask.subarray(b * cap, b * cap + L) : null;
    const rowsOf = (a: Float32Array) => a.subarray(b * T * dim, (b + 1) * T * dim);
    // fresh views at each call: marshalling JS arrays may grow memory and detach older ones
    const q = () => s.q.data.subarray(b * T * dim), out = () => s.xb.data.subarray(b * T * dim);
    if (kv) {
      const kb = packedRowBytes(kv.k.format, dim), vb = packedRowBytes(kv.v.format, dim);
      const kc = cache.keyPacked[l]!, vc = cache.valuePacked[l]!;
      k.quantizePack(T, dim, rowsOf(K_()), kv.k.offsets.length - 1, kv.k.offsets, kv.k.scale, kv.k.zero, 1, kv.k.bits, kv.k.format,
        kc.data.subarray((b * cap + pos) * kb, (b * cap + pos + T) * kb));
      k.quantizePack(T, dim, rowsOf(V_()), kv.v.offsets.length - 1, kv.v.offsets, kv.v.scale, kv.v.zero, 1, kv.v.bits, kv.v.format,
        vc.data.subarray((b * cap + pos) * vb, (b * cap + pos + T) * vb));
      const rows = (p: ActQuant, c: Tensor<'u8'>, rb: number): PackedRows => ({
        format: p.format, data: c.data.subarray(b * cap * rb, (b * cap + L) * rb), nSeg: p.offsets.length - 1, offsets: p.offsets, scale: p.scale, zero: p.zero,
      });
      if (T === 1) {
        // decode: all heads in one call over the packed rows; probabilities on RPTQ's fixed grid of 2^probsBits − 1
        // steps (round half even)
        k.attentionPacked(c.nHeads, hs, T, L, q(), dim, rows(kv.k, kc, kb), rows(kv.v, vc, vb), out(), dim, pos, keyMask, levels);
      } else {
        // several query rows: attentionPacked would dequantize every cache row once per query row, so dequantize
        // once into transient f32 rows (the same values, hence the same result) and run attention on them
        const heap = m.backend.heap, opts = heap ? { heap } : {};
        const kf = Tensor.empty([L, dim], 'f32', opts) as F32, vf = Tensor.empty([L, dim], 'f32', opts) as F32;
        try {
          // views taken at each call (an allocation, even a kernel's scratch, may grow memory and detach older ones)
          const deq = (r: PackedRows, dst: F32) => k.dequantizeUnpack(L, dim, r.format, r.data, r.nSeg, r.offsets, r.scale, r.zero, 1, dst.data);
          deq(rows(kv.k, kc, kb), kf);
          deq(rows(kv.v, vc, vb), vf);
          k.attention(c.nHeads, hs, T, L, q(), dim, kf.data, dim, vf.data, out(), dim, pos, keyMask, levels);
        } finally { kf.dispose(); vf.dispose(); }
      }
    } else if (cache.keyBf16[l]) {
      // bf16 cache: the new rows rounded to bf16, then attention widening each cached row as it reads it
      const kt = cache.keyBf16[l]!, vt = cache.valueBf16[l]!;
      k.toBf16(T * dim, rowsOf(K_()), cache.bf16Rows(kt, b, pos, T));
      k.toBf16(T * dim, rowsOf(V_()), cache.bf16Rows(vt, b, pos, T));
      k.attentionBf16(c.nHeads, hs, T, L, q(), dim, cache.bf16Rows(kt, b, 0, L), dim, cache.bf16Rows(vt, b, 0, L), out(), dim, pos, keyMask, levels);
    } else {
      const kf = cache.keyF32[l]!, vf = cache.valueF32[l]!;
      kf.data.set(rowsOf(K_()), (b * cap + pos) * dim);
      vf.data.set(rowsOf(V_()), (b * cap + pos) * dim);
      k.attention(c.nHeads, hs, T, L, q(), dim, kf.data.subarray(b * cap * dim), dim, vf.data.subarray(b * cap * dim), out(), dim, pos, keyMask, levels);
    }
  }
  if (obs) obs('attnOut', XB(), n, dim);
  const a3 = quantizeAct(be, layer.act.attnOut, XB, n, dim, [layer.o]);
  linear(be, n, layer.o, XB, Q, a3, s.scratch);
  k.add(nd, X().subarray(0, nd), Q(), X().subarray(0, nd));
  // ---- FFN
  ln(layer.ln2Perm, layer.ln2W, layer.ln2B);
  if (obs) obs('r4', XB(), n, dim);
  const a4 = quantizeAct(be, layer.act.r4, XB, n, dim, [layer.fc1]);
  linear(be, n, layer.fc1, XB, HB, a4, s.scratch);
  if (c.activation === 'relu') k.relu(n * c.hiddenDim, HB(), HB()); else k.gelu(n * c.hiddenDim, HB(), HB());
  if (obs) obs('r5', HB(), n, c.hiddenDim);
  const a5 = quantizeAct(be, layer.act.r5, HB, n, c.hiddenDim, [layer.fc2]);
  linear(be, n, layer.fc2, HB, Q, a5, s.scratch);
  k.add(nd, X().subarray(0, nd), Q(), X().subarray(0, nd));
}

/**
 * s.x ← token embedding + position embedding of B×T tokens at cache positions pos.. (`mask`: 1 real, 0 left padding,
 * default all 1; position ids and the cache mask as `forward`, see maskedPositions).
 */
export function embed(m: QuantizedOPT, s: QRunState, tokens: ArrayLike<number>, pos: number, B: number, T: number, mask?: ArrayLike<number>): void {
  const c = m.config, p = m.parts, k = m.backend.kernels, n = B * T, dim = c.dim, pd = c.wordEmbedProjDim;
  s.keyPadded = maskedPositions('qforward', c, tokens, mask, B, T, pos, s.cache.mask, s.cache.capacity, s.ids.data, s.posIds.data);
  if (p.projectIn) {
    k.gatherRows(n, pd, p.tokEmb.data, s.ids.data.subarray(0, n), s.emb!.data);
    k.sgemmNT(n, dim, pd, s.emb!.data, pd, p.projectIn.data, pd, s.x.data, dim, null);
  } else {
    k.gatherRows(n, dim, p.tokEmb.data, s.ids.data.subarray(0, n), s.x.data);
  }
  k.gatherRows(n, dim, p.posEmb.data, s.posIds.data.subarray(0, n), s.xb.data);
  k.add(n * dim, s.x.data, s.xb.data, s.x.data);
}

export interface QForwardOptions {
  /** (batch, T) attention mask of the new tokens: 1 real, 0 padding (left padding), as `forward`. Default all 1. */
  mask?: ArrayLike<number>;
  logits?: 'all' | 'last' | 'none';
}

/**
 * Runs B × T tokens (row-major; `mask` marks left padding, as in `forward`) at cache positions pos..pos+T−1 and returns
 * logits as `forward` does: (B·T, vocab) for 'all', (B, vocab) for 'last'. The returned array is a view valid until the
 * next call.
 */
export function qforward(m: QuantizedOPT, s: QRunState, tokens: ArrayLike<number>, pos: number, opts: QForwardOptions = {}): Float32Array {
  if (m.isDisposed) throw new LowbitError('E_ARG', 'qforward: the model was disposed');
  if (s.model !== m) throw new LowbitError('E_ARG', 'qforward: the run state belongs to another model');
  const c = m.config, p = m.parts, k = m.backend.kernels, B = s.batch, n = tokens.length;
  if (n === 0 || n % B !== 0) throw new LowbitError('E_ARG', `qforward: ${n} tokens do not split into ${B} sequences`);
  const T = n / B;
  if (T > s.maxTokens) throw new LowbitError('E_ARG', `qforward: ${T} tokens per sequence exceed maxTokens (${s.maxTokens})`);
  if (!Number.isSafeInteger(pos) || pos < 0 || pos > s.cache.length) throw new LowbitError('E_ARG', `qforward: pos must be in [0, ${s.cache.length}], got ${pos}`);
  // real tokens past max_position_embeddings are caught with the position ids (left padding takes cache positions only)
  if (pos + T > s.cache.capacity) throw new LowbitError('E_RANGE', `qforward: positions ${pos}..${pos + T - 1} do not fit the KV cache of ${s.cache.capacity} positions`);
  const mode = opts.logits ?? 'last';
  if (mode === 'all' && n > s.logitRows) throw new LowbitError('E_ARG', `qforward: logits 'all' needs ${n} rows, the state has ${s.logitRows}`);
  embed(m, s, tokens, pos, B, T, opts.mask);
  const probsBits = m.recipe.bits.attnProbs;
  for (let l = 0; l < c.nLayers; l++) layerForward(m, p.layers[l]!, l, s, B, T, pos, probsBits);
  s.cache.length = pos + T;
  const dim = c.dim, pd = c.wordEmbedProjDim;
  let fin = s.x;
  if (c.finalLN) {
    k.layerNorm(n, dim, s.x.data.subarray(0, n * dim), p.finalLnW ? p.finalLnW.data : null, p.finalLnB ? p.finalLnB.data : null, c.lnEps, s.xb.data.subarray(0, n * dim));
    fin = s.xb;
  }
  if (p.projectOut) {
    k.sgemmNT(n, pd, dim, fin.data, dim, p.projectOut.data, dim, s.hOut!.data, pd, null);
    fin = s.hOut!;
  }
  s.final = fin;
  if (mode === 'none') return s.logits.data.subarray(0, 0);
  let rows = n;
  if (mode === 'last') {
    const f = fin.data;
    for (let b = 0; b < B; b++) f.copyWithin(b * pd, (b * T + T - 1) * pd, (b * T + T) * pd);
    rows = B;
  }
  return qlmHead(m, s, 0, rows);
}

/**
 * Logits of final-hidden rows row0..row0+rows-1 of the last qforward (rows of `s.final`), through the model's LM head
 * (packed when the recipe quantized it), written to the start of the logits buffer: (rows, vocab). As `lmHead`.
 */
export function qlmHead(m: QuantizedOPT, s: QRunState, row0: number, rows: number): Float32Array {
  const pd = m.config.wordEmbedProjDim, V = m.config.vocabSize;
  if (!Number.isSafeInteger(row0) || !Number.isSafeInteger(rows) || row0 < 0 || rows < 1 || row0 + rows > s.batch * s.maxTokens) {
    throw new LowbitError('E_ARG', `qlmHead: rows ${row0}..${row0 + rows - 1} are outside the run state's ${s.batch * s.maxTokens} rows`);
  }
  if (rows > s.logitRows) throw new LowbitError('E_ARG', `qlmHead: ${rows} rows exceed the logits buffer's ${s.logitRows}`);
  const fin = s.final;
  linear(m.backend, rows, m.parts.lmHead, () => fin.data.subarray(row0 * pd, (row0 + rows) * pd), () => s.logits.data, null, s.scratch);
  return s.logits.data.subarray(0, rows * V);
}

/** Greedy decoding of `steps` new tokens after `prompt` (batch 1). Returns the new ids. */
export function qgenerateGreedy(m: QuantizedOPT, prompt: ArrayLike<number>, steps: number): number[] {
  const s = new QRunState(m, { maxContext: Math.min(m.config.maxPos, prompt.length + steps), logitRows: 1 });
  try {
    const out: number[] = [];
    let logits = qforward(m, s, prompt, 0);
    for (let i = 0; i < steps; i++) {
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
      out.push(best);
      if (i + 1 < steps) logits = qforward(m, s, [best], prompt.length + i);
    }
    return out;
  } finally {
    s.dispose();
  }
}

/** Throws E_UNSUPPORTED for model shapes the quantized decoder does not run. */
export function checkQuantizable(c: OPTConfig): void {
  if (!c.preLN) throw new LowbitError('E_UNSUPPORTED', 'RPTQ OPT: post-LN models (do_layer_norm_before = false, opt-350m) are not supported: R1/R4 fold into a pre-LN LayerNorm');
}

