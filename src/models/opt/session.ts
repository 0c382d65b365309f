// One surface over the two OPT decoders, the f32 `OPTModel` (model.ts) and the RPTQ `QuantizedOPT` (quantized.ts), for
// what generation and perplexity need: a run state sized once, forward with a left-padding mask, LM-head rows, reset.

import { LowbitError } from '../../errors.js';
import type { OPTConfig } from './config.js';
import { createRunState, forward, lmHead, OPTModel, type RunStateOptions } from './model.js';
import { QRunState, QuantizedOPT, qforward, qlmHead } from './quantized.js';

/** A decoder generation and perplexity run on: the float model or an RPTQ-quantized one (packed kernels). */
export type CausalLM = OPTModel | QuantizedOPT;

export interface Session {
  readonly config: OPTConfig;
  /** Positions filled in the KV cache (the next forward's `pos`). */
  readonly cacheLength: number;
  /** `forward` / `qforward` on this session's state. */
  forward(tokens: ArrayLike<number>, pos: number, opts?: { mask?: ArrayLike<number>; logits?: 'all' | 'last' | 'none' }): Float32Array;
  /** `lmHead` / `qlmHead`: logits of final-hidden rows row0..row0+rows-1 of the last forward. */
  lmHead(row0: number, rows: number): Float32Array;
  /** Forgets every cached position. */
  reset(): void;
  dispose(): void;
}

/** Opens a run state on `model` (sizes as RunStateOptions). `what` names the caller in errors. */
export function openSession(what: string, model: CausalLM, opts: RunStateOptions): Session {
  if (model instanceof QuantizedOPT) {
    if (model.isDisposed) throw new LowbitError('E_ARG', `${what}: the quantized model was disposed`);
    const s = new QRunState(model, opts);
    return sessionOver(model.config, s, (tokens, pos, o = {}) => qforward(model, s, tokens, pos, o), (row0, rows) => qlmHead(model, s, row0, rows));
  }
  if (!(model instanceof OPTModel)) throw new LowbitError('E_ARG', `${what}: expected an OPTModel or a QuantizedOPT`);
  const s = createRunState(model, opts);
  return sessionOver(model.config, s, (tokens, pos, o = {}) => forward(model, s, tokens, pos, o), (row0, rows) => lmHead(model, s, row0, rows));
}

/** A Session over a run state (RunState or QRunState: a KV cache with a length, disposable). */
function sessionOver(config: OPTConfig, s: { cache: { length: number; reset(): void }; dispose(): void },
  fwd: Session['forward'], head: Session['lmHead']): Session {
  return {
    config,
    get cacheLength() { return s.cache.length; },
    forward: fwd,
    lmHead: head,
    reset: () => s.cache.reset(),
    dispose: () => s.dispose(),
  };
}
