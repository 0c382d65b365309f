// The RPTQ-quantized OPT through the same user API as the float model: left-padded batches (qforward's mask), text and
// token generation with the sampler, streaming, and perplexity with GPTQ/RPTQ's protocol.

import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { randomOPT, type OPTModel } from '../src/models/opt/index.js';
import { QRunState, qforward, qgenerateGreedy, qlmHead, type QuantizedOPT } from '../src/models/opt/quantized.js';
import { generate, generateIds, generateStream } from '../src/models/opt/generate.js';
import { evaluatePerplexity } from '../src/models/opt/perplexity.js';
import { openSession } from '../src/models/opt/session.js';
import { quantizeOPT, rptqRecipe, type RecipePresetName } from '../src/quant/rptq/index.js';
import { expectLowbit, maxRel, randomIds } from './helpers.js';

const ids = (n: number, vocab: number, seed: number): number[] => Array.from(randomIds(n, vocab, seed));

/** A whitespace "tokenizer" over ids, enough for the text API (generate and generateStream need encode/decode). */
const codec = {
  encode: (s: string) => s.split(' ').filter(Boolean).map(Number),
  decode: (ids: ArrayLike<number>) => Array.from(ids).join(' '),
};

describe('quantized OPT through the generation and perplexity API', () => {
  let be: Backend, model: OPTModel;
  const qms = new Map<RecipePresetName | 'W4A16 kv-bf16', QuantizedOPT>();
  const V = 512;
  beforeAll(async () => {
    be = await createBackend('simd');
    model = randomOPT({ backend: be, config: 'tiny', seed: 3, outliers: { count: 4 } });
    const calib = Int32Array.from(ids(2048, V, 7));
    for (const name of ['W4A16', 'W4A4KV', 'FP'] as const) {
      qms.set(name, quantizeOPT(model, rptqRecipe(name, { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 } }), { calibration: calib }));
    }
    qms.set('W4A16 kv-bf16', quantizeOPT(model, rptqRecipe('W4A16', { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 }, kvFloat: 'bf16' }),
      { calibration: calib }));
  });
  afterAll(() => { for (const q of qms.values()) q.dispose(); model.dispose(); });

  for (const name of ['W4A16', 'W4A4KV', 'W4A16 kv-bf16'] as const) {
    it(`${name}: left padding changes nothing for the real tokens (prefill and the decode step after it)`, () => {
      const qm = qms.get(name)!;
      for (const [nTok, nPad, seed] of [[7, 5, 1], [12, 1, 2], [3, 9, 3]] as const) {
        const toks = ids(nTok, V, 100 + seed), pads = ids(nPad, V, 200 + seed);
        const T = nTok + nPad, filler = ids(T, V, 300 + seed);
        const s1 = new QRunState(qm, { maxContext: nTok + 1 });
        const ref = qforward(qm, s1, toks, 0, { logits: 'all' }).slice();
        const refStep = qforward(qm, s1, [5], nTok).slice();
        // batch of 2: row 0 unpadded filler, row 1 = pads ++ toks with the pads masked
        const s = new QRunState(qm, { batch: 2, maxContext: T + 1 });
        const mask = [...filler.map(() => 1), ...pads.map(() => 0), ...toks.map(() => 1)];
        const got = qforward(qm, s, [...filler, ...pads, ...toks], 0, { mask, logits: 'all' });
        expect(maxRel(ref, got.subarray((T + nPad) * V, 2 * T * V))).toBeLessThan(1e-4);
        const step = qforward(qm, s, [3, 5], T).subarray(V, 2 * V);
        expect(maxRel(refStep, step)).toBeLessThan(1e-4);
        // without the mask the pads are real tokens: the logits move (the check above can fail)
        const s2 = new QRunState(qm, { batch: 2, maxContext: T });
        const unmasked = qforward(qm, s2, [...filler, ...pads, ...toks], 0, { logits: 'all' });
        expect(maxRel(ref, unmasked.subarray((T + nPad) * V, 2 * T * V))).toBeGreaterThan(1e-2);
        s.dispose(); s1.dispose(); s2.dispose();
      }
    });
  }

  it('greedy generateIds equals qgenerateGreedy; a ragged batch generates what each prompt generates alone', () => {
    const qm = qms.get('W4A4KV')!;
    const a = ids(9, V, 11), b = ids(4, V, 12);
    const opts = { maxNewTokens: 10, temperature: 0, stopAtEos: false };
    const ga = generateIds(qm, [a], opts)[0]!;
    expect(ga).toEqual(qgenerateGreedy(qm, a, 10));
    expect(generateIds(qm, [a, b], opts)).toEqual([ga, generateIds(qm, [b], opts)[0]!]);
  });

  it('sampling is seeded and reproducible; generate and generateStream give the same text', async () => {
    const qm = qms.get('W4A16')!;
    const prompt = ids(6, V, 21).join(' ');
    const opts = { maxNewTokens: 12, temperature: 0.9, topK: 40, seed: 5, stopAtEos: false };
    const t1 = await generate(qm, codec, prompt, opts);
    expect(await generate(qm, codec, prompt, opts)).toBe(t1);
    expect(t1.split(' ')).toHaveLength(12);
    expect(await generate(qm, codec, prompt, { ...opts, seed: 6 })).not.toBe(t1);
    let streamed = '';
    for await (const piece of generateStream(qm, codec, prompt, opts)) streamed += piece.text;
    expect(streamed.replace(/ /g, '')).toBe(t1.replace(/ /g, ''));
  });

  it('perplexity runs the quantized model: equal to the NLL of qforward logits; the folded FP recipe matches the float model', async () => {
    const qm = qms.get('W4A4KV')!;
    const text = ids(3 * 48 + 5, V, 31);
    const r = await evaluatePerplexity(qm, text, { seqLen: 48, chunkRows: 20 });
    expect(r.nWindows).toBe(3);
    // by hand: one window at a time, all logits at once
    let total = 0;
    for (let w = 0; w < 3; w++) {
      const win = text.slice(w * 48, (w + 1) * 48);
      const s = new QRunState(qm, { maxContext: 48 });
      const lg = qforward(qm, s, win, 0, { logits: 'all' });
      for (let t = 0; t < 47; t++) {
        const row = lg.subarray(t * V, (t + 1) * V);
        const mx = row.reduce((m, v) => Math.max(m, v), -Infinity);
        let se = 0;
        for (const v of row) se += Math.exp(v - mx);
        total += mx + Math.log(se) - row[win[t + 1]!]!;
      }
      s.dispose();
    }
    expect(Math.abs(r.meanNll - total / (3 * 47)) / r.meanNll).toBeLessThan(1e-5);
    const fp = await evaluatePerplexity(qms.get('FP')!, text, { seqLen: 48 });
    const fl = await evaluatePerplexity(model, text, { seqLen: 48 });
    expect(Math.abs(fp.meanNll - fl.meanNll) / fl.meanNll).toBeLessThan(1e-5);
    // quantization moves it (the comparison can fail)
    expect(Math.abs(r.meanNll - fl.meanNll)).toBeGreaterThan(1e-4);
  });

  it('bad input: a mask of the wrong length or with other values, a disposed model, something that is not a model', () => {
    const qm = qms.get('W4A16')!;
    const s = new QRunState(qm, { batch: 2, maxContext: 8 });
    expectLowbit(() => qforward(qm, s, [5, 6, 7, 8], 0, { mask: [1, 1, 1] }), 'E_SHAPE', 'mask has 3 entries');
    expectLowbit(() => qforward(qm, s, [5, 6, 7, 8], 0, { mask: [1, 2, 1, 1] }), 'E_ARG', 'mask[1] is 2');
    expectLowbit(() => qforward(qm, s, [5, 6, 7, V], 0), 'E_RANGE', `token 3 is ${V}`);
    s.dispose();
    // LM-head rows of the last forward: inside the state's rows and its logits buffer
    const s2 = new QRunState(qm, { batch: 2, maxContext: 8, logitRows: 2 });
    qforward(qm, s2, [5, 6, 7, 8], 0, { logits: 'none' });
    expect(qlmHead(qm, s2, 1, 2).length).toBe(2 * V);
    expectLowbit(() => qlmHead(qm, s2, 15, 2), 'E_ARG', 'qlmHead: rows 15..16 are outside');
    expectLowbit(() => qlmHead(qm, s2, 0, 3), 'E_ARG', "qlmHead: 3 rows exceed the logits buffer's 2");
    s2.dispose();
    expectLowbit(() => openSession('generate', {} as OPTModel, {}), 'E_ARG', 'expected an OPTModel or a QuantizedOPT');
    expectLowbit(() => generateIds(qm, [[2, V]]), 'E_RANGE', `${V}`);
    const tmp = quantizeOPT(model, rptqRecipe('W4A16', { calibration: { samples: 1, seqLen: 16 }, kmeans: { nInit: 1 } }),
      { calibration: Int32Array.from(ids(64, V, 41)) });
    tmp.dispose();
    expectLowbit(() => generateIds(tmp, [[2, 5]]), 'E_ARG', 'disposed');
  });
});
