// Seeded random-weight OPT checkpoints in the Hugging Face layout (config.json + safetensors), for tests and benches.

import { LowbitError } from '../../errors.js';
import { writeSafetensors, type TensorToWrite } from '../../io/safetensors.js';
import type { RawTensor } from '../../io/tensor.js';
import type { Backend } from '../../runtime.js';
import { configFromHF, configToHF, type OPTConfig } from './config.js';
import { OPTModel } from './model.js';
import { mulberry32 } from './sample.js';
import { loadWeights, weightSpecs } from './weights.js';

// ---------------------------------------------------------------------------------------------
// Presets (HF config.json objects)
// ---------------------------------------------------------------------------------------------

const BASE = { activation_function: 'relu', bos_token_id: 2, eos_token_id: 2, pad_token_id: 1, enable_bias: true, layer_norm_elementwise_affine: true, model_type: 'opt' };

/** Config presets: exact OPT-125m / opt-350m shapes, and small variants for tests. */
export const OPT_PRESETS: Readonly<Record<string, Record<string, unknown>>> = {
  /** The fixture's shape: vocab 512, hidden 64, 2 layers, 4 heads, ffn 256, 128 positions, pre-LN. */
  'tiny': { ...BASE, vocab_size: 512, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, ffn_dim: 256, max_position_embeddings: 128, word_embed_proj_dim: 64, do_layer_norm_before: true },
  /** facebook/opt-125m. */
  'opt-125m': { ...BASE, vocab_size: 50272, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, ffn_dim: 3072, max_position_embeddings: 2048, word_embed_proj_dim: 768, do_layer_norm_before: true },
  /** facebook/opt-350m: post-LN, no final LayerNorm, word_embed_proj_dim 512 → hidden 1024 via project_in/out. */
  'opt-350m': { ...BASE, vocab_size: 50272, hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, ffn_dim: 4096, max_position_embeddings: 2048, word_embed_proj_dim: 512, do_layer_norm_before: false },
  /** opt-350m's structure shrunk for tests: post-LN, proj 16 → hidden 32. */
  'opt-350m-tiny': { ...BASE, vocab_size: 384, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, ffn_dim: 64, max_position_embeddings: 96, word_embed_proj_dim: 16, do_layer_norm_before: false },
};

// ---------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------

export interface OutlierOptions {
  /** Channels to scale (default: `count` distinct channels drawn from the seed). The same channels in every layer. */
  channels?: number[];
  /** Number of channels when `channels` is absent (default 4). */
  count?: number;
  /** Scale factor, or a [lo, hi] range drawn per channel (default [20, 50]). */
  scale?: number | [number, number];
}

export interface RandomCheckpointOptions {
  /** A preset name, an HF config object, or an OPTConfig. Default 'tiny'. */
  config?: string | Record<string, unknown> | OPTConfig;
  /** Seed of every tensor's stream (each tensor's stream also depends on its name). Default 0. */
  seed?: number;
  /** Dtype stored in the file (default F32). Values are drawn in f32 and rounded to it. */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Standard deviation of linear and embedding weights (uniform distribution; default 0.02, HF init_std). */
  std?: number;
  /** Key prefix of decoder tensors (default 'model.decoder.', as OPTForCausalLM saves; 'decoder.' as OPTModel). */
  prefix?: 'model.decoder.' | 'decoder.' | '';
  /** Write lm_head.weight as its own tensor (default false: absent, tied to embed_tokens as HF checkpoints are). */
  untiedLmHead?: boolean;
  /** Scale a few LayerNorm gamma channels (self_attn_layer_norm and final_layer_norm of every layer), as real OPT has. */
  outliers?: OutlierOptions;
}

export interface RandomCheckpoint {
  /** config.json contents. */
  config: Record<string, unknown>;
  /** Tensors in state_dict order, named with the prefix. */
  tensors: TensorToWrite[];
  /** Channels whose LayerNorm gammas were scaled (empty without `outliers`). */
  outlierChannels: number[];
  outlierScales: number[];
}

function resolveConfig(cfg: RandomCheckpointOptions['config']): Record<string, unknown> {
  if (cfg === undefined) return { ...OPT_PRESETS['tiny']! };
  if (typeof cfg === 'string') {
    const p = OPT_PRESETS[cfg];
    if (!p) throw new LowbitError('E_ARG', `random checkpoint: unknown preset '${cfg}' (have ${Object.keys(OPT_PRESETS).join(', ')})`);
    return { ...p };
  }
  if ('dim' in cfg && 'nLayers' in cfg) return configToHF(cfg as OPTConfig);
  return { ...cfg };
}

