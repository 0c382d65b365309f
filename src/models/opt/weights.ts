// OPT checkpoint loading: an explicit key map with a shape assert per tensor (as nanoGPT's from_pretrained), HF layout.

import { LowbitError, fmtShape } from '../../errors.js';
import { numelOf, toFloat32, type RawTensor } from '../../io/tensor.js';
import type { Backend } from '../../runtime.js';
import { Tensor } from '../../tensor.js';
import { POS_OFFSET, type OPTConfig } from './config.js';

// ---------------------------------------------------------------------------------------------
// Weights: f32, HF [out, in] layout for every linear, resident in the backend's heap when it has one
// ---------------------------------------------------------------------------------------------

export type F32 = Tensor<'f32'>;

export interface OPTLayerWeights {
  attnLnW: F32 | null; // (dim) self_attn_layer_norm.weight, null when !lnAffine
  attnLnB: F32 | null; // (dim)
  wq: F32; // (dim, dim) q_proj.weight
  wk: F32; // (dim, dim)
  wv: F32; // (dim, dim)
  wo: F32; // (dim, dim) out_proj.weight
  bq: F32 | null; // (dim) null when !enableBias
  bk: F32 | null; // (dim)
  bv: F32 | null; // (dim)
  bo: F32 | null; // (dim)
  ffnLnW: F32 | null; // (dim) final_layer_norm.weight (the layer's FFN LayerNorm)
  ffnLnB: F32 | null; // (dim)
  w1: F32; // (hiddenDim, dim) fc1.weight
  b1: F32 | null; // (hiddenDim)
  w2: F32; // (dim, hiddenDim) fc2.weight
  b2: F32 | null; // (dim)
}

export interface OPTWeights {
  tokEmb: F32; // (vocabSize, wordEmbedProjDim) embed_tokens.weight
  posEmb: F32; // (maxPos + 2, dim) embed_positions.weight
  projectIn: F32 | null; // (dim, wordEmbedProjDim), only when wordEmbedProjDim != dim
  projectOut: F32 | null; // (wordEmbedProjDim, dim)
  finalLnW: F32 | null; // (dim) decoder final_layer_norm, only when finalLN && lnAffine
  finalLnB: F32 | null; // (dim)
  lmHead: F32; // (vocabSize, wordEmbedProjDim) lm_head.weight; the same tensor as tokEmb when tied
  tied: boolean; // lm_head.weight was absent and the LM head reads embed_tokens
  layers: OPTLayerWeights[]; // (nLayers)
}

/** One expected checkpoint tensor: HF name (without the decoder prefix) and shape. */
export interface WeightSpec {
  name: string;
  shape: number[];
  /** May be absent from a checkpoint (only lm_head.weight, which is then tied to embed_tokens). */
  optional?: boolean;
}

const LAYER_FIELDS: Array<[keyof OPTLayerWeights, string, 'w' | 'b' | 'ln']> = [
  ['attnLnW', 'self_attn_layer_norm.weight', 'ln'], ['attnLnB', 'self_attn_layer_norm.bias', 'ln'],
  ['wq', 'self_attn.q_proj.weight', 'w'], ['bq', 'self_attn.q_proj.bias', 'b'],
  ['wk', 'self_attn.k_proj.weight', 'w'], ['bk', 'self_attn.k_proj.bias', 'b'],
  ['wv', 'self_attn.v_proj.weight', 'w'], ['bv', 'self_attn.v_proj.bias', 'b'],
  ['wo', 'self_attn.out_proj.weight', 'w'], ['bo', 'self_attn.out_proj.bias', 'b'],
  ['ffnLnW', 'final_layer_norm.weight', 'ln'], ['ffnLnB', 'final_layer_norm.bias', 'ln'],
  ['w1', 'fc1.weight', 'w'], ['b1', 'fc1.bias', 'b'],
  ['w2', 'fc2.weight', 'w'], ['b2', 'fc2.bias', 'b'],
];

