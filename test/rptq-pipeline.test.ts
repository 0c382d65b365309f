// RPTQ pipeline: recipes (presets, validation, JSON), calibration statistics and progress, and the paper's claim that
// per-cluster activation quantization beats per-tensor at 4 and 3 bits (KL of next-token distributions vs float).

import { describe, expect, it, beforeAll } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { createRunState, forward, randomOPT, type OPTModel } from '../src/models/opt/index.js';
import {
  baselineRecipe, calibrate, calibrationSamples, customRecipe, nextTokenKL, quantizeOPT, recipeFromJSON, recipeToJSON,
  rptqRecipe, validateRecipe, RECIPE_PRESETS, buildQLayer, checkWeightGrid, weightGroupOf, type CalibrationProgress, type Recipe,
} from '../src/quant/rptq/index.js';
import { mulberry32 } from '../src/models/opt/sample.js';
import type { Tensor } from '../src/tensor.js';
import { QRunState, qforward } from '../src/models/opt/quantized.js';
import { loadQuantizedOPT, saveQuantizedOPT } from '../src/models/opt/qio.js';

const SMALL = {
  model_type: 'opt', activation_function: 'relu', vocab_size: 512, hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
  ffn_dim: 512, max_position_embeddings: 128, word_embed_proj_dim: 128, do_layer_norm_before: true,
};

function ids(n: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n }, () => 4 + Math.floor(r() * 508));
}

