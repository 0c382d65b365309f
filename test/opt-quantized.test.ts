// RPTQ-quantized OPT: folding alone is exact, presets run, the KV cache is bit-packed per cluster and matches the estimator.

import { describe, expect, it, beforeAll } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { createRunState, forward, randomOPT, estimateMemory, OPT_PRESETS, type OPTModel } from '../src/models/opt/index.js';
import { LowbitError } from '../src/errors.js';
import { QRunState, qforward, qgenerateGreedy } from '../src/models/opt/quantized.js';
import { quantizeOPT, rptqRecipe, customRecipe, calibrationSamples } from '../src/quant/rptq/index.js';
import { qparamsFromRange } from '../src/quant/range.js';
import { maxRel, randomIds } from './helpers.js';

describe('RPTQ OPT (tiny, outliers)', () => {
  let be: Backend, model: OPTModel;
  const calib = randomIds(2048, 512, 7);
  const probe = Array.from(randomIds(24, 512, 9));
  beforeAll(async () => {
    be = await createBackend('simd');
    model = randomOPT({ backend: be, config: 'tiny', seed: 3, outliers: { count: 4 } });
  });

  it('folding alone (FP recipe: reorder, no quantization) leaves the logits unchanged within 1e-4 relative', () => {
    const recipe = rptqRecipe('FP', { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } });
    const qm = quantizeOPT(model, recipe, { calibration: calib });
    expect(qm.parts.layers[0]!.ln1Perm).not.toBeNull();
    const fs = createRunState(model, { maxContext: 32 }), qs = new QRunState(qm, { maxContext: 32 });
    const a = forward(model, fs, probe, 0, { logits: 'all' }).slice();
    const b = qforward(qm, qs, probe, 0, { logits: 'all' }).slice();
    expect(maxRel(a, b)).toBeLessThan(1e-4);
    // KV decode step equals the full forward
    qforward(qm, qs, probe.slice(0, 23), 0, { logits: 'none' });
    const step = qforward(qm, qs, [probe[23]!], 23);
    expect(maxRel(a.subarray(23 * 512), step)).toBeLessThan(1e-4);
    fs.dispose(); qs.dispose(); qm.dispose();
  });

  it('every preset calibrates, quantizes, runs and generates; the packed KV cache matches the estimator', () => {
    for (const name of ['W4A16', 'W4A8', 'W4A4', 'W4A4KV', 'W4A3KV', 'W3A3KV'] as const) {
      const recipe = rptqRecipe(name, { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } });
      const qm = quantizeOPT(model, recipe, { calibration: calib });
      const qs = new QRunState(qm, { maxContext: 32 });
      const lg = qforward(qm, qs, probe, 0, { logits: 'all' });
      expect(lg.every(Number.isFinite)).toBe(true);
      // the runtime keeps a float cache in f32: floatBytes 4
      const est = estimateMemory(model.config, recipe, { batch: 1, seqLen: 32, floatBytes: 4 });
      expect(qs.cache.bytesPerToken).toBe(est.detail.kvBytesPerToken);
      expect(qs.cache.bytes).toBe(est.kvCache - est.detail.kvParams);
      // 2 layers × (K + V) × one 64-channel row: u4 32 B, u8 64 B, u3 one 128-code block = 48 B, f32 256 B
      const row = { 3: 48, 4: 32, 8: 64, 16: 256 }[recipe.bits.kv as 3 | 4 | 8 | 16];
      expect(qs.cache.bytesPerToken).toBe(2 * 2 * row);
      expect(qgenerateGreedy(qm, probe.slice(0, 5), 4)).toHaveLength(4);
      qs.dispose(); qm.dispose();
    }
  });

  it('packed KV cache: decode steps (attention over the packed rows) match the prefill (dequantized rows), also when the heap grows mid-layer', () => {
    for (const name of ['W4A4KV', 'W3A3KV', 'W4A8'] as const) {
      const recipe = rptqRecipe(name, { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } });
      const qm = quantizeOPT(model, recipe, { calibration: calib });
      const full = new QRunState(qm, { maxContext: 32 });
      const all = qforward(qm, full, probe, 0, { logits: 'all' }).slice();
      full.dispose();
      const qs = new QRunState(qm, { maxContext: 32 });
      // every heap allocation of the prefill and of the decode steps grows memory first, detaching every view taken
      // before it: the decoder must take its views (packed cache, q, output) after allocating, e.g. the prefill's
      // transient f32 K/V rows
      const h = be.heap!, alloc = h.alloc.bind(h);
      let grew = 0;
      h.alloc = (bytes: number, what?: string) => { h.memory.grow(1); grew++; return alloc(bytes, what); };
      try {
        qforward(qm, qs, probe.slice(0, 20), 0, { logits: 'none' });
        for (let t = 20; t < 24; t++) {
          const step = qforward(qm, qs, [probe[t]!], t);
          expect(maxRel(all.subarray(t * 512, (t + 1) * 512), step), `${name} step ${t}`).toBeLessThan(1e-4);
        }
      } finally { h.alloc = alloc; }
      expect(grew, name).toBeGreaterThan(0);
      qs.dispose(); qm.dispose();
    }
  });

  it("kvFloat 'bf16': K/V stored in 2 bytes per value (the estimator's count), decode equals the prefill, logits near the f32 cache", () => {
    const opts = { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } };
    const r32 = rptqRecipe('W4A16', opts), r16 = rptqRecipe('W4A16', { ...opts, kvFloat: 'bf16' });
    const q32 = quantizeOPT(model, r32, { calibration: calib }), q16 = quantizeOPT(model, r16, { calibration: calib });
    const s32 = new QRunState(q32, { maxContext: 32 }), s16 = new QRunState(q16, { maxContext: 32 });
    // 2 layers × (K + V) × 64 channels × 2 bytes, against 4 bytes in f32; the estimator counts 2 bytes at any floatBytes
    expect(s16.cache.bytesPerToken).toBe(2 * 2 * 64 * 2);
    expect(s32.cache.bytesPerToken).toBe(2 * 2 * 64 * 4);
    expect(s16.cache.keyF32.every((t) => t === null) && s16.cache.keyBf16.every((t) => t !== null)).toBe(true);
    for (const floatBytes of [2, 4]) {
      const est = estimateMemory(model.config, r16, { batch: 1, seqLen: 32, floatBytes });
      expect(est.detail.kvBytesPerToken).toBe(s16.cache.bytesPerToken);
      expect(est.kvCache).toBe(s16.cache.bytes);
    }
    const a = qforward(q32, s32, probe, 0, { logits: 'all' }).slice(), b = qforward(q16, s16, probe, 0, { logits: 'all' }).slice();
    expect(b.every(Number.isFinite)).toBe(true);
    // bf16 rounds K and V by ≤ 2^-9 relative: the logits move, a little
    expect(maxRel(a, b)).toBeGreaterThan(0);
    expect(maxRel(a, b)).toBeLessThan(1e-2);
    // decode steps over the bf16 rows match the prefill's logits
    s16.cache.reset();
    qforward(q16, s16, probe.slice(0, 20), 0, { logits: 'none' });
    for (let t = 20; t < 24; t++) expect(maxRel(b.subarray(t * 512, (t + 1) * 512), qforward(q16, s16, [probe[t]!], t)), `step ${t}`).toBeLessThan(1e-4);
    s32.dispose(); s16.dispose(); q32.dispose(); q16.dispose();
  });

  it('a run state over a packed KV cache holds the packed cache and per-token buffers, no f32 copy of the cache', () => {
    const recipe = rptqRecipe('W4A4KV', { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } });
    const qm = quantizeOPT(model, recipe, { calibration: calib });
    const h = be.heap!, before = h.stats().inUse;
    const qs = new QRunState(qm, { maxContext: 2048, maxTokens: 1, logitRows: 1 });
    const used = h.stats().inUse - before, c = model.config;
    // 2 layers × (K + V) × 2048 positions × 32 bytes (64 channels at 4 bits) = 262,144 bytes of cache
    expect(qs.cache.bytes).toBe(2 * 2 * 2048 * 32);
    // one-token buffers: x, xb, xg, q, k, v (dim), hb (hidden), logits (vocab), ids, positions, with allocator rounding
    const perToken = 4 * (6 * c.dim + c.hiddenDim + c.vocabSize + 2);
    expect(used).toBeGreaterThanOrEqual(qs.cache.bytes + perToken);
    expect(used).toBeLessThan(qs.cache.bytes + perToken + 4096);
    // an f32 copy of K and V ([context × dim] each) would be 2 × 2048 × 64 × 4 = 1 MiB more
    qforward(qm, qs, probe.slice(0, 1), 0, { logits: 'none' });
    qs.dispose(); qm.dispose();
  });

  it('integer kernels (packed codes, int×int where activations share the weight clusters) agree with dequantized execution', () => {
    for (const name of ['W4A16', 'W4A8', 'W4A4', 'W3A3KV'] as const) {
      const recipe = rptqRecipe(name, { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 }, bits: { lmHead: 8 } });
      const qi = quantizeOPT(model, recipe, { calibration: calib });
      const qd = quantizeOPT(model, recipe, { calibration: calib, execution: 'dequantized' });
      const L = qi.parts.layers[1]!;
      expect(L.fc1.w).toBeNull(); // no f32 copy of quantized weights
      expect(L.qkv!.packed.out).toBe(3 * 64); // q/k/v_proj fused into one packed linear
      expect(L.fc1.packed!.bits).toBe(recipe.bits.weights);
      if (recipe.bits.r4 < 16) expect(Array.from(L.fc1.packed!.offsets)).toEqual(Array.from(L.act.r4!.offsets)); // int×int
      expect(qd.parts.layers[1]!.fc1.packed).toBeNull();
      const si = new QRunState(qi, { maxContext: 32 }), sd = new QRunState(qd, { maxContext: 32 });
      const a = qforward(qi, si, probe, 0, { logits: 'all' }).slice(), b = qforward(qd, sd, probe, 0, { logits: 'all' });
      expect(maxRel(b, a)).toBeLessThan(1e-3);
      si.dispose(); sd.dispose(); qi.dispose(); qd.dispose();
    }
  });

  it("the 'group' grid: RTN per (row × 128 or narrower folded input columns), exact (scale, zero) per group, runs on the packed kernels", () => {
    // layer 0's cluster maps depend only on its (float-fed) statistics: the FP recipe gives the same fold, unquantized
    const o = { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } };
    const fp = quantizeOPT(model, rptqRecipe('FP', o), { calibration: calib });
    const recipe = rptqRecipe('W4A16', { ...o, weight: { granularity: 'group', groupSize: 128 } });
    expect(recipe.weight).toMatchObject({ granularity: 'group', groupSize: 128 });
    const qi = quantizeOPT(model, recipe, { calibration: calib });
    const qd = quantizeOPT(model, recipe, { calibration: calib, execution: 'dequantized' });
    const L = qi.parts.layers[0]!;
    // tiny: dim 64 (< 128: one group per row), ffn 256 (two groups of 128)
    expect(Array.from(L.o.q!.offsets)).toEqual([0, 64]);
    expect(Array.from(L.fc2.q!.offsets)).toEqual([0, 128, 256]);
    expect(L.fc2.q!.scale.length).toBe(64 * 2);
    expect(L.qkv!.packed.nSeg).toBe(1);
    expect(L.fc2.packed!.perm).toBeNull();
    expect(Array.from(L.fc2.packed!.segc)).toEqual([0, 8, 16]); // 128-code groups need no padding (16-code chunks)
    for (const name of ['q', 'o', 'fc1', 'fc2'] as const) {
      const w = fp.parts.layers[0]![name].w!.data, q = qd.parts.layers[0]![name], deq = q.w!.data;
      const { outDim: rows, inDim: cols } = q, off = q.q!.offsets, nG = off.length - 1;
      let worst = 0;
      for (let r = 0; r < rows; r++) {
        for (let g = 0; g < nG; g++) {
          let lo = Infinity, hi = -Infinity;
          for (let j = off[g]!; j < off[g + 1]!; j++) { lo = Math.min(lo, w[r * cols + j]!); hi = Math.max(hi, w[r * cols + j]!); }
          const p = qparamsFromRange(lo, hi, 4, false);
          expect(q.q!.scale[r * nG + g]).toBe(p.scale);
          expect(q.q!.zero[r * nG + g]).toBe(p.zero);
          for (let j = off[g]!; j < off[g + 1]!; j++) worst = Math.max(worst, Math.abs(deq[r * cols + j]! - w[r * cols + j]!) / p.scale);
        }
      }
      expect(worst).toBeLessThanOrEqual(0.5 + 1e-5);
    }
    const si = new QRunState(qi, { maxContext: 32 }), sd = new QRunState(qd, { maxContext: 32 });
    const a = qforward(qi, si, probe, 0, { logits: 'all' }).slice(), b = qforward(qd, sd, probe, 0, { logits: 'all' });
    expect(maxRel(b, a)).toBeLessThan(1e-3);
    expect(qgenerateGreedy(qi, probe.slice(0, 5), 4)).toHaveLength(4);
    si.dispose(); sd.dispose(); qi.dispose(); qd.dispose(); fp.dispose();
  });

  it("a group as wide as every linear ('group', groupSize 256) is the per-row grid: bit-equal logits", () => {
    const o = { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } };
    const g = quantizeOPT(model, rptqRecipe('W4A16', { ...o, weight: { granularity: 'group', groupSize: 256 } }), { calibration: calib });
    const r = quantizeOPT(model, rptqRecipe('W4A16', { ...o, weight: { granularity: 'row' } }), { calibration: calib });
    const run = (m: typeof g) => { const s = new QRunState(m, { maxContext: 32 }); const out = qforward(m, s, probe, 0, { logits: 'all' }).slice(); s.dispose(); return out; };
    expect(Buffer.from(run(g).buffer).equals(Buffer.from(run(r).buffer))).toBe(true);
    g.dispose(); r.dispose();
  });

  it("a groupSize that does not divide a linear's input width is E_ARG naming the linear and width, before any work", () => {
    const calls: unknown[] = [];
    const bad = rptqRecipe('W4A16', { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 }, weight: { granularity: 'group', groupSize: 96 } });
    // 96 → min(96, 64) = 64 divides dim 64, but not fc2's 256 inputs
    expect(() => quantizeOPT(model, bad, { calibration: calib, onProgress: (p) => calls.push(p) })).toThrow(/E_ARG.*groupSize 96 does not divide the 256 input columns of layers\.\*\.fc2/);
    expect(calls).toHaveLength(0);
    const gptq = rptqRecipe('W4A16', { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 }, weight: { method: 'gptq', granularity: 'group', groupSize: 48 } });
    expect(() => quantizeOPT(model, gptq, { calibration: calib, onProgress: (p) => calls.push(p) })).toThrow(/E_ARG.*groupSize 48 does not divide the 64 input columns of layers\.\*\.q_proj/);
    expect(calls).toHaveLength(0);
  });

  it('a post-LN model (do_layer_norm_before = false, e.g. opt-350m) is E_UNSUPPORTED naming the config key, before any work', () => {
    const post = randomOPT({ backend: be, config: { ...OPT_PRESETS['tiny']!, do_layer_norm_before: false }, seed: 3 });
    const calls: unknown[] = [];
    let err: unknown;
    try { quantizeOPT(post, rptqRecipe('W4A16', { calibration: { samples: 4, seqLen: 64 } }), { calibration: calib, onProgress: (p) => calls.push(p) }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(LowbitError);
    expect((err as LowbitError).code).toBe('E_UNSUPPORTED');
    expect((err as LowbitError).message).toMatch(/do_layer_norm_before = false/);
    expect(calls).toHaveLength(0);
    post.dispose();
  });

  it('calibration text shorter than one sample is E_ARG', () => {
    expect(() => calibrationSamples(calib.subarray(0, 10), 4, 64)).toThrow(/E_ARG.*shorter than one sample/);
    expect(() => quantizeOPT(model, customRecipe('x', 4, 16, 16, { calibration: { samples: 2, seqLen: 64 } }), { calibration: calib.subarray(0, 63) })).toThrow(/shorter than one sample/);
  });
});
