// RPTQ decode cases: one decode step (context 128) of the OPT-125m-shaped model in FP32 and RPTQ W4A16 (LM head f32,
// 8-bit, 4-bit), W4A8 and W4A4KV, on simd with 1 and 2 threads; ratio = FP32 ms / preset ms (tokens/s speed-up).
// Quantized linears run the packed codes through the qmatmul kernels (weight-only for A16/KV presets, int×int for
// W4A8). Models are built lazily in each case's setup and the previous case's freed, so one model pair is alive at a time.

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { OPT_PRESETS, randomOPT } from '../../src/models/opt/random.js';
import { createRunState, forward, type OPTModel, type RunState } from '../../src/models/opt/model.js';
import { QRunState, qforward, type QuantizedOPT } from '../../src/models/opt/quantized.js';
import { quantizeOPT } from '../../src/quant/rptq/pipeline.js';
import { rptqRecipe, type RecipePresetName } from '../../src/quant/rptq/recipe.js';

const CTX = 128;

function ids(n: number, vocab: number, seed: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i + seed) * 7919 + 2) % vocab;
  return a;
}

interface Live { be: Backend; model: OPTModel; fs: RunState | null; qm: QuantizedOPT | null; qs: QRunState | null }
let live: Live | null = null;

function release(keepModelOf: Backend | null): void {
  if (!live) return;
  live.fs?.dispose(); live.qs?.dispose(); live.qm?.dispose();
  live.fs = null; live.qs = null; live.qm = null;
  if (live.be !== keepModelOf) { live.model.dispose(); live = null; }
}

export async function rptqCases(ctx: BenchContext): Promise<BenchCase[]> {
  const cases: BenchCase[] = [];
  const cfg = ctx.quick ? { ...OPT_PRESETS['opt-125m'], num_hidden_layers: 2 } : OPT_PRESETS['opt-125m']!;
  const label = ctx.quick ? 'opt-125m(2 layers)' : 'opt-125m';
  const runs: Array<[string, Backend | undefined]> = [['simd', ctx.backends.simd], ['simd 2T', ctx.threaded.simd]];
  for (const [name, be] of runs) {
    if (!be) continue;
    const group = `rptq decode ${label} @${CTX} ${name}`;
    const modelOf = (): OPTModel => {
      release(be);
      if (!live) live = { be, model: randomOPT({ backend: be, config: cfg, seed: 1, outliers: { count: 8 } }), fs: null, qm: null, qs: null };
      return live.model;
    };
    const prompt = ids(CTX, 50272, 3), next = [1234];
    cases.push({
      group, impl: 'FP32',
      setup: () => {
        const m = modelOf();
        live!.fs = createRunState(m, { maxContext: CTX + 1, logitRows: 1 });
        forward(m, live!.fs, prompt, 0, { logits: 'none' });
      },
      fn: () => { forward(live!.model, live!.fs!, next, CTX); },
    });
    const variants: Array<[string, RecipePresetName, 16 | 8 | 4]> = [
      ['W4A16', 'W4A16', 16], ['W4A16 lm8', 'W4A16', 8], ['W4A16 lm4', 'W4A16', 4], ['W4A8', 'W4A8', 16], ['W4A4KV', 'W4A4KV', 16],
    ];
    for (const [impl, preset, lm] of variants) {
      cases.push({
        group, impl, peer: 'FP32',
        setup: () => {
          const m = modelOf();
          const recipe = rptqRecipe(preset, { calibration: { samples: 1, seqLen: 32, seed: 0 }, kmeans: { nInit: 1 }, bits: { lmHead: lm } });
          live!.qm = quantizeOPT(m, recipe, { calibration: ids(256, 50272, 11) });
          live!.qs = new QRunState(live!.qm, { maxContext: CTX + 1, logitRows: 1 });
          qforward(live!.qm, live!.qs, prompt, 0, { logits: 'none' });
        },
        fn: () => { qforward(live!.qm!, live!.qs!, next, CTX); },
      });
    }
  }
  return cases;
}