describe('recipes', () => {
  it('presets are valid, record the paper choices and round-trip through JSON', () => {
    for (const p of RECIPE_PRESETS) {
      const r = rptqRecipe(p);
      expect(recipeFromJSON(recipeToJSON(r))).toEqual(r);
    }
    const a4 = rptqRecipe('W4A4');
    expect(a4.bits).toMatchObject({ weights: 4, r1: 8, r4: 8, qk: 4, attnOut: 4, r5: 4, kv: 4, attnProbs: 8, lmHead: 16 });
    expect(a4.clusters).toEqual({ r1: 32, qkPerHead: 4, attnOutPerHead: 4, r4: 32, r5: 32 });
    expect(a4.calibration).toMatchObject({ samples: 128, seqLen: 2048 });
    expect(rptqRecipe('W4A4KV').bits).toMatchObject({ weights: 4, kv: 4, r1: 16, qk: 16, attnOut: 16, r4: 16, r5: 16 });
    expect(rptqRecipe('W3A3KV').bits).toMatchObject({ weights: 3, kv: 3 });
    // weight grid: per (row × input cluster) in every preset (RPTQ's); 'group' is an option
    for (const p of ['W4A16', 'W4A8', 'W4A4', 'W4A4KV', 'W4A3KV', 'W3A3KV'] as const) expect(rptqRecipe(p).weight).toEqual({ method: 'rtn', granularity: 'rowCluster', groupSize: 128, lmHeadGroup: 128 });
    expect(rptqRecipe('W4A16', { weight: { granularity: 'group' } }).weight).toEqual({ method: 'rtn', granularity: 'group', groupSize: 128, lmHeadGroup: 128 });
    expect(customRecipe('W3A16', 3, 16, 16).weight.granularity).toBe('rowCluster');
    expect(customRecipe('W4A6', 4, 6, 6).weight.granularity).toBe('rowCluster');
    const base = baselineRecipe(a4, 'tensor');
    expect(base.reorder).toBe(false);
    expect(Object.values(base.granularity).every((g) => g === 'tensor')).toBe(true);
    expect(base.bits).toEqual(a4.bits);
  });

  it('bad recipes are E_ARG naming the class or field', () => {
    const r = rptqRecipe('W4A8');
    const bad = (edit: (x: Record<string, any>) => void, re: RegExp) => {
      const x = JSON.parse(recipeToJSON(r)); edit(x);
      expect(() => validateRecipe(x as Recipe)).toThrow(re);
    };
    bad((x) => { x.bits.gamma = 4; }, /E_ARG.*unknown tensor class 'gamma'/);
    bad((x) => { x.bits.kv = 1; }, /E_ARG.*bits\.kv.*2 to 8, or 16/);
    bad((x) => { x.bits.weights = 12; }, /E_ARG.*bits\.weights/);
    bad((x) => { x.bits.r5 = 4.5; }, /E_ARG.*bits\.r5/);
    bad((x) => { delete x.bits.qk; }, /E_ARG.*bits\.qk is missing/);
    bad((x) => { x.granularity.r1 = 'row'; }, /E_ARG.*granularity\.r1/);
    bad((x) => { x.reorder = false; }, /E_ARG.*'cluster' but recipe\.reorder is false/);
    bad((x) => { x.clusters.r5 = 0; }, /E_ARG.*clusters\.r5/);
    bad((x) => { x.calibration.samples = -1; }, /E_ARG.*calibration\.samples/);
    bad((x) => { x.weight.method = 'awq'; }, /E_ARG.*weight\.method/);
    bad((x) => { x.extra = 1; }, /E_ARG.*unknown field 'extra'/);
    bad((x) => { x.weight.method = 'gptq-mse' as 'gptq'; }, /E_ARG.*recipe\.weight\.method must be rtn or gptq/);
    bad((x) => { x.weight.granularity = 'cluster'; }, /E_ARG.*weight\.granularity must be group, rowCluster or row/);
    bad((x) => { x.weight.groupSize = 0; }, /E_ARG.*weight\.groupSize must be a positive integer, got 0/);
    bad((x) => { x.weight.groupSize = 64.5; }, /E_ARG.*weight\.groupSize must be a positive integer, got 64\.5/);
    bad((x) => { x.weight.groupSize = '128'; }, /E_ARG.*weight\.groupSize must be a positive integer, got "128"/);
    bad((x) => { delete x.weight.groupSize; }, /E_ARG.*weight\.groupSize is missing/);
    expect(validateRecipe({ ...rptqRecipe('W4A16'), weight: { method: 'gptq', granularity: 'group', groupSize: 64, lmHeadGroup: 128 } }).weight.method).toBe('gptq');
    // GPTQ on RPTQ's own grid (the clusters as its groups)
    expect(validateRecipe({ ...rptqRecipe('W4A16'), weight: { method: 'gptq', granularity: 'rowCluster', groupSize: 128, lmHeadGroup: 128 } }).weight.granularity).toBe('rowCluster');
    expect(() => rptqRecipe('W4A16', { weight: { groupSize: -128 } })).toThrow(/E_ARG.*weight\.groupSize/);
    // widths are the model's: checkWeightGrid names the linear and its width
    expect(() => checkWeightGrid({ dim: 768, hiddenDim: 3072 }, rptqRecipe('W4A16', { weight: { granularity: 'group', groupSize: 96 } }))).not.toThrow();
    expect(() => checkWeightGrid({ dim: 768, hiddenDim: 3072 }, rptqRecipe('W4A16', { weight: { granularity: 'group', groupSize: 512 } })))
      .toThrow(/E_ARG.*groupSize 512 does not divide the 768 input columns of layers\.\*\.q_proj/);
    expect(() => checkWeightGrid({ dim: 768, hiddenDim: 3072 }, rptqRecipe('W4A8', { weight: { groupSize: 512 } }))).not.toThrow(); // rowCluster: unused
    expect(weightGroupOf(rptqRecipe('W4A16', { weight: { granularity: 'group' } }), 64, 'x')).toBe(64);
    expect(weightGroupOf(rptqRecipe('W4A16'), 3072, 'x')).toBe(128);
    // a recipe JSON written before groupSize existed: 'row' / 'rowCluster' get the (unused) default
    const old = JSON.parse(recipeToJSON(r)); delete old.weight.groupSize;
    expect(recipeFromJSON(JSON.stringify(old))).toEqual(r);
    const oldGroup = JSON.parse(recipeToJSON(rptqRecipe('W4A16', { weight: { granularity: 'group' } }))); delete oldGroup.weight.groupSize;
    expect(() => recipeFromJSON(JSON.stringify(oldGroup))).toThrow(/E_ARG.*weight\.groupSize is missing/);
    expect(() => rptqRecipe('W4A4', { bits: { kv: 9 as never } })).toThrow(/bits\.kv/);
    expect(() => recipeFromJSON('{')).toThrow(/E_FORMAT/);
    // the float KV cache's storage: f32 by default, bf16 on request, only for a 16-bit cache
    for (const p of RECIPE_PRESETS) expect(rptqRecipe(p).kvFloat).toBe('f32');
    const bf = rptqRecipe('W4A16', { kvFloat: 'bf16' });
    expect(recipeFromJSON(recipeToJSON(bf))).toEqual(bf);
    bad((x) => { x.kvFloat = 'f16'; }, /E_ARG.*recipe\.kvFloat must be f32 or bf16, got "f16"/);
    bad((x) => { x.kvFloat = 'bf16'; }, /E_ARG.*recipe\.kvFloat is 'bf16' but recipe\.bits\.kv is 8: a float cache format needs bits\.kv 16/);
    bad((x) => { delete x.kvFloat; }, /E_ARG.*recipe\.kvFloat is missing/);
    expect(() => rptqRecipe('W4A4KV', { kvFloat: 'bf16' })).toThrow(/E_ARG.*kvFloat is 'bf16' but recipe\.bits\.kv is 4/);
    // a recipe JSON written before kvFloat existed ran an f32 cache
    const noKv = JSON.parse(recipeToJSON(r)); delete noKv.kvFloat;
    expect(recipeFromJSON(JSON.stringify(noKv))).toEqual(r);
  });
});

