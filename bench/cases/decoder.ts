// OPT decoder cases: prefill and per-token decode of a random-weight OPT-125m-shaped model on each WASM backend
// (weights resident in WASM memory), plus one tiny js/simd row. --quick keeps the 125m widths but uses 2 layers.

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { OPT_PRESETS, randomOPT } from '../../src/models/opt/random.js';
import { createRunState, forward, type OPTModel, type RunState } from '../../src/models/opt/model.js';
import { weightSpecs } from '../../src/models/opt/weights.js';
import { configFromHF, type OPTConfig } from '../../src/models/opt/config.js';

/** Multiply-adds ×2 of a T-token forward with a context of ctx + T keys (linears + attention + LM head rows). */
export function forwardFlops(c: OPTConfig, T: number, ctx: number, lmRows: number): number {
  const linear = 2 * T * c.nLayers * (4 * c.dim * c.dim + 2 * c.dim * c.hiddenDim);
  let keys = 0;
  for (let t = 0; t < T; t++) keys += ctx + t + 1;
  const attention = 2 * 2 * keys * c.dim * c.nLayers; // q·k and p·v
  return linear + attention + 2 * lmRows * c.vocabSize * c.wordEmbedProjDim;
}

/** Bytes one decode step must read: every weight once (tied head once; the position table only one row) + the KV cache. */
export function decodeBytes(c: OPTConfig, ctx: number): number {
  let w = 0;
  for (const s of weightSpecs(c)) if (!s.optional && s.name !== 'embed_positions.weight') w += 4 * s.shape.reduce((a, b) => a * b, 1);
  return w + 2 * 4 * c.nLayers * ctx * c.dim;
}

function ids(n: number, vocab: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 7919 + 2) % vocab;
  return a;
}

/** Fills the first `ctx` positions of the cache with random K/V, as a prefill would (decode cost does not depend on the values). */
function fillCache(s: RunState, ctx: number): void {
  let x = 12345;
  for (let l = 0; l < s.cache.nLayers; l++) {
    for (const t of [s.cache.key[l]!, s.cache.value[l]!]) {
      const d = t.data;
      const n = ctx * s.cache.dim;
      for (let i = 0; i < n; i++) { x = (x * 1664525 + 1013904223) >>> 0; d[i] = x / 2 ** 32 - 0.5; }
    }
  }
  s.cache.mask.fill(1, 0, ctx);
  s.cache.length = ctx;
}

export async function decoderCases(ctx: BenchContext): Promise<BenchCase[]> {
  const cases: BenchCase[] = [];
  const cfg125 = ctx.quick ? { ...OPT_PRESETS['opt-125m'], num_hidden_layers: 2 } : OPT_PRESETS['opt-125m']!;
  const label = ctx.quick ? 'opt-125m(2 layers)' : 'opt-125m';
  const c = configFromHF(cfg125);

  const runs: Array<[string, Backend | undefined]> = [
    ['simd', ctx.backends.simd], ['relaxed', ctx.backends.relaxed],
    ['simd 2T', ctx.threaded.simd], ['relaxed 2T', ctx.threaded.relaxed],
  ];
  for (const [name, b] of runs) {
    if (!b) continue;
    // one model per backend, built on first use and shared by its cases
    let model: OPTModel | null = null;
    const get = () => (model ??= randomOPT({ config: cfg125, seed: 1, backend: b }));

    for (const T of [128, 512]) {
      let s: RunState | null = null;
      const toks = ids(T, 50272);
      cases.push({
        group: `${label} prefill ${T} tok`, impl: name, peer: name.endsWith('2T') ? name.slice(0, -3) : 'simd',
        setup() { const m = get(); s ??= createRunState(m, { maxTokens: T, maxContext: T, logitRows: 1 }); },
        fn() { forward(get(), s!, toks, 0, { logits: 'last' }); },
        flops: forwardFlops(c, T, 0, 1),
        tokens: T,
      });
    }
    for (const L of [128, 1024]) {
      let s: RunState | null = null;
      cases.push({
        group: `${label} decode 1 tok @ ctx ${L}`, impl: name, peer: name.endsWith('2T') ? name.slice(0, -3) : 'simd',
        setup() { const m = get(); if (!s) { s = createRunState(m, { maxTokens: 1, maxContext: L + 1, logitRows: 1 }); fillCache(s, L); } },
        // pos = L every call: each call is one decode step at context L (the cache is rewound to L)
        fn() { forward(get(), s!, [42], L, { logits: 'last' }); },
        flops: forwardFlops(c, 1, L, 1),
        bytes: decodeBytes(c, L),
        tokens: 1,
      });
    }
  }

  // tiny model: the js reference beside simd
  for (const name of ['js', 'simd'] as const) {
    const b = ctx.backends[name];
    if (!b) continue;
    let m: OPTModel | null = null, s: RunState | null = null;
    const toks = ids(32, 512);
    cases.push({
      group: 'opt tiny (64d, 2 layers) prefill 32 tok', impl: name,
      setup() { m ??= randomOPT({ config: 'tiny', seed: 1, backend: b }); s ??= createRunState(m, { maxTokens: 32, maxContext: 32 }); },
      fn() { forward(m!, s!, toks, 0, { logits: 'last' }); },
      flops: forwardFlops(configFromHF(OPT_PRESETS['tiny']), 32, 0, 1),
    });
  }
  return cases;
}
