// OPT model config: HF `OPTConfig` keys mapped once to llama2.c-style short names (transformers/models/opt/configuration_opt.py).

import { LowbitError } from '../../errors.js';

/** Activations the decoder runs (HF ACT2FN names). `gelu` is the exact erf form (PyTorch's default). */
export type OPTActivation = 'relu' | 'gelu';

/** The OPT architecture in short names. Every field is validated by `configFromHF`. */
export interface OPTConfig {
  /** hidden_size: width of the residual stream. */
  dim: number;
  /** ffn_dim: width of the FFN hidden layer. */
  hiddenDim: number;
  /** num_hidden_layers. */
  nLayers: number;
  /** num_attention_heads. */
  nHeads: number;
  /** dim / nHeads. */
  headSize: number;
  /** vocab_size: rows of the token embedding and the LM head. */
  vocabSize: number;
  /** max_position_embeddings: the learned position table has maxPos + 2 rows (HF offset 2). */
  maxPos: number;
  /** word_embed_proj_dim: width of the token embedding; project_in/out exist when it differs from dim. */
  wordEmbedProjDim: number;
  /** do_layer_norm_before: pre-LN (true, most OPTs) or post-LN (false, opt-350m). */
  preLN: boolean;
  /** enable_bias: q/k/v/out_proj and fc1/fc2 have biases. */
  enableBias: boolean;
  /** layer_norm_elementwise_affine: LayerNorms have gamma and beta. */
  lnAffine: boolean;
  /** The decoder has a final LayerNorm: do_layer_norm_before && !_remove_final_layer_norm (HF OPTDecoder). */
  finalLN: boolean;
  /** activation_function. */
  activation: OPTActivation;
  /** LayerNorm epsilon (nn.LayerNorm default; OPTConfig has no key for it). */
  lnEps: number;
  padId: number;
  bosId: number;
  eosId: number;
}

/** HF's learned positional embedding offset: position p reads row p + 2 (OPTLearnedPositionalEmbedding). */
export const POS_OFFSET = 2;

const ACTIVATIONS: readonly OPTActivation[] = ['relu', 'gelu'];

function posInt(hf: Record<string, unknown>, key: string, fallback?: number): number {
  const v = hf[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new LowbitError('E_CONFIG', `config.${key} must be a positive integer, got ${JSON.stringify(v)}`, { key });
  }
  return v;
}

function idOf(hf: Record<string, unknown>, key: string, fallback: number): number {
  const v = hf[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new LowbitError('E_CONFIG', `config.${key} must be a non-negative integer token id, got ${JSON.stringify(v)}`, { key });
  }
  return v;
}

function bool(hf: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = hf[key] ?? fallback;
  if (typeof v !== 'boolean') throw new LowbitError('E_CONFIG', `config.${key} must be true or false, got ${JSON.stringify(v)}`, { key });
  return v;
}

/**
 * Maps an HF `config.json` object (or its text / bytes) to `OPTConfig`, with HF's defaults for absent keys.
 * Throws E_CONFIG naming the key for a missing size, a non-positive or fractional size, heads not dividing
 * hidden_size, an unknown activation, or a model_type other than "opt".
 */
export function configFromHF(input: unknown): OPTConfig {
  let hf = input;
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) hf = new TextDecoder().decode(input);
  if (typeof hf === 'string') {
    try {
      hf = JSON.parse(hf);
    } catch (e) {
      throw new LowbitError('E_FORMAT', `config.json: malformed JSON (${(e as Error).message})`);
    }
  }
  if (typeof hf !== 'object' || hf === null || Array.isArray(hf)) {
    throw new LowbitError('E_CONFIG', 'config must be a JSON object (the contents of config.json)');
  }
  const c = hf as Record<string, unknown>;
  if (c['model_type'] !== undefined && c['model_type'] !== 'opt') {
    throw new LowbitError('E_CONFIG', `config.model_type is ${JSON.stringify(c['model_type'])}, expected "opt"`, { key: 'model_type' });
  }
  const dim = posInt(c, 'hidden_size');
  const nHeads = posInt(c, 'num_attention_heads');
  if (dim % nHeads !== 0) {
    throw new LowbitError('E_CONFIG', `config.num_attention_heads (${nHeads}) must divide config.hidden_size (${dim})`, { key: 'num_attention_heads' });
  }
  const act = c['activation_function'] ?? 'relu';
  if (typeof act !== 'string' || !(ACTIVATIONS as readonly string[]).includes(act)) {
    throw new LowbitError('E_CONFIG', `config.activation_function ${JSON.stringify(act)} is not supported (expected ${ACTIVATIONS.join(' or ')})`, { key: 'activation_function' });
  }
  const preLN = bool(c, 'do_layer_norm_before', true);
  return {
    dim,
    hiddenDim: posInt(c, 'ffn_dim'),
    nLayers: posInt(c, 'num_hidden_layers'),
    nHeads,
    headSize: dim / nHeads,
    vocabSize: posInt(c, 'vocab_size'),
    maxPos: posInt(c, 'max_position_embeddings'),
    wordEmbedProjDim: posInt(c, 'word_embed_proj_dim', dim),
    preLN,
    enableBias: bool(c, 'enable_bias', true),
    lnAffine: bool(c, 'layer_norm_elementwise_affine', true),
    finalLN: preLN && !bool(c, '_remove_final_layer_norm', false),
    activation: act as OPTActivation,
    lnEps: 1e-5,
    padId: idOf(c, 'pad_token_id', 1),
    bosId: idOf(c, 'bos_token_id', 2),
    eosId: idOf(c, 'eos_token_id', 2),
  };
}

/** The HF `config.json` object for `c` (inverse of `configFromHF` on the keys it reads). */
export function configToHF(c: OPTConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _remove_final_layer_norm: c.preLN && !c.finalLN,
    activation_function: c.activation,
    architectures: ['OPTForCausalLM'],
    bos_token_id: c.bosId,
    do_layer_norm_before: c.preLN,
    enable_bias: c.enableBias,
    eos_token_id: c.eosId,
    ffn_dim: c.hiddenDim,
    hidden_size: c.dim,
    layer_norm_elementwise_affine: c.lnAffine,
    max_position_embeddings: c.maxPos,
    model_type: 'opt',
    num_attention_heads: c.nHeads,
    num_hidden_layers: c.nLayers,
    pad_token_id: c.padId,
    torch_dtype: 'float32',
    vocab_size: c.vocabSize,
    word_embed_proj_dim: c.wordEmbedProjDim,
    ...extra,
  };
}
