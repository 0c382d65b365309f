// Perplexity over non-overlapping windows, the protocol of GPTQ/RPTQ `opt_eval` (IST-DASLab/gptq opt.py, hahnyuan/RPTQ4LLM).

import { LowbitError } from '../../errors.js';
import { openSession, type CausalLM } from './session.js';

export interface PerplexityProgress {
  /** Windows evaluated so far. */
  done: number;
  total: number;
  elapsedMs: number;
  /** Estimated time left, from the mean time per window so far. */
  etaMs: number;
  /** Mean NLL over the windows done. */
  meanNll: number;
}

export interface PerplexityOptions {
  /** Window length (default 2048, as GPTQ/RPTQ use for OPT). At most max_position_embeddings. */
  seqLen?: number;
  /** Evaluate only the first n windows. */
  maxWindows?: number;
  /** LM-head rows computed at once (bounds the logits buffer; default 128). */
  chunkRows?: number;
  onProgress?: (p: PerplexityProgress) => void;
  signal?: AbortSignal;
}

export interface PerplexityResult {
  /** exp(meanNll): GPTQ's exp(Σ window_loss · seqLen / (nsamples · seqLen)). */
  ppl: number;
  /** Mean NLL (nats) over every predicted token. */
  meanNll: number;
  /** Mean NLL of each window. */
  windowNll: number[];
  /** (nWindows, seqLen - 1) NLL of token t+1 given tokens 0..t of its window. */
  tokenNll: Float32Array;
  nWindows: number;
  seqLen: number;
  /** Tokens predicted: nWindows × (seqLen - 1). */
  nPredicted: number;
}

/** Number of windows the protocol evaluates: floor(nTokens / seqLen) (the tail is dropped). */
export function perplexityWindows(nTokens: number, seqLen: number): number {
  return Math.floor(nTokens / seqLen);
}

/**
 * Perplexity of `ids` (the whole corpus tokenized as one sequence, as GPTQ does with "\n\n".join(texts)) under the float
 * model or an RPTQ-quantized one (its packed kernels, quantized KV cache and LM head).
 * Windows are ids[i·seqLen, (i+1)·seqLen), each run from an empty cache; in each, position t predicts token t+1
 * for t = 0..seqLen-2. NLL = logsumexp(logits) − logit[label], accumulated in f64. Yields to the event loop
 * between windows.
 */
export async function evaluatePerplexity(model: CausalLM, ids: ArrayLike<number>, opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  const c = model.config;
  const seqLen = opts.seqLen ?? 2048;
  if (!Number.isSafeInteger(seqLen) || seqLen < 2) throw new LowbitError('E_ARG', `perplexity: seqLen must be an integer >= 2, got ${seqLen}`);
  if (seqLen > c.maxPos) throw new LowbitError('E_RANGE', `perplexity: seqLen ${seqLen} exceeds max_position_embeddings (${c.maxPos})`);
  let nWin = perplexityWindows(ids.length, seqLen);
  if (opts.maxWindows !== undefined) nWin = Math.min(nWin, opts.maxWindows);
  if (nWin < 1) throw new LowbitError('E_ARG', `perplexity: ${ids.length} tokens make no window of ${seqLen}`);
  const chunk = Math.min(opts.chunkRows ?? 128, seqLen);
  const V = c.vocabSize;
  const tokenNll = new Float32Array(nWin * (seqLen - 1));
  const windowNll: number[] = [];
  const s = openSession('perplexity', model, { batch: 1, maxTokens: seqLen, maxContext: seqLen, logitRows: chunk });
  const t0 = Date.now();
  let total = 0;
  try {
    const win = new Int32Array(seqLen);
    for (let w = 0; w < nWin; w++) {
      if (opts.signal?.aborted) throw new LowbitError('E_ARG', 'perplexity: aborted');
      for (let t = 0; t < seqLen; t++) win[t] = ids[w * seqLen + t]!;
      s.reset();
      s.forward(win, 0, { logits: 'none' });
      let sum = 0;
      for (let r0 = 0; r0 < seqLen - 1; r0 += chunk) {
        const rows = Math.min(chunk, seqLen - 1 - r0);
        const lg = s.lmHead(r0, rows);
        for (let r = 0; r < rows; r++) {
          const o = r * V;
          let mx = -Infinity;
          for (let i = 0; i < V; i++) if (lg[o + i]! > mx) mx = lg[o + i]!;
          let se = 0;
          for (let i = 0; i < V; i++) se += Math.exp(lg[o + i]! - mx);
          const nll = mx + Math.log(se) - lg[o + win[r0 + r + 1]!]!;
          tokenNll[w * (seqLen - 1) + r0 + r] = nll;
          sum += nll;
        }
      }
      windowNll.push(sum / (seqLen - 1));
      total += sum;
      const elapsedMs = Date.now() - t0;
      opts.onProgress?.({ done: w + 1, total: nWin, elapsedMs, etaMs: (elapsedMs / (w + 1)) * (nWin - w - 1), meanNll: total / ((w + 1) * (seqLen - 1)) });
      await new Promise<void>((r) => setTimeout(r, 0));
    }
  } finally {
    s.dispose();
  }
  const nPredicted = nWin * (seqLen - 1);
  const meanNll = total / nPredicted;
  return { ppl: Math.exp(meanNll), meanNll, windowNll, tokenNll, nWindows: nWin, seqLen, nPredicted };
}