function layerShape(c: OPTConfig, field: keyof OPTLayerWeights): number[] {
  switch (field) {
    case 'w1': return [c.hiddenDim, c.dim];
    case 'b1': return [c.hiddenDim];
    case 'w2': return [c.dim, c.hiddenDim];
    case 'wq': case 'wk': case 'wv': case 'wo': return [c.dim, c.dim];
    default: return [c.dim];
  }
}

/**
 * Every tensor an OPT checkpoint holds for `c`, named as in `OPTForCausalLM.state_dict()` after the
 * `model.decoder.` prefix (lm_head.weight is top-level). The order is the order of `state_dict()`.
 */
export function weightSpecs(c: OPTConfig): WeightSpec[] {
  const s: WeightSpec[] = [
    { name: 'embed_tokens.weight', shape: [c.vocabSize, c.wordEmbedProjDim] },
    { name: 'embed_positions.weight', shape: [c.maxPos + POS_OFFSET, c.dim] },
  ];
  if (c.finalLN && c.lnAffine) s.push({ name: 'final_layer_norm.weight', shape: [c.dim] }, { name: 'final_layer_norm.bias', shape: [c.dim] });
  if (c.wordEmbedProjDim !== c.dim) {
    s.push({ name: 'project_out.weight', shape: [c.wordEmbedProjDim, c.dim] }, { name: 'project_in.weight', shape: [c.dim, c.wordEmbedProjDim] });
  }
  for (let l = 0; l < c.nLayers; l++) {
    for (const [field, name, kind] of LAYER_FIELDS) {
      if (kind === 'b' && !c.enableBias) continue;
      if (kind === 'ln' && !c.lnAffine) continue;
      s.push({ name: `layers.${l}.${name}`, shape: layerShape(c, field) });
    }
  }
  s.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.wordEmbedProjDim], optional: true });
  return s;
}

