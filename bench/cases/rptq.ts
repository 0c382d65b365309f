// RPTQ decode cases: one decode step (context 128) of the OPT-125m-shaped model in FP32 and RPTQ W4A16 (LM head f32,
// 8-bit, 4-bit), W4A8 and W4A4KV, on simd and relaxed with 1 and 2 threads; ratio = FP32 ms / preset ms (tokens/s
// speed-up) against the FP32 row of the same backend and thread count. Presets use their default weight grid (per row ×
// input cluster, see recipe.ts); the 'g128' rows override it with per row × group of 128, and 'lm4' stores the LM head
// at 4 bits (the presets keep it in f32), 'kv-bf16' stores the KV cache as bf16 (recipe.kvFloat; the presets: f32).
// Quantized linears run the packed codes through the qmatmul kernels (weight-only for A16/KV presets, int×int for
// W4A8). Models are built lazily in each case's setup and the previous case's freed, so one model pair is alive at a time.

import type { BenchCase, BenchContext } from '../types.js';
import type { Backend } from '../../src/runtime.js';
import { OPT_PRESETS, randomOPT } from '../../src/models/opt/random.js';
import { createRunState, forward, type OPTModel, type RunState } from '../../src/models/opt/model.js';
import { QRunState, qforward, type QuantizedOPT } from '../../src/models/opt/quantized.js';
import { quantizeOPT } from '../../src/quant/rptq/pipeline.js';
import { rptqRecipe, type RecipePresetName } from '../../src/quant/rptq/recipe.js';
import { quantize } from '../../src/quant/quantize.js';
import { packQLinear, qlinear, QLinearScratch, type QLinear } from '../../src/quant/qlinear.js';
import { Tensor } from '../../src/tensor.js';
import type { Granularity } from '../../src/quant/types.js';

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
  const runs: Array<[string, Backend | undefined]> = [
    ['simd', ctx.backends.simd], ['simd 2T', ctx.threaded.simd], ['relaxed', ctx.backends.relaxed], ['relaxed 2T', ctx.threaded.relaxed],
  ];
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
      tokens: 1,
    });
    // presets (weights per row × input cluster) and the 'group' grid option (g128), LM head f32 or 4-bit
    const variants: Array<[string, RecipePresetName, 16 | 8 | 4, boolean, boolean]> = [
      ['W4A16', 'W4A16', 16, false, false], ['W4A16 lm4', 'W4A16', 4, false, false], ['W4A16 g128', 'W4A16', 16, true, false],
      ['W4A16 g128 lm4', 'W4A16', 4, true, false], ['W4A16 g128 lm4 kv-bf16', 'W4A16', 4, true, true],
      ['W4A8', 'W4A8', 16, false, false], ['W4A4KV', 'W4A4KV', 16, false, false],
    ];
    for (const [impl, preset, lm, g128, bf16] of variants) {
      cases.push({
        group, impl, peer: 'FP32',
        setup: () => {
          const m = modelOf();
          const recipe = rptqRecipe(preset, {
            calibration: { samples: 1, seqLen: 32, seed: 0 }, kmeans: { nInit: 1 }, bits: { lmHead: lm },
            ...(g128 ? { weight: { granularity: 'group' as const, groupSize: 128 } } : {}), ...(bf16 ? { kvFloat: 'bf16' as const } : {}),
          });
          live!.qm = quantizeOPT(m, recipe, { calibration: ids(256, 50272, 11) });
          live!.qs = new QRunState(live!.qm, { maxContext: CTX + 1, logitRows: 1 });
          qforward(live!.qm, live!.qs, prompt, 0, { logits: 'none' });
        },
        fn: () => { qforward(live!.qm!, live!.qs!, next, CTX); },
        tokens: 1,
      });
    }
  }
  cases.push(...prefillCases(ctx, cfg, label));
  cases.push(...layoutCases(ctx));
  return cases;
}

/**
 * Prefill of 128 tokens (time to first token) on the relaxed build, one thread: FP32; the weight-only presets, whose
 * many-token linears dequantize panels into the f32 GEMM (W4A16 on its per-cluster grid and on g128, W4A4KV); and the
 * integer-activation presets W4A8 and W4A4, whose linears run the integer GEMM on activation codes.
 */
