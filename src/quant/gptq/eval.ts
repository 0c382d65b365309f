// Model-level accuracy of a quantized OPT against its float original that means something on random weights:
// the mean KL(float ‖ quantized) of the next-token distributions over held-out token windows, and how often the
// two argmax tokens agree. (Perplexity of a random model sits near the vocabulary size whatever the quantizer.)
// The same measure as src/quant/rptq/pipeline.ts `nextTokenKL`, for a pair of f32 OPTModels (e.g. GPTQ / RTN
// results of gptqQuantizeOPT / rtnQuantizeOPT, which are dequantized f32 models) or an f32 and a packed model.

import { LowbitError } from '../../errors.js';
import type { OPTModel } from '../../models/opt/model.js';
import { openSession, type CausalLM } from '../../models/opt/session.js';

export interface NextTokenKL {
  /** Mean KL(float ‖ quantized) per predicted token, in nats. */
  kl: number;
  /** Predicted tokens averaged over (windows × seqLen). */
  tokens: number;
  /** Fraction of positions where the two models' argmax tokens agree. */
  top1: number;
}

/** Σ_i p_a(i) (log p_a(i) − log p_b(i)) for one row of logits, and whether the argmaxes agree. */
export function klOfLogits(a: Float32Array, b: Float32Array): { kl: number; agree: boolean } {
  const V = a.length;
  let ma = -Infinity, mb = -Infinity, ia = 0, ib = 0;
  for (let i = 0; i < V; i++) { if (a[i]! > ma) { ma = a[i]!; ia = i; } if (b[i]! > mb) { mb = b[i]!; ib = i; } }
  let sa = 0, sb = 0;
  for (let i = 0; i < V; i++) { sa += Math.exp(a[i]! - ma); sb += Math.exp(b[i]! - mb); }
  const la = Math.log(sa), lb = Math.log(sb);
  let kl = 0;
  for (let i = 0; i < V; i++) {
    const lpa = a[i]! - ma - la, lpb = b[i]! - mb - lb;
    kl += Math.exp(lpa) * (lpa - lpb);
  }
  return { kl, agree: ia === ib };
}

/**
 * Mean next-token KL(float ‖ quantized) over consecutive windows of `seqLen` tokens of `ids` (at most `maxWindows`),
 * each window run from position 0. `quantized` is an f32 OPTModel (dequantized weights) or a packed QuantizedOPT.
 */
export function nextTokenKLOf(floatModel: OPTModel, quantized: CausalLM, ids: ArrayLike<number>, seqLen: number,
  maxWindows = Infinity): NextTokenKL {
  const V = floatModel.config.vocabSize;
  if (quantized.config.vocabSize !== V) throw new LowbitError('E_ARG', `nextTokenKLOf: vocabularies differ (${V} vs ${quantized.config.vocabSize})`);
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw new LowbitError('E_ARG', `nextTokenKLOf: seqLen must be a positive integer, got ${seqLen}`);
  const fs = openSession('nextTokenKLOf', floatModel, { maxContext: seqLen, logitRows: seqLen });
  const qs = openSession('nextTokenKLOf', quantized, { maxContext: seqLen, logitRows: seqLen });
  let kl = 0, tokens = 0, agree = 0;
  try {
    for (let w = 0; w < maxWindows && (w + 1) * seqLen <= ids.length; w++) {
      const win = Array.from({ length: seqLen }, (_, j) => ids[w * seqLen + j]!);
      const pf = fs.forward(win, 0, { logits: 'all' }).slice();
      const pq = qs.forward(win, 0, { logits: 'all' });
      for (let t = 0; t < seqLen; t++) {
        const r = klOfLogits(pf.subarray(t * V, (t + 1) * V), pq.subarray(t * V, (t + 1) * V));
        kl += r.kl; tokens++; if (r.agree) agree++;
      }
    }
  } finally {
    fs.dispose();
    qs.dispose();
  }
  if (tokens === 0) throw new LowbitError('E_ARG', `nextTokenKLOf: ${ids.length} tokens are fewer than one window of ${seqLen}`);
  return { kl: kl / tokens, tokens, top1: agree / tokens };
}
