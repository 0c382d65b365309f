// OPT decoder properties: KV cache = full forward, left padding is invisible, the opt-350m structure, one layer by hand,
// checkpoint variants (prefixes, F16/BF16, untied head), sampling, text generation, and every bad input.

import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LowbitError } from '../src/errors.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import type { RawTensor } from '../src/io/tensor.js';
import { createBackend, type Backend } from '../src/runtime.js';
import { Tokenizer } from '../src/tokenizer/index.js';
import {
  OPT_PRESETS, Sampler, configFromHF, createRunState, evaluatePerplexity, forward, generate, generateIds, generateStream,
  loadOPT, makeRandomCheckpoint, mulberry32, perplexityWindows, randomCheckpoint, randomOPT, type OPTModel, type ObservePoint,
} from '../src/models/opt/index.js';
import { expectLowbit } from './helpers.js';



function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, mx = 0;
  for (let i = 0; i < b.length; i++) { mx = Math.max(mx, Math.abs(b[i]!)); err = Math.max(err, Math.abs(a[i]! - b[i]!)); }
  return err / mx;
}

function toMap(ck: { tensors: { name: string; dtype: RawTensor['dtype']; shape: readonly number[]; bytes: Uint8Array }[] }): Map<string, RawTensor> {
  return new Map(ck.tensors.map((t) => [t.name, { name: t.name, dtype: t.dtype, shape: [...t.shape], bytes: t.bytes }]));
}

/** Full-sequence logits (T, vocab) of one sequence. */
function fullLogits(m: OPTModel, toks: number[]): Float32Array {
  const s = createRunState(m, { maxContext: toks.length });
  const out = forward(m, s, toks, 0, { logits: 'all' }).slice();
  s.dispose();
  return out;
}

const backends: Record<string, Backend> = {};
beforeAll(async () => {
  backends.js = await createBackend('js');
  backends.simd = await createBackend('simd');
});

const STD = 0.08; // larger than HF's 0.02 so random tiny models have peaked, order-sensitive logits

for (const bname of ['js', 'simd'] as const) {
  for (const preset of ['tiny', 'opt-350m-tiny'] as const) {
    describe(`${preset} on ${bname}`, () => {
      let m: OPTModel;
      beforeAll(() => { m = randomOPT({ config: preset, seed: 7, std: STD, backend: backends[bname]! }); });

      it('has the preset structure', () => {
        if (preset === 'opt-350m-tiny') {
          expect(m.config).toMatchObject({ preLN: false, finalLN: false, dim: 32, wordEmbedProjDim: 16 });
          expect(m.weights.projectIn?.shape).toEqual([32, 16]);
          expect(m.weights.projectOut?.shape).toEqual([16, 32]);
          expect(m.weights.finalLnW).toBeNull();
        } else {
          expect(m.weights.projectIn).toBeNull();
          expect(m.weights.finalLnW?.shape).toEqual([64]);
        }
      });

      it('KV-cache decoding in arbitrary chunks equals the full-sequence forward', () => {
        const V = m.config.vocabSize;
        fc.assert(fc.property(
          fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: 2, maxLength: 24 }),
          fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 24 }),
          (toks, cuts) => {
            const full = fullLogits(m, toks);
            const s = createRunState(m, { maxContext: toks.length, maxTokens: Math.min(6, toks.length), logitRows: 6 });
            const got = new Float32Array(full.length);
            let pos = 0, ci = 0;
            while (pos < toks.length) {
              const T = Math.min(cuts[ci++ % cuts.length]!, toks.length - pos);
              got.set(forward(m, s, toks.slice(pos, pos + T), pos, { logits: 'all' }), pos * V);
              pos += T;
            }
            s.dispose();
            expect(relErr(got, full)).toBeLessThan(1e-5);
          }), { numRuns: 12 });
      });

      it('left padding changes nothing for the real tokens, whatever the pad ids', () => {
        const V = m.config.vocabSize;
        fc.assert(fc.property(
          fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: 1, maxLength: 10 }),
          fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: 0, maxLength: 8 }),
          (toks, pads) => {
            const ref = fullLogits(m, toks);
            const T = pads.length + toks.length;
            // batch of 2: row 0 unpadded reference-length-T sequence of filler, row 1 = pads ++ toks
            const filler = Array.from({ length: T }, (_, i) => (i * 7) % V);
            const s = createRunState(m, { batch: 2, maxContext: T + 2 });
            const mask = [...filler.map(() => 1), ...pads.map(() => 0), ...toks.map(() => 1)];
            const got = forward(m, s, [...filler, ...pads, ...toks], 0, { mask, logits: 'all' });
            const real = got.subarray((T + pads.length) * V, 2 * T * V);
            expect(relErr(real, ref)).toBeLessThan(1e-5);
            // one decode step after the padded prefill equals the unpadded step
            const next = [3, 5];
            const step = forward(m, s, next, T, { logits: 'last' }).slice(V, 2 * V);
            const s1 = createRunState(m, { maxContext: toks.length + 1 });
            forward(m, s1, toks, 0, { logits: 'none' });
            const step1 = forward(m, s1, [5], toks.length);
            expect(relErr(step, step1)).toBeLessThan(1e-5);
            s.dispose();
            s1.dispose();
          }), { numRuns: 10 });
      });

      it('rewinding the cache (pos < length) recomputes from that position', () => {
        const toks = [2, 10, 20, 30, 40, 50];
        const full = fullLogits(m, toks);
        const s = createRunState(m, { maxContext: 8 });
        forward(m, s, [2, 10, 20, 99, 98], 0, { logits: 'none' });
        const got = forward(m, s, [30, 40, 50], 3, { logits: 'all' });
        expect(relErr(got, full.subarray(3 * m.config.vocabSize))).toBeLessThan(1e-5);
      });
    });
  }
}