function prefillCases(ctx: BenchContext, cfg: typeof OPT_PRESETS[string], label: string): BenchCase[] {
  const be = ctx.backends.relaxed;
  if (!be) return [];
  const T = 128, group = `rptq prefill ${label} ${T} tok relaxed`, prompt = ids(T, 50272, 5);
  const modelOf = (): OPTModel => {
    release(be);
    if (!live) live = { be, model: randomOPT({ backend: be, config: cfg, seed: 1, outliers: { count: 8 } }), fs: null, qm: null, qs: null };
    return live.model;
  };
  const cases: BenchCase[] = [{
    group, impl: 'FP32', tokens: T,
    setup: () => { const m = modelOf(); live!.fs = createRunState(m, { maxTokens: T, maxContext: T, logitRows: 1 }); },
    fn: () => { live!.fs!.cache.reset(); forward(live!.model, live!.fs!, prompt, 0, { logits: 'last' }); },
  }];
  for (const [impl, preset, g128] of [['W4A16', 'W4A16', false], ['W4A16 g128', 'W4A16', true], ['W4A4KV', 'W4A4KV', false],
    ['W4A8', 'W4A8', false], ['W4A4', 'W4A4', false]] as const) {
    cases.push({
      group, impl, peer: 'FP32', tokens: T,
      setup: () => {
        const m = modelOf();
        const recipe = rptqRecipe(preset, {
          calibration: { samples: 1, seqLen: 32, seed: 0 }, kmeans: { nInit: 1 },
          ...(g128 ? { weight: { granularity: 'group' as const, groupSize: 128 } } : {}),
        });
        live!.qm = quantizeOPT(m, recipe, { calibration: ids(256, 50272, 11) });
        live!.qs = new QRunState(live!.qm, { maxTokens: T, maxContext: T, logitRows: 1 });
      },
      fn: () => { live!.qs!.cache.reset(); qforward(live!.qm!, live!.qs!, prompt, 0, { logits: 'last' }); },
    });
  }
  return cases;
}

/**
 * The packed GEMV of fc1 (768→3072, M = 1) in RPTQ's layout (32 input clusters of uneven sizes, each padded to a 32-code
 * block: ~1.8× the codes, 3 f32 parameters per row and cluster) against per-group 128 and f32: the per-segment cost
 * of the kernel, which dominates W4A16 decode. Weights resident, out and scratch reused (as in qforward).
 */
function layoutCases(ctx: BenchContext): BenchCase[] {
  const be = ctx.backends.simd;
  if (!be?.heap) return [];
  const h = be.heap, N = 3072, K = 768, group = 'rptq qlinear 1x768·768x3072 simd';
  const cases: BenchCase[] = [];
  let st: { px: number; py: number; pw: number; scratch: QLinearScratch; ql: QLinear | null } | null = null;
  const free = (): void => {
    if (!st) return;
    st.ql?.dispose(); st.scratch.dispose(); h.free(st.px); h.free(st.py); h.free(st.pw); st = null;
  };
  const alloc = () => {
    free();
    const px = h.alloc(4 * K), py = h.alloc(4 * N), pw = h.alloc(4 * N * K);
    h.f32(px, K).set(Float32Array.from({ length: K }, (_, i) => Math.cos(i * 0.37)));
    h.f32(pw, N * K).set(Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.61)));
    st = { px, py, pw, scratch: new QLinearScratch(h), ql: null };
    return st;
  };
  const sizes: number[] = [];
  for (let c = 0, left = K; c < 32; c++) { const n = c === 31 ? left : Math.round(24 + 12 * Math.sin(c * 1.7)); sizes.push(n); left -= n; }
  const offsets = new Int32Array(33);
  for (let c = 0; c < 32; c++) offsets[c + 1] = offsets[c]! + sizes[c]!;
  const perm = Int32Array.from({ length: K }, (_, i) => (i * 331) % K);
  const layouts: Array<[string, Granularity]> = [
    ['u4 g128', { kind: 'perGroup', groupSize: 128 }],
    ['u4 32 clusters (RPTQ)', { kind: 'perRowCluster', clusters: { perm, offsets } }],
  ];
  cases.push({
    group, impl: 'f32', flops: 2 * N * K, bytes: 4 * N * K,
    setup: () => { alloc(); },
    fn: () => { const s = st!; be.kernels.sgemmNT(1, N, K, h.f32(s.px, K), K, h.f32(s.pw, N * K), K, h.f32(s.py, N), N, null); },
  });
  for (const [impl, granularity] of layouts) {
    cases.push({
      group, impl, peer: 'f32', flops: 2 * N * K,
      get bytes() { return st?.ql ? st.ql.codeBytes : (N * K) / 2; },
      setup: () => {
        const s = alloc();
        const q = quantize(Tensor.fromArray(h.f32(s.pw, N * K).slice(), [N, K]), { bits: 4, symmetric: false, granularity }, undefined, { kernels: be.kernels });
        s.ql = packQLinear(q, { kernels: be.kernels, heap: h });
      },
      fn: () => { const s = st!; qlinear(h.f32(s.px, K), s.ql!, null, { kernels: be.kernels, heap: h, out: h.f32(s.py, N), scratch: s.scratch }); },
    });
  }
  return cases;
}
