// GPTQ checkpoints in the AutoGPTQ / GPTQModel layout: load (quantize_config.json + qweight, qzeros,
// scales, g_idx) into lowbit's QuantizedTensor and an f32 OPT model, and export lowbit's GPTQ results
// in the same layout. The packing transcribes AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py
// and qlinear_cuda.py `QuantLinear.pack` (identical layout; qlinear_cuda indexes groups by g_idx):
//
//   qweight  int32 [in · bits / 32, out]: column o is a little-endian bit stream of the codes of
//            inputs 0, 1, 2, …, code i at stream bit i · bits (word i·bits >> 5, bit i·bits & 31).
//            For 2/4/8 bits `qweight[row] |= intweight[j] << (bits · (j − i))`, 32/bits codes a word;
//            for 3 bits 32 codes fill 3 words and codes 10 and 21 straddle words (bits 30–32, 63–65),
//            which is the same stream.
//   qzeros   int32 [nGroups, out · bits / 32]: row g is the same bit stream over output features of
//            the zero points. Classic format ('gptq', AutoGPTQ): zero − 1 is stored (`zeros -= 1`) and
//            readers add 1 back; GPTQModel's 'gptq_v2' stores the zero itself.
//   scales   fp16 [nGroups, out]
//   g_idx    int32 [in]: group of each input feature (i // group_size, or with desc_act the group of
//            the input's position in the act-order permutation).
//   dequant: W[o, i] = scales[g_idx[i], o] · (q[o, i] − zero[g_idx[i], o])
// quantize_config.json (AutoGPTQ BaseQuantizeConfig, GPTQModel QuantizeConfig): bits, group_size
// (−1: one group), desc_act, sym, static_groups, true_sequential, damp_percent, checkpoint_format.
//
// Running loaded checkpoints: by default ('packed' execution) every quantized linear runs lowbit's
// weight-only qmatmul kernels on its packed codes (src/quant/qlinear.ts `qlinear`, via the weight-only
// QuantizedOPT of ./packed-opt.ts); 'dequantized' execution dequantizes the weights to f32 once and runs
// the f32 decoder (the reference numerics).

import { LowbitError, fmtShape } from '../../errors.js';
import { parseJson, isJsonObject } from '../../io/bytes.js';
import { readCheckpoint } from '../../io/checkpoint.js';
import { f32ToF16Bits, numelOf, toFloat32, encodeFloat32, type RawTensor } from '../../io/tensor.js';
import type { TensorToWrite } from '../../io/safetensors.js';
import type { Kernels } from '../../kernels/index.js';
import { loadOPT, type OPTModel } from '../../models/opt/model.js';
import type { Backend } from '../../runtime.js';
import { currentBackend } from '../../runtime.js';
import { codesOf, dequantize, defaultKernels } from '../quantize.js';
import type { QuantizedTensor } from '../types.js';
import type { QuantizedOPT } from '../../models/opt/quantized.js';
import { buildTensor, type GPTQResult } from './gptq.js';
import { packedGPTQOPT } from './packed-opt.js';

export type GPTQCheckpointFormat = 'gptq' | 'gptq_v2';

/** quantize_config.json, with lowbit's names. */
export interface GPTQQuantizeConfig {
  bits: 2 | 3 | 4 | 8;
  /** null for group_size −1 (one group per row). */
  groupSize: number | null;
  descAct: boolean;
  sym: boolean;
  staticGroups: boolean;
  trueSequential: boolean;
  dampPercent: number;
  checkpointFormat: GPTQCheckpointFormat;
}

/** The OPT linear layers a GPTQ checkpoint quantizes, by HF module name. */
export const OPT_GPTQ_MODULES = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'fc1', 'fc2'] as const;