describe('one layer by hand (hidden 4, 1 head, tied head, relu)', () => {
  // Embeddings e0 = [1,-1,1,-1], e1 = [1,1,-1,-1] (mean 0, variance 1, so LayerNorm(e) = e/√(1+1e-5) ≈ e);
  // positions all zero; Wq = Wk = Wv = Wo = W1 = W2 = I; all biases 0 except fc2.bias = [0.5,0,0,0]; gammas 1, betas 0.
  // Token 0 attends to itself: ctx0 = e0. Token 1: scores q1·k = 0.5·[e1·e0, e1·e1] = [0, 2],
  //   p = [1/(1+e²), e²/(1+e²)] = [0.1192029, 0.8807971], ctx1 = 0.1192029 e0 + 0.8807971 e1 = [1, 0.7615942, -0.7615942, -1].
  // Residual: x0 = 2 e0 = [2,-2,2,-2]; x1 = e1 + ctx1 = [2, 1.7615942, -1.7615942, -2].
  // FFN: h = relu(LN(x)): h0 = [1,0,1,0]; LN(x1): mean 0, var (8 + 2·1.7615942²)/4 = 3.5516, so h1 = [1.0612481, 0.9347442, 0, 0].
  // x' = x + h + [0.5,0,0,0]: x0' = [3.5, -2, 3, -2]; x1' = [3.5612481, 2.6963384, -1.7615942, -2].
  // Final LN: x0' has mean 0.625, var 6.921875: f0 = [1.0927622, -0.9977394, 0.9027166, -0.9977394];
  //   f1 = [1.1633588, 0.8207934, -0.9448633, -1.0392889].
  // Logits = E f (tied head): token 0 → [e0·f0, e1·f0, 0, 0.5 Σf0] = [3.9909576, 0.1900456, 0, 0]; token 1 → [0.4369910, 3.9683045, 0, 0].
  const hf = { model_type: 'opt', vocab_size: 4, hidden_size: 4, num_hidden_layers: 1, num_attention_heads: 1, ffn_dim: 4, max_position_embeddings: 4, do_layer_norm_before: true, activation_function: 'relu' };
  const I = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  const t = (name: string, shape: number[], v: number[]): [string, RawTensor] =>
    [name, { name, dtype: 'F32', shape, bytes: new Uint8Array(new Float32Array(v).buffer) }];
  const z4 = [0, 0, 0, 0], one4 = [1, 1, 1, 1];
  const tensors = new Map<string, RawTensor>([
    t('model.decoder.embed_tokens.weight', [4, 4], [1, -1, 1, -1, 1, 1, -1, -1, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5]),
    t('model.decoder.embed_positions.weight', [6, 4], new Array(24).fill(0)),
    t('model.decoder.final_layer_norm.weight', [4], one4), t('model.decoder.final_layer_norm.bias', [4], z4),
    ...['q', 'k', 'v', 'out'].flatMap((p) => [t(`model.decoder.layers.0.self_attn.${p}_proj.weight`, [4, 4], I), t(`model.decoder.layers.0.self_attn.${p}_proj.bias`, [4], z4)]),
    t('model.decoder.layers.0.self_attn_layer_norm.weight', [4], one4), t('model.decoder.layers.0.self_attn_layer_norm.bias', [4], z4),
    t('model.decoder.layers.0.final_layer_norm.weight', [4], one4), t('model.decoder.layers.0.final_layer_norm.bias', [4], z4),
    t('model.decoder.layers.0.fc1.weight', [4, 4], I), t('model.decoder.layers.0.fc1.bias', [4], z4),
    t('model.decoder.layers.0.fc2.weight', [4, 4], I), t('model.decoder.layers.0.fc2.bias', [4], [0.5, 0, 0, 0]),
  ]);
  for (const bname of ['js', 'simd']) {
    it(`matches the hand-derived numbers on ${bname}`, () => {
      const m = loadOPT(hf, tensors, { backend: backends[bname]! });
      const s = createRunState(m, { maxContext: 4 });
      const seen = new Map<ObservePoint, number[]>();
      const logits = forward(m, s, [0, 1], 0, { logits: 'all', observe: (_l, p, d) => seen.set(p, Array.from(d)) });
      const close = (got: ArrayLike<number>, want: number[]) => want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 4));
      close(seen.get('outProjIn')!, [1, -1, 1, -1, 1, 0.7615942, -0.7615942, -1]);
      close(seen.get('fc2In')!, [1, 0, 1, 0, 1.0612481, 0.9347442, 0, 0]);
      close(logits, [3.9909576, 0.1900456, 0, 0, 0.4369910, 3.9683045, 0, 0]);
    });
  }
});