/** Strips `model.decoder.` or `decoder.` from a decoder key; `lm_head.weight` (or `model.lm_head.weight`) stays top-level. */
function canonicalName(key: string): string {
  if (key === 'lm_head.weight' || key === 'model.lm_head.weight') return 'lm_head.weight';
  if (key.startsWith('model.decoder.')) return key.slice('model.decoder.'.length);
  if (key.startsWith('decoder.')) return key.slice('decoder.'.length);
  return key;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/**
 * Checks a checkpoint's tensors against `c` without allocating: every expected key present (unless optional),
 * no unexpected or duplicate key (E_KEY naming it), float dtypes (E_DTYPE), exact shapes (E_SHAPE naming the key).
 * Returns the tensors by canonical name.
 */
export function validateCheckpoint(c: OPTConfig, tensors: Map<string, RawTensor>): Map<string, RawTensor> {
  const specs = weightSpecs(c);
  const want = new Map(specs.map((s) => [s.name, s]));
  const byName = new Map<string, RawTensor>();
  const original = new Map<string, string>();
  for (const [key, raw] of tensors) {
    const name = canonicalName(key);
    const spec = want.get(name);
    if (!spec) throw new LowbitError('E_KEY', `unexpected checkpoint key '${key}' (not a tensor of this OPT config)`, { key });
    const prev = original.get(name);
    if (prev !== undefined) throw new LowbitError('E_KEY', `checkpoint keys '${prev}' and '${key}' name the same tensor`, { key });
    original.set(name, key);
    if (!FLOAT_DTYPES.has(raw.dtype)) {
      throw new LowbitError('E_DTYPE', `checkpoint key '${key}' has dtype ${raw.dtype}; expected F32, F16, BF16 or F64`, { key });
    }
    if (raw.shape.length !== spec.shape.length || raw.shape.some((d, i) => d !== spec.shape[i])) {
      throw new LowbitError('E_SHAPE', `checkpoint key '${key}' has shape ${fmtShape(raw.shape)}, expected ${fmtShape(spec.shape)}`, { key });
    }
    byName.set(name, raw);
  }
  for (const s of specs) {
    if (!s.optional && !byName.has(s.name)) {
      throw new LowbitError('E_KEY', `checkpoint is missing key '${s.name}' (as 'model.decoder.${s.name}' or 'decoder.${s.name}')`, { key: s.name });
    }
  }
  return byName;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/** Allocates `shape` f32 in `heap` (or JS memory) and records it for cleanup. */
function allocator(backend: Backend, owned: F32[]) {
  return (shape: number[]): F32 => {
    const t = Tensor.empty(shape, 'f32', { heap: backend.heap }) as F32;
    owned.push(t);
    return t;
  };
}

/**
 * Builds f32 weights from validated checkpoint tensors (F16/BF16/F64 converted to f32). Everything is allocated
 * before anything is converted, and freed again if any step fails, so nothing is half-loaded.
 */
export function loadWeights(c: OPTConfig, tensors: Map<string, RawTensor>, backend: Backend): OPTWeights {
  const byName = validateCheckpoint(c, tensors);
  const owned: F32[] = [];
  try {
    const alloc = allocator(backend, owned);
    const get = (name: string): F32 | null => {
      const spec = byName.get(name);
      return spec ? alloc(spec.shape) : null;
    };
    const need = (name: string): F32 => get(name)!;
    const layers: OPTLayerWeights[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const lw = {} as Record<keyof OPTLayerWeights, F32 | null>;
      for (const [field, name] of LAYER_FIELDS) lw[field] = get(`layers.${l}.${name}`);
      layers.push(lw as OPTLayerWeights);
    }
    const tokEmb = need('embed_tokens.weight');
    const lm = get('lm_head.weight');
    const w: OPTWeights = {
      tokEmb,
      posEmb: need('embed_positions.weight'),
      projectIn: get('project_in.weight'),
      projectOut: get('project_out.weight'),
      finalLnW: get('final_layer_norm.weight'),
      finalLnB: get('final_layer_norm.bias'),
      lmHead: lm ?? tokEmb,
      tied: lm === null,
      layers,
    };
    // fill: one tensor at a time, so the transient f32 copy of an F16 tensor is at most one tensor
    const fill = (t: F32 | null, name: string) => {
      if (!t) return;
      const raw = byName.get(name)!;
      if (numelOf(raw.shape) !== t.size) throw new LowbitError('E_SHAPE', `internal: size mismatch for '${name}'`);
      t.data.set(toFloat32(raw));
    };
    fill(w.tokEmb, 'embed_tokens.weight');
    fill(w.posEmb, 'embed_positions.weight');
    fill(w.projectIn, 'project_in.weight');
    fill(w.projectOut, 'project_out.weight');
    fill(w.finalLnW, 'final_layer_norm.weight');
    fill(w.finalLnB, 'final_layer_norm.bias');
    if (!w.tied) fill(w.lmHead, 'lm_head.weight');
    for (let l = 0; l < c.nLayers; l++) {
      for (const [field, name] of LAYER_FIELDS) fill(layers[l]![field], `layers.${l}.${name}`);
    }
    return w;
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}

/** Every distinct weight tensor (the tied LM head once). */
export function weightTensors(w: OPTWeights): F32[] {
  const out: F32[] = [w.tokEmb, w.posEmb];
  for (const t of [w.projectIn, w.projectOut, w.finalLnW, w.finalLnB]) if (t) out.push(t);
  if (!w.tied) out.push(w.lmHead);
  for (const lw of w.layers) for (const [field] of LAYER_FIELDS) { const t = lw[field]; if (t) out.push(t); }
  return out;
}

/** Bytes of f32 weights (tied LM head counted once). */
export function weightBytes(w: OPTWeights): number {
  return weightTensors(w).reduce((s, t) => s + 4 * t.size, 0);
}