/** Parses quantize_config.json (object, text or bytes; also accepts config.json's `quantization_config`). */
export function parseQuantizeConfig(input: unknown): GPTQQuantizeConfig {
  let j = typeof input === 'string' || input instanceof Uint8Array ? parseJson(input, 'quantize_config.json') : input;
  if (isJsonObject(j) && isJsonObject(j['quantization_config'])) j = j['quantization_config'];
  if (!isJsonObject(j)) throw new LowbitError('E_FORMAT', 'quantize_config.json must be a JSON object');
  const bits = j['bits'];
  if (bits !== 2 && bits !== 3 && bits !== 4 && bits !== 8) throw new LowbitError('E_CONFIG', `quantize_config.json: bits must be 2, 3, 4 or 8, got ${String(bits)}`);
  const gsRaw = j['group_size'] ?? -1;
  if (typeof gsRaw !== 'number' || !Number.isSafeInteger(gsRaw) || (gsRaw < 1 && gsRaw !== -1)) {
    throw new LowbitError('E_CONFIG', `quantize_config.json: group_size must be -1 or a positive integer, got ${String(gsRaw)}`);
  }
  const fmt = j['checkpoint_format'] ?? 'gptq';
  if (fmt !== 'gptq' && fmt !== 'gptq_v2') throw new LowbitError('E_UNSUPPORTED', `quantize_config.json: checkpoint_format '${String(fmt)}' (lowbit reads gptq and gptq_v2)`);
  const qm = j['quant_method'];
  if (qm !== undefined && qm !== 'gptq') throw new LowbitError('E_UNSUPPORTED', `quantize_config.json: quant_method '${String(qm)}' is not gptq`);
  return {
    bits, groupSize: gsRaw === -1 ? null : gsRaw, descAct: j['desc_act'] === true, sym: j['sym'] !== false,
    staticGroups: j['static_groups'] === true, trueSequential: j['true_sequential'] !== false,
    dampPercent: typeof j['damp_percent'] === 'number' ? j['damp_percent'] : 0.01, checkpointFormat: fmt,
  };
}

/** quantize_config.json for a lowbit export (AutoGPTQ's keys, plus GPTQModel's checkpoint_format). */
export function quantizeConfigJson(c: GPTQQuantizeConfig): Record<string, unknown> {
  return {
    bits: c.bits, group_size: c.groupSize ?? -1, damp_percent: c.dampPercent, desc_act: c.descAct, static_groups: c.staticGroups,
    sym: c.sym, true_sequential: c.trueSequential, model_file_base_name: 'model', quant_method: 'gptq', checkpoint_format: c.checkpointFormat,
  };
}

// ---------------------------------------------------------------------------------------------
// Bit streams of int32 words
// ---------------------------------------------------------------------------------------------

/** Value i (bits wide) of the stream whose word w is words[w · stride + off]. */
function streamGet(words: Int32Array, stride: number, off: number, i: number, bits: number): number {
  const b = i * bits, w = b >>> 5, s = b & 31, mask = (1 << bits) - 1;
  let v = words[w * stride + off]! >>> s;
  if (s + bits > 32) v |= words[(w + 1) * stride + off]! << (32 - s);
  return v & mask;
}

function streamSet(words: Int32Array, stride: number, off: number, i: number, bits: number, v: number): void {
  const b = i * bits, w = b >>> 5, s = b & 31;
  words[w * stride + off]! |= v << s;
  if (s + bits > 32) words[(w + 1) * stride + off]! |= v >>> (32 - s);
}

// ---------------------------------------------------------------------------------------------
// One layer
// ---------------------------------------------------------------------------------------------

/** One quantized linear layer as stored: the four tensors (g_idx optional: absent means i // group_size). */
export interface GPTQLinearTensors {
  qweight: Int32Array; // (in · bits / 32, out)
  qzeros: Int32Array; // (nGroups, out · bits / 32)
  scales: Float32Array; // (nGroups, out) (fp16 in files)
  gIdx: Int32Array | null; // (in)
  inFeatures: number;
  outFeatures: number;
  nGroups: number;
}