describe('checkpoint variants load to the same model', () => {
  it('model.decoder., decoder. and bare prefixes, untied head, safetensors round trip', () => {
    const be = backends.simd!;
    const toks = [2, 17, 300, 45, 9];
    const ref = fullLogits(randomOPT({ config: 'tiny', seed: 3, std: STD, backend: be }), toks);
    for (const prefix of ['decoder.', ''] as const) {
      const ck = makeRandomCheckpoint({ config: 'tiny', seed: 3, std: STD, prefix });
      expect(ck.tensors.some((x) => x.name === 'lm_head.weight')).toBe(false);
      expect(relErr(fullLogits(loadOPT(ck.configJson, ck.safetensors, { backend: be }), toks), ref)).toBe(0);
    }
    const unt = randomCheckpoint({ config: 'tiny', seed: 3, std: STD, untiedLmHead: true });
    const um = loadOPT(unt.config, toMap(unt), { backend: be });
    expect(um.weights.tied).toBe(false);
    expect(Number.isFinite(fullLogits(um, toks)[0]!)).toBe(true);
  });

  it('F16 and BF16 checkpoints load (converted to f32) close to the F32 one', () => {
    const toks = [2, 5, 6, 7];
    const ref = fullLogits(randomOPT({ config: 'tiny', seed: 4, std: STD, backend: backends.js! }), toks);
    for (const [dtype, tol] of [['F16', 5e-3], ['BF16', 3e-2]] as const) {
      const ck = makeRandomCheckpoint({ config: 'tiny', seed: 4, std: STD, dtype });
      const m = loadOPT(ck.config, ck.safetensors, { backend: backends.js! });
      const e = relErr(fullLogits(m, toks), ref);
      expect(e).toBeGreaterThan(0);
      expect(e).toBeLessThan(tol);
    }
  });

  it('outlier injection scales the chosen LayerNorm gamma channels in every layer', () => {
    const ck = randomCheckpoint({ config: 'tiny', seed: 5, outliers: { count: 3 } });
    expect(ck.outlierChannels.length).toBe(3);
    const m = loadOPT(ck.config, toMap(ck), { backend: backends.js! });
    for (const lw of m.weights.layers) {
      for (const g of [lw.attnLnW!.data, lw.ffnLnW!.data]) {
        ck.outlierChannels.forEach((ch, j) => {
          expect(ck.outlierScales[j]).toBeGreaterThanOrEqual(20);
          expect(ck.outlierScales[j]).toBeLessThanOrEqual(50);
          expect(Math.abs(g[ch]!)).toBeGreaterThan(15);
        });
        const others = Array.from(g).filter((_, i) => !ck.outlierChannels.includes(i));
        expect(Math.max(...others.map(Math.abs))).toBeLessThan(1.2);
      }
    }
    expect(randomCheckpoint({ config: 'tiny', seed: 5, outliers: { channels: [1, 9], scale: 30 } }).outlierChannels).toEqual([1, 9]);
  });

  it('presets have the published shapes', () => {
    expect(configFromHF(OPT_PRESETS['opt-125m'])).toMatchObject({ vocabSize: 50272, dim: 768, nLayers: 12, nHeads: 12, hiddenDim: 3072, maxPos: 2048, finalLN: true });
    expect(configFromHF(OPT_PRESETS['opt-350m'])).toMatchObject({ dim: 1024, wordEmbedProjDim: 512, preLN: false, finalLN: false, nLayers: 24 });
  });
});