describe('calibration and the RPTQ claim', () => {
  let be: Backend, model: OPTModel;
  beforeAll(async () => {
    be = await createBackend('simd');
    model = randomOPT({ backend: be, config: SMALL, seed: 11, outliers: { count: 6, scale: [20, 60] } });
  });

  it('float calibration statistics equal the float forward observe hook; progress reports ETA', () => {
    const samples = calibrationSamples(ids(600, 1), 3, 48, 5);
    const prog: CalibrationProgress[] = [];
    const res = calibrate(model, samples, { onProgress: (p) => prog.push(p) });
    expect(prog.length).toBe(2 * 3);
    expect(prog.at(-1)).toMatchObject({ done: 6, total: 6, etaMs: 0 });
    const s = createRunState(model, { maxContext: 48, logitRows: 1 });
    const mins = new Map<string, Float32Array>(), maxs = new Map<string, Float32Array>();
    const names = { qkvIn: 'r1', q: 'q', k: 'k', v: 'v', outProjIn: 'attnOut', fc1In: 'r4', fc2In: 'r5' } as const;
    for (const smp of samples) {
      forward(model, s, smp, 0, {
        logits: 'none', observe: (l, p, data, rows, cols) => {
          const key = `${l}.${names[p]}`;
          const mn = mins.get(key) ?? new Float32Array(cols).fill(Infinity), mx = maxs.get(key) ?? new Float32Array(cols).fill(-Infinity);
          for (let i = 0; i < rows * cols; i++) { const j = i % cols; mn[j] = Math.min(mn[j]!, data[i]!); mx[j] = Math.max(mx[j]!, data[i]!); }
          mins.set(key, mn); maxs.set(key, mx);
        },
      });
    }
    s.dispose();
    for (let l = 0; l < 2; l++) {
      for (const n of Object.values(names)) {
        const st = res.layers[l]![n];
        expect(Array.from(st.min)).toEqual(Array.from(mins.get(`${l}.${n}`)!));
        expect(Array.from(st.max)).toEqual(Array.from(maxs.get(`${l}.${n}`)!));
      }
    }
  });

  it('each layer is calibrated on the output of the already-quantized previous layer', () => {
    const samples = calibrationSamples(ids(600, 1), 2, 32, 5);
    const recipe = rptqRecipe('W4A4', { kmeans: { nInit: 1 } });
    const float = calibrate(model, samples);
    const owned: Tensor[] = [];
    const quant = calibrate(model, samples, { quantizeLayer: (l, st) => buildQLayer(model, l, st, recipe, be, owned) });
    expect(Array.from(quant.layers[0]!.r1.max)).toEqual(Array.from(float.layers[0]!.r1.max));
    expect(Array.from(quant.layers[1]!.r1.max)).not.toEqual(Array.from(float.layers[1]!.r1.max));
    for (const t of owned) t.dispose();
  });

  it('GPTQ weights give lower KL than RTN on the same grid (per row, per row × group of 32, per row × input cluster) at W3A16, and save/load', () => {
    const text = ids(4096, 21), evalIds = ids(512, 99);
    const kl: Record<string, number> = {};
    const runs = [['rtn', 'row'], ['gptq', 'row'], ['rtn', 'group'], ['gptq', 'group'], ['rtn', 'rowCluster'], ['gptq', 'rowCluster']] as const;
    for (const [method, granularity] of runs) {
      const key = granularity === 'group' ? `${method}-g32` : granularity === 'rowCluster' ? `${method}-cl` : method;
      const r = customRecipe(`W3A16-${key}`, 3, 16, 16, { calibration: { samples: 8, seqLen: 64 }, kmeans: { nInit: 1 }, weight: { method, granularity, groupSize: 32 } });
      const qm = quantizeOPT(model, r, { calibration: text });
      // SMALL: dim 128, ffn 512: groups of 32 → 4 and 16 (scale, zero) slots per row; rowCluster: fc2's input clusters (R5)
      const fc2 = qm.parts.layers[0]!.fc2.q!, r5 = qm.parts.layers[0]!.maps.r5!.offsets;
      const slots = granularity === 'group' ? 16 : granularity === 'rowCluster' ? r5.length - 1 : 1;
      expect(fc2.scale.length).toBe(128 * slots);
      expect(fc2.offsets.length).toBe(slots + 1);
      if (granularity === 'rowCluster') expect(Array.from(fc2.offsets)).toEqual(Array.from(r5));
      kl[key] = nextTokenKL(model, qm, evalIds, 64, 4).kl;
      const back = loadQuantizedOPT(saveQuantizedOPT(qm), { backend: be });
      const probe = Array.from(evalIds.subarray(0, 16));
      const run = (m: typeof qm) => { const s = new QRunState(m, { maxContext: 16 }); const o = qforward(m, s, probe, 0, { logits: 'all' }).slice(); s.dispose(); return o; };
      expect(Buffer.from(run(back).buffer).equals(Buffer.from(run(qm).buffer))).toBe(true);
      back.dispose();
      qm.dispose();
    }
    console.log(`W3A16 per row: RTN ${kl['rtn']!.toFixed(4)} GPTQ ${kl['gptq']!.toFixed(4)}; per row × 32: RTN ${kl['rtn-g32']!.toFixed(4)} GPTQ ${kl['gptq-g32']!.toFixed(4)}; `
      + `per row × cluster: RTN ${kl['rtn-cl']!.toFixed(4)} GPTQ ${kl['gptq-cl']!.toFixed(4)}`);
    expect(kl['gptq']!).toBeLessThan(kl['rtn']!);
    expect(kl['gptq-g32']!).toBeLessThan(kl['rtn-g32']!);
    expect(kl['gptq-cl']!).toBeLessThan(kl['rtn-cl']!);
  });

  it('per-cluster activation quantization has lower KL vs float than per-tensor at A4 and A3 (W16)', () => {
    const text = ids(4096, 21), evalIds = ids(512, 99);
    const rows: string[] = [];
    for (const a of [4, 3] as const) {
      const kl: Record<string, number> = {};
      const rc = customRecipe(`W16A${a}`, 16, a, a, { calibration: { samples: 8, seqLen: 64 }, kmeans: { nInit: 2 }, clusters: { r1: 8, r4: 8, r5: 16 } });
      for (const r of [rc, baselineRecipe(rc, 'tensor')]) {
        const qm = quantizeOPT(model, r, { calibration: text });
        kl[r.granularity.r1] = nextTokenKL(model, qm, evalIds, 64, 4).kl;
        qm.dispose();
      }
      rows.push(`A${a}: per-cluster ${kl['cluster']!.toFixed(4)} per-tensor ${kl['tensor']!.toFixed(4)}`);
      expect(kl['cluster']!).toBeLessThan(kl['tensor']!);
    }
    console.log(rows.join('\n'));
  });
});