/**
 * Decodes a stored layer into lowbit's QuantizedTensor ([out, in] codes). Groups laid out as
 * i // group_size become per-group (or per-row) parameters; any other g_idx (desc_act) becomes a
 * per-row-cluster tensor whose cluster map sorts the inputs by group (stable), so each group is a
 * contiguous run, as the integer kernels want.
 */
export function decodeGPTQLinear(t: GPTQLinearTensors, cfg: GPTQQuantizeConfig, name: string, kernels: Kernels = defaultKernels()): QuantizedTensor {
  const { inFeatures: I, outFeatures: O, bits } = { ...t, bits: cfg.bits };
  const nG = t.nGroups, maxq = 2 ** bits - 1;
  const gIdx = t.gIdx ?? Int32Array.from({ length: I }, (_, i) => Math.floor(i / (cfg.groupSize ?? I)));
  for (let i = 0; i < I; i++) {
    if (!(gIdx[i]! >= 0 && gIdx[i]! < nG)) throw new LowbitError('E_RANGE', `${name}.g_idx[${i}] = ${gIdx[i]} is outside the ${nG} groups`, { key: `${name}.g_idx` });
  }
  // zero points [nG, out]
  const zeros = new Int32Array(nG * O);
  const zStride = (O * bits) / 32;
  for (let g = 0; g < nG; g++) {
    for (let o = 0; o < O; o++) {
      const stored = streamGet(t.qzeros, 1, g * zStride, o, bits);
      // classic format: the reader adds 1 back, without masking (AutoGPTQ `zeros = zeros + 1`)
      const z = cfg.checkpointFormat === 'gptq' ? stored + 1 : stored;
      if (z > maxq) {
        throw new LowbitError('E_FORMAT', `${name}.qzeros: group ${g}, output ${o} stores ${stored}, i.e. zero ${z} > ${maxq}: the classic format's `
          + `zero − 1 wrapped around (a true zero of 0); lowbit cannot represent it (re-export as gptq_v2)`, { key: `${name}.qzeros` });
      }
      zeros[g * O + o] = z;
    }
  }
  // group order: trivial (i // gs) or sorted by g_idx
  let trivial = true;
  const gsz = cfg.groupSize ?? I;
  for (let i = 0; i < I && trivial; i++) trivial = gIdx[i] === Math.floor(i / gsz) && (nG === Math.ceil(I / gsz));
  let perm: Int32Array | null = null, used: number[];
  if (trivial) {
    used = Array.from({ length: nG }, (_, g) => g);
  } else {
    perm = Int32Array.from(Array.from({ length: I }, (_, i) => i).sort((a, b) => gIdx[a]! - gIdx[b]! || a - b));
    used = [...new Set(Array.from(perm, (i) => gIdx[i]!))];
  }
  const nSeg = used.length;
  const scale = new Float32Array(O * nSeg), zero = new Uint8Array(O * nSeg);
  for (let o = 0; o < O; o++) {
    for (let s = 0; s < nSeg; s++) {
      const v = t.scales[used[s]! * O + o]!;
      if (!(v > 0) || !Number.isFinite(v)) throw new LowbitError('E_FORMAT', `${name}.scales[${used[s]}, ${o}] = ${v}: scales must be finite and > 0`, { key: `${name}.scales` });
      scale[o * nSeg + s] = v;
      zero[o * nSeg + s] = zeros[used[s]! * O + o]!;
    }
  }
  // codes [out, in] in layout column order
  const codes = new Uint8Array(O * I);
  for (let o = 0; o < O; o++) {
    for (let j = 0; j < I; j++) codes[o * I + j] = streamGet(t.qweight, O, o, perm ? perm[j]! : j, bits);
  }
  if (trivial) {
    if (cfg.groupSize === null || nG === 1) return buildTensor(kernels, codes, O, I, bits, cfg.sym, null, null, scale, zero);
    return buildTensor(kernels, codes, O, I, bits, cfg.sym, gsz, null, scale, zero);
  }
  const q = buildTensor(kernels, codes, O, I, bits, cfg.sym, null, null, scale, zero);
  const offsets = new Int32Array(nSeg + 1);
  let s = 0;
  for (let j = 0; j < I; j++) { if (j > 0 && gIdx[perm![j]!] !== gIdx[perm![j - 1]!]) offsets[++s] = j; }
  offsets[nSeg] = I;
  return { ...q, offsets, perm: perm!, scheme: { ...q.scheme, granularity: { kind: 'perRowCluster', clusters: { perm: perm!, offsets } } } };
}