describe('bad input', () => {
  const ck = randomCheckpoint({ config: 'tiny', seed: 1 });
  const good = () => toMap(ck);

  it('config errors name the key', () => {
    expectLowbit(() => configFromHF({ ...ck.config, num_attention_heads: 5 }), 'E_CONFIG', 'num_attention_heads', 'hidden_size');
    expectLowbit(() => configFromHF({ ...ck.config, ffn_dim: 0 }), 'E_CONFIG', 'ffn_dim');
    expectLowbit(() => configFromHF({ ...ck.config, num_hidden_layers: 1.5 }), 'E_CONFIG', 'num_hidden_layers');
    expectLowbit(() => configFromHF({ ...ck.config, vocab_size: undefined }), 'E_CONFIG', 'vocab_size');
    expectLowbit(() => configFromHF({ ...ck.config, activation_function: 'swish' }), 'E_CONFIG', 'activation_function', 'swish');
    expectLowbit(() => configFromHF({ ...ck.config, model_type: 'llama' }), 'E_CONFIG', 'model_type');
    expectLowbit(() => configFromHF('{oops'), 'E_FORMAT');
  });

  it('missing, unexpected, duplicate, wrong-shape and wrong-dtype tensors name the key', () => {
    const be = backends.js!;
    const missing = good();
    missing.delete('model.decoder.layers.1.fc2.bias');
    expectLowbit(() => loadOPT(ck.config, missing, { backend: be }), 'E_KEY', 'layers.1.fc2.bias');
    const extra = good();
    extra.set('model.decoder.layers.2.fc1.weight', { ...extra.get('model.decoder.layers.1.fc1.weight')!, name: 'model.decoder.layers.2.fc1.weight' });
    expectLowbit(() => loadOPT(ck.config, extra, { backend: be }), 'E_KEY', 'model.decoder.layers.2.fc1.weight');
    const dup = good();
    dup.set('decoder.embed_tokens.weight', dup.get('model.decoder.embed_tokens.weight')!);
    expectLowbit(() => loadOPT(ck.config, dup, { backend: be }), 'E_KEY', 'decoder.embed_tokens.weight');
    const shape = good();
    const q = shape.get('model.decoder.layers.0.self_attn.q_proj.weight')!;
    shape.set(q.name, { ...q, shape: [32, 128] });
    expectLowbit(() => loadOPT(ck.config, shape, { backend: be }), 'E_SHAPE', 'layers.0.self_attn.q_proj.weight', '[32, 128]', '[64, 64]');
    const dt = good();
    const b = dt.get('model.decoder.layers.0.fc1.bias')!;
    dt.set(b.name, { ...b, dtype: 'I32' });
    expectLowbit(() => loadOPT(ck.config, dt, { backend: be }), 'E_DTYPE', 'layers.0.fc1.bias');
  });

  it('a failure while filling frees everything allocated (nothing half-loaded)', () => {
    const be = backends.simd!;
    const before = be.heap!.stats().inUse;
    const bad = good();
    const last = bad.get('model.decoder.layers.1.fc2.weight')!;
    bad.set(last.name, { ...last, bytes: last.bytes.subarray(4) }); // shape fine, bytes short: fails in conversion
    expectLowbit(() => loadOPT(ck.config, bad, { backend: be }), 'E_SHAPE', 'layers.1.fc2.weight');
    expect(be.heap!.stats().inUse).toBe(before);
  });

  it('token ids out of range, prompts past max positions, bad forward arguments', () => {
    const m = loadOPT(ck.config, good(), { backend: backends.js! });
    const s = createRunState(m, { maxContext: 16 });
    expectLowbit(() => forward(m, s, [2, 512], 0), 'E_RANGE', '512', '512');
    expectLowbit(() => forward(m, s, [2, -1], 0), 'E_RANGE');
    expectLowbit(() => forward(m, s, [2, 3], 1), 'E_ARG', 'pos');
    expectLowbit(() => forward(m, s, [2, 3], 0, { mask: [1] }), 'E_SHAPE');
    expectLowbit(() => forward(m, s, new Array(17).fill(3), 0), 'E_ARG', 'maxTokens');
    expectLowbit(() => generateIds(m, [[2, 600]]), 'E_RANGE', '600');
    expectLowbit(() => generateIds(m, [new Array(129).fill(5)]), 'E_RANGE', '129', '128');
    const big = createRunState(m, { maxContext: 140 });
    expectLowbit(() => forward(m, big, new Array(129).fill(5), 0), 'E_RANGE', '129', '128');
    // left padding does not count toward positions: 12 pads + 128 real tokens is fine
    const mask = [...new Array(12).fill(0), ...new Array(128).fill(1)];
    expect(forward(m, big, new Array(140).fill(5), 0, { mask }).every(Number.isFinite)).toBe(true);
  });
});