/** FNV-1a of the name mixed with the seed: each tensor gets its own stream, independent of order. */
function streamSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** binary16 bits nearest to x (round half to even), without per-call allocation (same algorithm as io/tensor.ts). */
function halfBits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0]!;
  const sign = (b >>> 16) & 0x8000, exp = (b >>> 23) & 0xff, mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000, shift = 14 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

function encode(values: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (dtype === 'F16') for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i]!);
  else for (let i = 0; i < values.length; i++) { const b = bits[i]!; out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; }
  return new Uint8Array(out.buffer);
}

/**
 * Builds a seeded random-weight checkpoint for any OPT config. Linear and embedding weights are uniform with
 * standard deviation `std`; biases uniform with std `std`; LayerNorm gamma = 1 + U(±0.1), beta = U(±0.05).
 * With `outliers`, the chosen channels' gammas are multiplied by their scale in every layer's two LayerNorms.
 */
export function randomCheckpoint(opts: RandomCheckpointOptions = {}): RandomCheckpoint {
  const hf = resolveConfig(opts.config);
  const cfg = configFromHF(hf);
  const seed = opts.seed ?? 0, dtype = opts.dtype ?? 'F32', std = opts.std ?? 0.02, prefix = opts.prefix ?? 'model.decoder.';
  if (!(std >= 0)) throw new LowbitError('E_ARG', `random checkpoint: std must be >= 0, got ${std}`);
  let outlierChannels: number[] = [], outlierScales: number[] = [];
  if (opts.outliers) {
    const o = opts.outliers, rng = mulberry32(streamSeed(seed, 'outliers'));
    if (o.channels) {
      outlierChannels = [...o.channels];
    } else {
      const count = o.count ?? 4;
      if (!Number.isSafeInteger(count) || count < 0 || count > cfg.dim) throw new LowbitError('E_ARG', `random checkpoint: outlier count ${count} is not in [0, ${cfg.dim}]`);
      const set = new Set<number>();
      while (set.size < count) set.add(Math.floor(rng() * cfg.dim));
      outlierChannels = [...set].sort((a, b) => a - b);
    }
    for (const ch of outlierChannels) {
      if (!Number.isSafeInteger(ch) || ch < 0 || ch >= cfg.dim) throw new LowbitError('E_RANGE', `random checkpoint: outlier channel ${ch} is outside [0, ${cfg.dim})`);
    }
    const sc = o.scale ?? [20, 50];
    outlierScales = outlierChannels.map(() => (typeof sc === 'number' ? sc : sc[0] + rng() * (sc[1] - sc[0])));
  }
  const tensors: TensorToWrite[] = [];
  for (const spec of weightSpecs(cfg)) {
    if (spec.name === 'lm_head.weight' && !opts.untiedLmHead) continue;
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const rng = mulberry32(streamSeed(seed, spec.name));
    const isLn = /layer_norm\.(weight|bias)$/.test(spec.name);
    const isGamma = isLn && spec.name.endsWith('.weight');
    const a = isGamma ? 0.1 : isLn ? 0.05 : std * Math.sqrt(3); // uniform(-a, a) has std a/√3
    const center = isGamma ? 1 : 0;
    for (let i = 0; i < n; i++) v[i] = center + a * (2 * rng() - 1);
    if (isGamma && spec.name.startsWith('layers.')) outlierChannels.forEach((ch, j) => { v[ch] = v[ch]! * outlierScales[j]!; });
    const name = spec.name === 'lm_head.weight' ? spec.name : prefix + spec.name;
    tensors.push({ name, dtype, shape: spec.shape, bytes: encode(v, dtype) });
  }
  return { config: hf, tensors, outlierChannels, outlierScales };
}

/** A random checkpoint as files: config.json text and model.safetensors bytes (metadata format=pt, as HF writes). */
export function makeRandomCheckpoint(opts: RandomCheckpointOptions = {}): RandomCheckpoint & { configJson: string; safetensors: Uint8Array } {
  const ck = randomCheckpoint(opts);
  return { ...ck, configJson: JSON.stringify(ck.config, null, 2) + '\n', safetensors: writeSafetensors(ck.tensors, { format: 'pt' }) };
}

/** A random-weight model straight into a backend (no file round trip): for benches and tests. */
export function randomOPT(opts: RandomCheckpointOptions & { backend: Backend }): OPTModel {
  const ck = randomCheckpoint({ ...opts, dtype: 'F32' });
  const cfg = configFromHF(ck.config);
  const map = new Map<string, RawTensor>(ck.tensors.map((t) => [t.name, { name: t.name, dtype: t.dtype, shape: [...t.shape], bytes: t.bytes }]));
  return new OPTModel(cfg, loadWeights(cfg, map, opts.backend), opts.backend);
}