/** Reads one layer's tensors from a checkpoint by module prefix (e.g. 'model.decoder.layers.0.fc1'), checking every shape. */
export function readGPTQLinear(tensors: Map<string, RawTensor>, prefix: string, cfg: GPTQQuantizeConfig): GPTQLinearTensors {
  const get = (s: string): RawTensor => {
    const t = tensors.get(`${prefix}.${s}`);
    if (!t) throw new LowbitError('E_KEY', `GPTQ checkpoint is missing '${prefix}.${s}'`, { key: `${prefix}.${s}` });
    return t;
  };
  const int32 = (t: RawTensor): Int32Array => {
    if (t.dtype !== 'I32') throw new LowbitError('E_DTYPE', `'${t.name}' must be I32, got ${t.dtype}`, { key: t.name });
    const out = new Int32Array(numelOf(t.shape));
    new Uint8Array(out.buffer).set(t.bytes);
    return out;
  };
  const qw = get('qweight'), qz = get('qzeros'), sc = get('scales');
  const bits = cfg.bits;
  if (qw.shape.length !== 2 || (qw.shape[0]! * 32) % bits !== 0) throw new LowbitError('E_SHAPE', `'${qw.name}' has shape ${fmtShape(qw.shape)}; expected [in · ${bits} / 32, out]`, { key: qw.name });
  const I = (qw.shape[0]! * 32) / bits, O = qw.shape[1]!;
  if (sc.shape.length !== 2 || sc.shape[1] !== O) throw new LowbitError('E_SHAPE', `'${sc.name}' has shape ${fmtShape(sc.shape)}; expected [nGroups, ${O}]`, { key: sc.name });
  const nG = sc.shape[0]!;
  if (cfg.groupSize !== null && nG !== Math.ceil(I / cfg.groupSize)) {
    throw new LowbitError('E_SHAPE', `'${sc.name}' has ${nG} groups; ${I} inputs in groups of ${cfg.groupSize} make ${Math.ceil(I / cfg.groupSize)}`, { key: sc.name });
  }
  if ((O * bits) % 32 !== 0 || qz.shape.length !== 2 || qz.shape[0] !== nG || qz.shape[1] !== (O * bits) / 32) {
    throw new LowbitError('E_SHAPE', `'${qz.name}' has shape ${fmtShape(qz.shape)}, which contradicts ${bits} bits: ${nG} groups × ${O} outputs packed at ${bits} bits need [${nG}, ${(O * bits) / 32}]`, { key: qz.name });
  }
  let gIdx: Int32Array | null = null;
  const gi = tensors.get(`${prefix}.g_idx`);
  if (gi) {
    if (gi.shape.length !== 1 || gi.shape[0] !== I) throw new LowbitError('E_SHAPE', `'${gi.name}' has shape ${fmtShape(gi.shape)}; the layer has ${I} inputs, so g_idx needs [${I}]`, { key: gi.name });
    gIdx = gi.dtype === 'I64'
      ? Int32Array.from(new BigInt64Array(gi.bytes.slice().buffer), (v) => Number(v))
      : int32(gi);
  }
  return { qweight: int32(qw), qzeros: int32(qz), scales: toFloat32(sc), gIdx, inFeatures: I, outFeatures: O, nGroups: nG };
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/**
 * Packs one GPTQ result in the AutoGPTQ layout. The codes are lowbit's own (not recomputed from
 * fp16 scales as AutoGPTQ's `pack` does); scales are rounded to fp16. Needs in and out multiples of 32.
 * The classic format cannot store a zero point of 0 (zero − 1 wraps): E_RANGE, use 'gptq_v2'.
 */
export function encodeGPTQLinear(r: GPTQResult, format: GPTQCheckpointFormat, name = 'layer', kernels: Kernels = defaultKernels()): GPTQLinearTensors {
  const { rows: O, cols: I, bits } = r;
  if (bits !== 2 && bits !== 3 && bits !== 4 && bits !== 8) throw new LowbitError('E_UNSUPPORTED', `${name}: the GPTQ layout stores 2, 3, 4 or 8 bits, got ${bits}`);
  if (I % 32 !== 0 || O % 32 !== 0) throw new LowbitError('E_SHAPE', `${name}: the GPTQ layout packs 32 values per ${bits} words: in (${I}) and out (${O}) must be multiples of 32`);
  if (r.groupOffsets && r.groupSize === null) {
    throw new LowbitError('E_UNSUPPORTED', `${name}: groups of unequal widths (groupOffsets, e.g. RPTQ's clusters) have no AutoGPTQ group_size; quantize with groupSize to export`, { layer: name });
  }
  const q = r.quantized, nG = r.nGroups;
  const layoutCodes = codesOf(q, { kernels });
  const qweight = new Int32Array((I * bits / 32) * O);
  for (let o = 0; o < O; o++) {
    for (let j = 0; j < I; j++) streamSet(qweight, O, o, q.perm ? q.perm[j]! : j, bits, layoutCodes[o * I + j]!);
  }
  const zStride = (O * bits) / 32;
  const qzeros = new Int32Array(nG * zStride);
  const scales = new Float32Array(nG * O);
  for (let g = 0; g < nG; g++) {
    for (let o = 0; o < O; o++) {
      const z = r.zero[o * nG + g]!;
      if (format === 'gptq' && z === 0) {
        throw new LowbitError('E_RANGE', `${name}: group ${g}, output ${o} has zero point 0, which the classic gptq format cannot store (zero − 1 wraps); export as gptq_v2`, { layer: name });
      }
      streamSet(qzeros, 1, g * zStride, o, bits, format === 'gptq' ? z - 1 : z);
      scales[g * O + o] = r.scale[o * nG + g]!;
    }
  }
  return { qweight, qzeros, scales, gIdx: r.gIdx.slice(), inFeatures: I, outFeatures: O, nGroups: nG };
}

function i32Tensor(name: string, v: Int32Array, shape: number[]): TensorToWrite {
  return { name, dtype: 'I32', shape, bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
}

function f16Tensor(name: string, v: Float32Array, shape: number[]): TensorToWrite {
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) h[i] = f32ToF16Bits(v[i]!);
  return { name, dtype: 'F16', shape, bytes: new Uint8Array(h.buffer) };
}

/** The four tensors of one layer, named `${prefix}.qweight` etc. */
export function gptqLinearTensors(prefix: string, t: GPTQLinearTensors, bits: number): TensorToWrite[] {
  return [
    i32Tensor(`${prefix}.qweight`, t.qweight, [(t.inFeatures * bits) / 32, t.outFeatures]),
    i32Tensor(`${prefix}.qzeros`, t.qzeros, [t.nGroups, (t.outFeatures * bits) / 32]),
    f16Tensor(`${prefix}.scales`, t.scales, [t.nGroups, t.outFeatures]),
    i32Tensor(`${prefix}.g_idx`, t.gIdx ?? new Int32Array(t.inFeatures), [t.inFeatures]),
  ];
}

export interface ExportOptions {
  /** 'gptq' (AutoGPTQ, zeros stored minus one; default) or 'gptq_v2' (GPTQModel). */
  format?: GPTQCheckpointFormat;
  /** Dtype of the tensors that are not quantized (default F16, as published GPTQ checkpoints). */
  floatDtype?: 'F16' | 'F32';
  kernels?: Kernels;
}

/**
 * An AutoGPTQ-layout OPT checkpoint from a model whose linear layers were GPTQ-quantized: `results`
 * maps 'layers.{l}.{module}' (module in OPT_GPTQ_MODULES) to its GPTQResult, every such layer must be
 * present. The model supplies the other tensors (embeddings, LayerNorms, biases). Returns the tensors
 * (write them with writeSafetensors) and quantize_config.json.
 */
export function exportGPTQCheckpoint(model: OPTModel, results: Map<string, GPTQResult>, opts: ExportOptions = {}): { tensors: TensorToWrite[]; quantizeConfig: Record<string, unknown> } {
  const format = opts.format ?? 'gptq', fd = opts.floatDtype ?? 'F16';
  const first = results.values().next().value as GPTQResult | undefined;
  if (!first) throw new LowbitError('E_ARG', 'exportGPTQCheckpoint: no GPTQ results');
  const c = model.config, w = model.weights;
  const tensors: TensorToWrite[] = [];
  const fl = (name: string, t: { data: Float32Array; shape: readonly number[] } | null) => {
    if (t) tensors.push({ name, dtype: fd, shape: [...t.shape], bytes: encodeFloat32(t.data.slice(), fd) });
  };
  const p = 'model.decoder.';
  fl(p + 'embed_tokens.weight', w.tokEmb);
  fl(p + 'embed_positions.weight', w.posEmb);
  fl(p + 'project_in.weight', w.projectIn);
  fl(p + 'project_out.weight', w.projectOut);
  fl(p + 'final_layer_norm.weight', w.finalLnW);
  fl(p + 'final_layer_norm.bias', w.finalLnB);
  if (!w.tied) fl('lm_head.weight', w.lmHead);
  for (let l = 0; l < c.nLayers; l++) {
    const lw = w.layers[l]!, lp = `${p}layers.${l}.`;
    fl(lp + 'self_attn_layer_norm.weight', lw.attnLnW); fl(lp + 'self_attn_layer_norm.bias', lw.attnLnB);
    fl(lp + 'final_layer_norm.weight', lw.ffnLnW); fl(lp + 'final_layer_norm.bias', lw.ffnLnB);
    const biases: Record<string, { data: Float32Array; shape: readonly number[] } | null> = {
      'self_attn.q_proj': lw.bq, 'self_attn.k_proj': lw.bk, 'self_attn.v_proj': lw.bv, 'self_attn.out_proj': lw.bo, fc1: lw.b1, fc2: lw.b2,
    };
    for (const m of OPT_GPTQ_MODULES) {
      const key = `layers.${l}.${m}`;
      const r = results.get(key);
      if (!r) throw new LowbitError('E_KEY', `exportGPTQCheckpoint: no GPTQ result for '${key}'`, { key });
      if (r.bits !== first.bits || r.groupSize !== first.groupSize || r.actOrder !== first.actOrder || r.symmetric !== first.symmetric) {
        throw new LowbitError('E_ARG', `exportGPTQCheckpoint: '${key}' was quantized with other settings than the first layer (one quantize_config for all)`);
      }
      tensors.push(...gptqLinearTensors(lp + m, encodeGPTQLinear(r, format, key, opts.kernels), r.bits));
      fl(`${lp}${m}.bias`, biases[m]!);
    }
  }
  const cfg: GPTQQuantizeConfig = {
    bits: first.bits as 2 | 3 | 4 | 8, groupSize: first.groupSize, descAct: first.actOrder, sym: first.symmetric,
    staticGroups: first.staticGroups, trueSequential: true, dampPercent: first.percDamp, checkpointFormat: format,
  };
  return { tensors, quantizeConfig: quantizeConfigJson(cfg) };
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/** How a loaded checkpoint runs: the packed integer kernels (default) or dequantized f32 weights. */
export type GPTQExecution = 'packed' | 'dequantized';

export interface LoadedGPTQ {
  execution: GPTQExecution;
  /**
   * 'packed': the weight-only quantized decoder; every decoder linear runs `qlinear` on its packed codes, no f32
   * copy of those weights is kept. Run it with `qforward` / `QRunState` / `qgenerateGreedy` (models/opt/quantized.ts);
   * dispose it when done. Null for 'dequantized'.
   */
  quantized: QuantizedOPT | null;
  /** 'dequantized': the f32 model with every quantized linear dequantized (W·A16 emulation). Null for 'packed'. */
  model: OPTModel | null;
  /** Quantized layers by 'layers.{l}.{module}'. */
  layers: Map<string, QuantizedTensor>;
  quantizeConfig: GPTQQuantizeConfig;
}

export interface LoadGPTQOptions {
  backend?: Backend;
  kernels?: Kernels;
  /** 'packed' (default; pre-LN OPT) or 'dequantized'. */
  execution?: GPTQExecution;
}

/**
 * Loads an AutoGPTQ / GPTQModel OPT checkpoint: HF config.json, quantize_config.json and the
 * safetensors bytes (or tensors already read). Keys may start with 'model.decoder.' or 'decoder.'.
 * Returns the packed quantized decoder (`quantized`, default) or the dequantized f32 model (`model`).
 */
export function loadGPTQCheckpoint(config: unknown, quantizeConfig: unknown, weights: Uint8Array | ArrayBuffer | Map<string, RawTensor>,
  opts: LoadGPTQOptions = {}): LoadedGPTQ {
  const execution = opts.execution ?? 'packed';
  if (execution !== 'packed' && execution !== 'dequantized') {
    throw new LowbitError('E_ARG', `loadGPTQCheckpoint: execution must be 'packed' or 'dequantized', got ${String(execution)}`);
  }
  const qc = parseQuantizeConfig(quantizeConfig);
  const backend = opts.backend ?? currentBackend();
  const kernels = opts.kernels ?? backend.kernels;
  const tensors = weights instanceof Map ? weights : readCheckpoint(weights).tensors;
  const floats = new Map<string, RawTensor>();
  const quantPrefixes = new Set<string>();
  for (const [key, t] of tensors) {
    const m = /^(.*)\.(qweight|qzeros|scales|g_idx)$/.exec(key);
    if (m) quantPrefixes.add(m[1]!);
    else floats.set(key, t);
  }
  const layers = new Map<string, QuantizedTensor>();
  for (const prefix of quantPrefixes) {
    const m = /(?:^|\.)layers\.(\d+)\.(self_attn\.(?:q_proj|k_proj|v_proj|out_proj)|fc1|fc2)$/.exec(prefix);
    if (!m) throw new LowbitError('E_KEY', `GPTQ checkpoint: quantized module '${prefix}' is not an OPT decoder linear layer`, { key: prefix });
    const q = decodeGPTQLinear(readGPTQLinear(tensors, prefix, qc), qc, prefix, kernels);
    layers.set(`layers.${m[1]}.${m[2]}`, q);
    // packed: a zero placeholder for the decoder's loader, freed as soon as the packed model is built
    const deq = execution === 'dequantized' ? dequantize(q, { kernels }).data as Float32Array : new Float32Array(q.rows * q.cols);
    const name = `${prefix}.weight`;
    floats.set(name, { name, dtype: 'F32', shape: [q.rows, q.cols], bytes: new Uint8Array(deq.buffer, deq.byteOffset, deq.byteLength) });
  }
  const model = loadOPT(config, floats, { backend });
  if (execution === 'dequantized') return { execution, quantized: null, model, layers, quantizeConfig: qc };
  try {
    return { execution, quantized: packedGPTQOPT(model, layers, { adopt: true }), model: null, layers, quantizeConfig: qc };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