describe('sampling', () => {
  it('greedy is the argmax, top-k 1 and tiny top-p are greedy at any temperature', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: -160, max: 160 }).map((v) => v / 8), { minLength: 1, maxLength: 50 }), fc.integer(), (xs, seed) => {
      const lg = Float32Array.from(xs);
      const g = new Sampler().sample(lg);
      expect(lg[g]).toBe(Math.max(...lg));
      expect(lg[new Sampler({ temperature: 1.5, topK: 1, seed }).sample(lg)]).toBe(lg[g]);
      expect(lg[new Sampler({ temperature: 0.7, topP: 1e-9, seed }).sample(lg)]).toBe(lg[g]);
    }));
  });

  it('is reproducible from the seed and follows the distribution', () => {
    const lg = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2), -Infinity]);
    const a = new Sampler({ temperature: 1, seed: 42 }), b = new Sampler({ temperature: 1, seed: 42 });
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20000; i++) { const x = a.sample(lg); expect(b.sample(lg)).toBe(x); counts[x]!++; }
    expect(counts[0]! / 20000).toBeCloseTo(0.5, 1);
    expect(counts[2]! / 20000).toBeCloseTo(0.2, 1);
    expect(counts[3]).toBe(0);
    // top-p 0.75 keeps {0.5, 0.3}; top-k 2 the same set
    for (const opts of [{ topP: 0.75 }, { topK: 2 }]) {
      const s = new Sampler({ temperature: 1, seed: 1, ...opts });
      for (let i = 0; i < 2000; i++) expect(s.sample(lg)).toBeLessThan(2);
    }
    const r = mulberry32(1);
    expect([r(), r()]).toEqual([0.6270739405881613, 0.002735721180215478]);
    expectLowbit(() => new Sampler({ topP: 0 }), 'E_ARG', 'topP');
    expectLowbit(() => new Sampler({ temperature: -1 }), 'E_ARG', 'temperature');
  });
});

