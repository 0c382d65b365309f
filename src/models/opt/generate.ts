// Text generation with the OPT decoder: prefill + KV-cache decode loop (llama2.c `generate`), batched left padding as HF
// generate. The same loop runs the float model and an RPTQ-quantized one (session.ts).

import { LowbitError } from '../../errors.js';
import { Sampler, type SamplerOptions } from './sample.js';
import { openSession, type CausalLM } from './session.js';

/** The tokenizer surface generation needs (src/tokenizer's `Tokenizer` has it). */
export interface TextCodec {
  encode(text: string): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
}

export interface GenerateOptions extends SamplerOptions {
  /** Most tokens to generate per sequence (default 32). Generation also stops at max_position_embeddings. */
  maxNewTokens?: number;
  /** Stop a sequence after it emits `eosId` (default true). */
  stopAtEos?: boolean;
  /** Default: the config's eos_token_id. */
  eosId?: number;
  /** Checked between tokens; aborting ends generation early (no error). */
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------
// Token-level generation
// ---------------------------------------------------------------------------------------------

/**
 * The decode loop: yields, per step, the new token of every sequence (the pad id for sequences already finished,
 * as HF does). Prompts are left-padded with the pad id and masked. The sampler draws rows in batch order.
 */
export function* decodeSteps(model: CausalLM, prompts: ArrayLike<number>[], opts: GenerateOptions = {}): Generator<Int32Array> {
  const c = model.config;
  const B = prompts.length;
  if (B === 0) throw new LowbitError('E_ARG', 'generate: no prompts');
  const maxNew = opts.maxNewTokens ?? 32;
  if (!Number.isSafeInteger(maxNew) || maxNew < 0) throw new LowbitError('E_ARG', `generate: maxNewTokens must be an integer >= 0, got ${maxNew}`);
  const eos = opts.eosId ?? c.eosId, stopAtEos = opts.stopAtEos ?? true;
  let P = 0;
  prompts.forEach((p, b) => {
    if (p.length === 0) throw new LowbitError('E_ARG', `generate: prompt ${b} is empty (OPT prompts start with the bos id ${c.bosId})`);
    if (p.length > c.maxPos) {
      throw new LowbitError('E_RANGE', `generate: prompt ${b} has ${p.length} tokens, more than max_position_embeddings (${c.maxPos})`);
    }
    for (let i = 0; i < p.length; i++) {
      const id = p[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
        throw new LowbitError('E_RANGE', `generate: prompt ${b} token ${i} is ${id}, outside the vocabulary of ${c.vocabSize}`);
      }
    }
    P = Math.max(P, p.length);
  });
  if (maxNew === 0) return;
  // real tokens per sequence may not pass maxPos: the longest prompt bounds the number of steps
  const steps = Math.min(maxNew, c.maxPos - Math.max(...prompts.map((p) => p.length)) + 1);
  const sampler = new Sampler(opts);
  const s = openSession('generate', model, { batch: B, maxTokens: P, maxContext: P + Math.max(steps - 1, 0), logitRows: B });
  try {
    const tokens = new Int32Array(B * P).fill(c.padId);
    const mask = new Uint8Array(B * P);
    prompts.forEach((p, b) => {
      for (let i = 0; i < p.length; i++) { tokens[b * P + P - p.length + i] = p[i]!; mask[b * P + P - p.length + i] = 1; }
    });
    let logits = s.forward(tokens, 0, { mask, logits: 'last' });
    const done = new Uint8Array(B);
    const next = new Int32Array(B);
    const V = c.vocabSize;
    for (let step = 0; step < steps; step++) {
      for (let b = 0; b < B; b++) {
        next[b] = done[b] ? c.padId : sampler.sample(logits.subarray(b * V, (b + 1) * V));
      }
      for (let b = 0; b < B; b++) if (stopAtEos && next[b] === eos) done[b] = 1;
      yield next.slice();
      if (opts.signal?.aborted || done.every((d) => d === 1) || step === steps - 1) break;
      logits = s.forward(next, s.cacheLength, { logits: 'last' });
    }
  } finally {
    s.dispose();
  }
}

/**
 * Generates continuations of several prompts at once (left-padded batch). Returns the new ids of each sequence,
 * ending with the eos id if it stopped there.
 */
export function generateIds(model: CausalLM, prompts: ArrayLike<number>[], opts: GenerateOptions = {}): number[][] {
  const out: number[][] = prompts.map(() => []);
  const eos = opts.eosId ?? model.config.eosId, stopAtEos = opts.stopAtEos ?? true;
  const done = prompts.map(() => false);
  for (const step of decodeSteps(model, prompts, opts)) {
    step.forEach((id, b) => {
      if (done[b]) return;
      out[b]!.push(id);
      if (stopAtEos && id === eos) done[b] = true;
    });
  }
  return out;
}

/** Streams the new token ids of one prompt as they are produced. */
export async function* generateTokens(model: CausalLM, prompt: ArrayLike<number>, opts: GenerateOptions = {}): AsyncGenerator<number> {
  for (const step of decodeSteps(model, [prompt], opts)) yield step[0]!;
}

// ---------------------------------------------------------------------------------------------
// Text-level generation
// ---------------------------------------------------------------------------------------------

export interface TextGenerateOptions extends GenerateOptions {
  /** Leave special tokens (e.g. `</s>`) out of the text (default true). */
  skipSpecialTokens?: boolean;
}

/** One streamed piece: the token id and the text it completes (empty while a UTF-8 sequence is unfinished). */
export interface GeneratedPiece {
  id: number;
  text: string;
}

/** Streams the continuation of `prompt` token by token, with the text each token adds. */
export async function* generateStream(model: CausalLM, tokenizer: TextCodec, prompt: string, opts: TextGenerateOptions = {}): AsyncGenerator<GeneratedPiece> {
  const ids = tokenizer.encode(prompt);
  const gen: number[] = [];
  let emitted = '';
  const dec = { skipSpecialTokens: opts.skipSpecialTokens ?? true };
  for await (const id of generateTokens(model, ids, opts)) {
    gen.push(id);
    const full = tokenizer.decode(gen, dec);
    // hold back a trailing replacement char: the next token may complete the UTF-8 sequence
    const stable = full.endsWith('\uFFFD') ? full.slice(0, -1) : full;
    const text = stable.startsWith(emitted) ? stable.slice(emitted.length) : '';
    if (stable.startsWith(emitted)) emitted = stable;
    yield { id, text };
  }
}

/** One-line entry point: the generated continuation of `prompt` as text. */
export async function generate(model: CausalLM, tokenizer: TextCodec, prompt: string, opts: TextGenerateOptions = {}): Promise<string> {
  const ids: number[] = [];
  for await (const id of generateTokens(model, tokenizer.encode(prompt), opts)) ids.push(id);
  return tokenizer.decode(ids, { skipSpecialTokens: opts.skipSpecialTokens ?? true });
}
