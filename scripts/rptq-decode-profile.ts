// Per-stage profile of one RPTQ decode step (context 128) on the OPT-125m-shaped model: every kernel call is timed
// (wall clock around the call, so WASM marshalling and checks count with the kernel) and the rest of qforward is
// reported as JS overhead. Same model and recipe as bench/cases/rptq.ts.
//
//   npx tsc -p tsconfig.json && node --experimental-wasm-relaxed-simd dist/scripts/rptq-decode-profile.js
//     [--backend simd|relaxed] [--preset W4A16] [--lmhead 4] [--steps 40] [--grid group|rowCluster|row] [--group 128]
//     [--lmgroup 128] [--threads 1] [--ctx 128] [--float: profile the FP32 step instead of the quantized one]
//     [--prefill N: profile a prefill of N tokens (the cache reset before each) instead of a decode step]
//     [--kvfloat f32|bf16: the float KV cache's storage (recipe.kvFloat)]

import { performance } from 'node:perf_hooks';
import { createBackend } from '../src/runtime.js';
import type { Kernels } from '../src/kernels/index.js';
import { OPT_PRESETS, randomOPT } from '../src/models/opt/random.js';
import { createRunState, forward } from '../src/models/opt/model.js';
import { QRunState, qforward } from '../src/models/opt/quantized.js';
import { quantizeOPT } from '../src/quant/rptq/pipeline.js';
import { rptqRecipe, type KvFloat, type RecipePresetName, type WeightGranularity } from '../src/quant/rptq/recipe.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

const CTX = Number(arg('ctx', '128'));
const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => ((i + seed) * 7919 + 2) % 50272);

/** OPT-125m linears by (rows, padded input codes). */
function qmmLabel(n: number, kp: number): string {
  const known: Record<string, string> = { '2304x768': 'q/k/v_proj (fused)', '768x768': 'out_proj', '3072x768': 'fc1', '768x3072': 'fc2', '50272x768': 'lm_head' };
  return `${known[`${n}x${kp}`] ?? 'linear'} ${n}x${kp}`;
}

/** Wraps every kernel of `k` in place with a timer; returns the per-name totals (ms) and call counts. */
function instrument(k: Kernels): { ms: Map<string, number>; calls: Map<string, number>; reset: () => void } {
  const ms = new Map<string, number>(), calls = new Map<string, number>();
  const rec = k as unknown as Record<string, unknown>;
  for (const name of Object.keys(rec)) {
    const f = rec[name];
    if (typeof f !== 'function') continue;
    rec[name] = (...a: unknown[]) => {
      // qmm is split by weight shape (N rows × padded codes): one entry per linear of the layer, and the LM head
      const key = name === 'qmm' ? `qmm ${qmmLabel(a[1] as number, (a[3] as Int32Array)[a[2] as number]! * 16)}` : name;
      const t = performance.now();
      try { return (f as (...x: unknown[]) => unknown)(...a); } finally {
        ms.set(key, (ms.get(key) ?? 0) + performance.now() - t);
        calls.set(key, (calls.get(key) ?? 0) + 1);
      }
    };
  }
  return { ms, calls, reset: () => { ms.clear(); calls.clear(); } };
}

async function main(): Promise<void> {
  const backend = arg('backend', 'simd') as 'simd' | 'relaxed', steps = Number(arg('steps', '40'));
  const preset = arg('preset', 'W4A16') as RecipePresetName, lm = Number(arg('lmhead', '4')) as 4 | 8 | 16;
  const grid = arg('grid', '');
  const threads = Number(arg('threads', '1'));
  const be = await createBackend(backend, { threads });
  const model = randomOPT({ backend: be, config: OPT_PRESETS['opt-125m']!, seed: 1, outliers: { count: 8 } });
  const recipe = rptqRecipe(preset, {
    calibration: { samples: 1, seqLen: 32, seed: 0 }, kmeans: { nInit: 1 }, bits: { lmHead: lm }, kvFloat: arg('kvfloat', 'f32') as KvFloat,
    weight: { ...(grid ? { granularity: grid as WeightGranularity } : {}), groupSize: Number(arg('group', '128')), lmHeadGroup: Number(arg('lmgroup', '128')) },
  });
  const qm = quantizeOPT(model, recipe, { calibration: ids(256, 11) });
  const prompt = ids(CTX, 3), next = [1234];
  const time = (run: () => void) => {
    for (let i = 0; i < 5; i++) run();
    const t = performance.now();
    for (let i = 0; i < steps; i++) run();
    return (performance.now() - t) / steps;
  };
  const P = Number(arg('prefill', '0')), long = ids(P, 5);
  const fs = createRunState(model, P ? { maxTokens: P, maxContext: P, logitRows: 1 } : { maxContext: CTX + 1, logitRows: 1 });
  const qs = new QRunState(qm, P ? { maxTokens: P, maxContext: P, logitRows: 1 } : { maxContext: CTX + 1, logitRows: 1 });
  if (!P) { forward(model, fs, prompt, 0, { logits: 'none' }); qforward(qm, qs, prompt, 0, { logits: 'none' }); }
  const fpStep = P ? () => { fs.cache.reset(); forward(model, fs, long, 0, { logits: 'last' }); } : () => { forward(model, fs, next, CTX); };
  const qStep = P ? () => { qs.cache.reset(); qforward(qm, qs, long, 0, { logits: 'last' }); } : () => { qforward(qm, qs, next, CTX); };
  const fpMs = time(fpStep), qMs = time(qStep);
  const prof = instrument(be.kernels);
  const profileFloat = process.argv.includes('--float');
  const step = profileFloat ? fpStep : qStep;
  for (let i = 0; i < 5; i++) step();
  prof.reset();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const wall = (performance.now() - t0) / steps;
  const rows = [...prof.ms.entries()].sort((a, b) => b[1] - a[1]);
  let inK = 0;
  console.log(`${backend}${threads > 1 ? ` ${threads}T` : ''} ${recipe.name} lmHead ${lm} grid ${recipe.weight.granularity}: FP32 ${fpMs.toFixed(2)} ms, quantized ${qMs.toFixed(2)} ms (${(fpMs / qMs).toFixed(2)}x); instrumented (${profileFloat ? 'FP32' : 'quantized'}) ${wall.toFixed(2)} ms/${P ? `prefill of ${P}` : 'token'}`);
  console.log(`| stage (kernel) | ms/${P ? 'prefill' : 'token'} | calls/${P ? 'prefill' : 'token'} |`);
  console.log('|---|--:|--:|');
  for (const [name, t] of rows) {
    inK += t / steps;
    console.log(`| ${name} | ${(t / steps).toFixed(3)} | ${(prof.calls.get(name)! / steps).toFixed(0)} |`);
  }
  console.log(`| JS outside kernels | ${(wall - inK).toFixed(3)} | |`);
  fs.dispose(); qs.dispose(); qm.dispose(); model.dispose();
  await be.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