describe('text generation with the OPT tokenizer', () => {
  const tok = Tokenizer.fromFiles(
    readFileSync(new URL('../../shared/data/tokenizers/opt/vocab.json', import.meta.url)),
    readFileSync(new URL('../../shared/data/tokenizers/opt/merges.txt', import.meta.url)),
  );
  it('generate, generateStream and generateIds agree; EOS stops; sampling is seeded', async () => {
    const cfg = { ...OPT_PRESETS['tiny'], vocab_size: 50272, hidden_size: 16, ffn_dim: 32, num_hidden_layers: 1, num_attention_heads: 2 };
    const m = randomOPT({ config: cfg, seed: 9, std: 0.5, backend: backends.simd! });
    const text = await generate(m, tok, 'Hello world', { maxNewTokens: 6 });
    const pieces: string[] = [], sids: number[] = [];
    for await (const p of generateStream(m, tok, 'Hello world', { maxNewTokens: 6 })) { pieces.push(p.text); sids.push(p.id); }
    const ids = generateIds(m, [tok.encode('Hello world')], { maxNewTokens: 6 })[0]!;
    expect(sids).toEqual(ids);
    expect(pieces.join('')).toBe(text);
    expect(text).toBe(tok.decode(ids, { skipSpecialTokens: true }));
    // stop on EOS: declare the first greedy token to be EOS
    expect(generateIds(m, [tok.encode('Hello world')], { maxNewTokens: 6, eosId: ids[0]! })[0]).toEqual([ids[0]]);
    const s1 = await generate(m, tok, 'Hi', { maxNewTokens: 8, temperature: 1, topK: 40, topP: 0.9, seed: 5 });
    const s2 = await generate(m, tok, 'Hi', { maxNewTokens: 8, temperature: 1, topK: 40, topP: 0.9, seed: 5 });
    expect(s1).toBe(s2);
  });

  it('WikiText-2 test tokenizes to 287,645 ids: 140 windows of 2048', () => {
    const text = readFileSync(new URL('../../shared/data/corpora/wikitext2_raw_test.txt', import.meta.url), 'utf8');
    const ids = tok.encode(text);
    expect(ids.length).toBe(287645);
    expect(perplexityWindows(ids.length, 2048)).toBe(140);
  });

  it('perplexity checks its arguments', async () => {
    const m = randomOPT({ config: 'tiny', seed: 1, backend: backends.js! });
    await expect(evaluatePerplexity(m, [2, 3, 4], { seqLen: 8 })).rejects.toMatchObject({ code: 'E_ARG' });
    await expect(evaluatePerplexity(m, new Array(300).fill(3), { seqLen: 256 })).rejects.toMatchObject({ code: 'E_RANGE' });
    const r = await evaluatePerplexity(m, new Array(100).fill(3), { seqLen: 16, maxWindows: 2 });
    expect(r.nWindows).toBe(2);
    expect(r.tokenNll.length).toBe(30);
  });
});

describe('checkpoint bytes', () => {
  it('the maker writes HF-layout safetensors with format=pt metadata', () => {
    const ck = makeRandomCheckpoint({ config: 'opt-350m-tiny', seed: 2, dtype: 'F16' });
    const again = writeSafetensors(ck.tensors, { format: 'pt' });
    expect(again).toEqual(ck.safetensors);
    expect(JSON.parse(ck.configJson)).toMatchObject({ do_layer_norm_before: false, word_embed_proj_dim: 16, hidden_size: 32 });
    expect(ck.tensors.map((t) => t.name)).toContain('model.decoder.project_in.weight');
  });
});
