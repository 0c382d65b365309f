// Tokenizer core: OPT expectations, WikiText-2 count and timing, round trip, a naive-BPE reference, tokenizer.json, errors.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LowbitError } from '../src/errors.js';
import { Tokenizer, bytesToUnicode, preTokenize, unicodeToBytes } from '../src/tokenizer/index.js';
import { expectLowbit } from './helpers.js';

const data = (p: string) => readFileSync(new URL(`../../shared/data/${p}`, import.meta.url));
const optVocab = data('tokenizers/opt/vocab.json');
const optMerges = data('tokenizers/opt/merges.txt');
const opt = Tokenizer.fromFiles(optVocab, optMerges);
const gpt2 = Tokenizer.fromFiles(data('tokenizers/gpt2/encoder.json'), data('tokenizers/gpt2/vocab.bpe'));


/** Reference: openai/gpt-2 encoder.py `bpe()` on a byte-level word, merging every occurrence of the best bigram per step. */
function naiveBpe(word: string[], ranks: Map<string, number>): string[] {
  for (;;) {
    let best = -1, bestRank = Infinity;
    for (let i = 0; i + 1 < word.length; i++) {
      const r = ranks.get(word[i] + ' ' + word[i + 1]);
      if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
    }
    if (best < 0) return word;
    const [a, b] = [word[best]!, word[best + 1]!];
    const out: string[] = [];
    for (let i = 0; i < word.length; i++) {
      if (i + 1 < word.length && word[i] === a && word[i + 1] === b) { out.push(a + b); i++; } else out.push(word[i]!);
    }
    word = out;
  }
}

describe('bytes <-> unicode table', () => {
  it('is a bijection with GPT-2 landmarks', () => {
    const b2u = bytesToUnicode(), u2b = unicodeToBytes();
    expect(new Set(b2u).size).toBe(256);
    b2u.forEach((ch, b) => expect(u2b[ch.charCodeAt(0)]).toBe(b));
    expect(b2u[0x20]).toBe('Ġ');
    expect(b2u[0x0a]).toBe('Ċ');
    expect(b2u[0x00]).toBe('Ā');
    expect(b2u[0x41]).toBe('A');
    expect(b2u[0xad]).toBe('Ń');
  });
});

describe('pre-tokenisation', () => {
  it('splits like GPT-2 and always concatenates back to the input', () => {
    expect(preTokenize("Hello world! It's  2024\n\n ok")).toEqual(['Hello', ' world', '!', ' It', "'s", ' ', ' 2024', '\n\n', ' ok']);
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => { expect(preTokenize(s).join('')).toBe(s); }), { numRuns: 500 });
  });
});

describe('OPT', () => {
  it('matches transformers.js modeling_opt: hello, hello world', () => {
    expect(opt.addSpecial).toBe('opt');
    expect(opt.encode('hello')).toEqual([2, 42891]);
    expect(opt.encode('hello world')).toEqual([2, 42891, 232]);
    expect(opt.decode([2, 42891, 232])).toBe('</s>hello world');
    expect(opt.decode([2, 42891, 232], { skipSpecialTokens: true })).toBe('hello world');
  });

  it('accepts contents as string, Uint8Array or ArrayBuffer (browser fetch)', () => {
    const ab = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    const fromBuffers = Tokenizer.fromFiles(ab(optVocab), ab(optMerges));
    const fromStrings = Tokenizer.fromFiles(optVocab.toString('utf8'), optMerges.toString('utf8'), { addSpecial: 'opt', bosId: 2 });
    expect(fromBuffers.encode('hello world')).toEqual([2, 42891, 232]);
    expect(fromStrings.encode('hello world')).toEqual([2, 42891, 232]);
  });

  it('has accessors for the OPT/RoBERTa layout', () => {
    expect(opt.vocabSize).toBe(50265);
    expect([opt.bosId, opt.eosId, opt.padId, opt.unkId]).toEqual([2, 2, 1, 3]);
    expect(opt.tokenToId('<s>')).toBe(0);
    expect(opt.tokenToId('Ġworld')).toBe(232);
    expect(opt.tokenToId('no such token')).toBeUndefined();
    expect(opt.idToToken(42891)).toBe('hello');
    expect(opt.idToToken(50264)).toBe('<mask>');
    expect(gpt2.vocabSize).toBe(50257);
    expect([gpt2.addSpecial, gpt2.bosId, gpt2.eosId, gpt2.padId]).toEqual(['none', 50256, 50256, undefined]);
  });

  it('supports the three addSpecial modes on one vocab, per tokenizer and per call', () => {
    expect(opt.encode('hello', { addSpecial: 'roberta' })).toEqual([0, 42891, 2]);
    expect(opt.encode('hello', { addSpecial: 'none' })).toEqual([42891]);
    const rob = Tokenizer.fromFiles(optVocab, optMerges, { addSpecial: 'roberta' });
    expect(rob.encode('hello world')).toEqual([0, 42891, 232, 2]);
    expect(gpt2.encode('hello', { addSpecial: 'opt' })).toEqual([50256, 31373]);
    expectLowbit(() => gpt2.encode('x', { addSpecial: 'roberta' }), 'E_ARG', '<s>');
  });

  it('matches special tokens whole before BPE, and only those in the vocab', () => {
    expect(opt.encode('a</s>b<pad><unk><s><|endoftext|>', { addSpecial: 'none' })).toEqual([
      ...opt.encode('a', { addSpecial: 'none' }), 2, ...opt.encode('b', { addSpecial: 'none' }), 1, 3, 0, 50260,
    ]);
    expect(gpt2.encode('x<|endoftext|>y')).toEqual([87, 50256, 88]);
    expect(gpt2.tokenize('</s>')).toEqual(['</', 's', '>']); // not in GPT-2's vocab: plain text
    const plain = Tokenizer.fromFiles(optVocab, optMerges, { specialTokens: [] });
    expect(plain.encode('</s>', { addSpecial: 'none' })).toEqual(opt.encode('</', { addSpecial: 'none' }).concat(opt.encode('s>', { addSpecial: 'none' })));
  });

  it('tokenizes WikiText-2 raw test to exactly 287,645 ids (GPT-2: 287,644) and round-trips it', () => {
    const text = readFileSync(new URL('../../shared/data/corpora/wikitext2_raw_test.txt', import.meta.url), 'utf8');
    let t0 = performance.now();
    const fresh = Tokenizer.fromFiles(optVocab, optMerges);
    const tLoad = performance.now() - t0;
    t0 = performance.now();
    const ids = fresh.encode(text);
    const tCold = performance.now() - t0;
    t0 = performance.now();
    fresh.encode(text);
    const tWarm = performance.now() - t0;
    console.log(`[tokenizer] WikiText-2 raw test (${text.length} chars): load ${tLoad.toFixed(0)} ms, encode ${tCold.toFixed(0)} ms cold cache, ${tWarm.toFixed(0)} ms warm cache, ${ids.length} ids`);
    expect(ids.length).toBe(287645);
    expect(ids[0]).toBe(2);
    expect(gpt2.encode(text).length).toBe(287644);
    expect(fresh.decode(ids, { skipSpecialTokens: true })).toBe(text);
  });
});

describe('round trip: decode(encode(s)) === s', () => {
  const pieces = [
    ' ', '  ', '   ', '\n', '\n\n', '\r\n', '\t', ' \t\n', '\u00a0', '\u3000', "'s", "'ll", "n't", ' 12', '3.14',
    'e\u0301', 'a\u0308\u0323', '😂', '👨🏻‍🌾', '🏴󠁧󠁢󠁥󠁮󠁧󠁿', '❤️', '生活的', 'Ω', 'hello', ' World', '\u0000', '\ufffd', '￮',
  ];
  const specials = ['</s>', '<s>', '<pad>', '<unk>', '<|endoftext|>'];
  const text = fc.array(
    fc.oneof(fc.constantFrom(...pieces), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary-ascii' })),
    { maxLength: 12 },
  ).map((xs) => xs.join(''));

  it('holds for arbitrary unicode (OPT and GPT-2 vocabs)', () => {
    fc.assert(fc.property(text, (s) => {
      const ids = opt.encode(s);
      expect(ids[0]).toBe(2);
      expect(opt.decode(ids.slice(1))).toBe(s);
      expect(opt.decode(opt.encode(s, { addSpecial: 'none' }))).toBe(s);
      expect(gpt2.decode(gpt2.encode(s))).toBe(s);
      if (!specials.some((t) => s.includes(t))) expect(opt.decode(ids, { skipSpecialTokens: true })).toBe(s);
    }), { numRuns: 500 });
  });

  it('holds with special tokens inside the text (kept as whole ids)', () => {
    const withSpecials = fc.array(fc.oneof(text, fc.constantFrom(...specials)), { maxLength: 6 }).map((xs) => xs.join(''));
    fc.assert(fc.property(withSpecials, (s) => {
      const ids = opt.encode(s, { addSpecial: 'none' });
      expect(opt.decode(ids)).toBe(s);
      for (const t of specials) if (s.includes(t)) expect(ids).toContain(opt.tokenToId(t));
    }), { numRuns: 300 });
  });

  it('maps lone surrogates to U+FFFD (UTF-8 cannot carry them), like TextEncoder', () => {
    expect(opt.decode(opt.encode('a\ud800b', { addSpecial: 'none' }))).toBe('a\ufffdb');
    expect(opt.decode(opt.encode('\udc00', { addSpecial: 'none' }))).toBe('\ufffd');
  });

  it('decodes a split multi-byte character to U+FFFD', () => {
    const ids = gpt2.encode('生');
    expect(ids.length).toBeGreaterThan(0);
    expect(gpt2.decode([gpt2.tokenToId('æ')!])).toBe('\ufffd');
  });
});

describe('BPE merge loop', () => {
  const ranks = new Map<string, number>();
  readFileSync(new URL('../../shared/data/tokenizers/opt/merges.txt', import.meta.url), 'utf8')
    .split('\n').slice(1).filter((l) => l !== '').forEach((l, i) => ranks.set(l, i));
  const b2u = bytesToUnicode();
  const pre = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const reference = (s: string) =>
    (s.match(pre) ?? []).flatMap((w) => naiveBpe([...new TextEncoder().encode(w)].map((b) => b2u[b]!), ranks));

  it('equals the naive GPT-2 loop on random text, including long repetitive words', () => {
    const alpha = fc.string({ unit: fc.constantFrom('a', 'b', 'e', 'r', 't', 'h', ' ', 'l', '0', '1', 'é', '!', '\n'), maxLength: 80 });
    const runs = fc.tuple(fc.constantFrom('a', 'ab', 'ing', '00', '!', 'ha', ' '), fc.integer({ min: 1, max: 300 })).map(([p, n]) => p.repeat(n));
    const fresh = Tokenizer.fromFiles(optVocab, optMerges, { addSpecial: 'none', specialTokens: [] });
    fc.assert(fc.property(fc.oneof(alpha, runs, fc.string({ unit: 'grapheme' })), (s) => {
      expect(fresh.tokenize(s)).toEqual(reference(s));
    }), { numRuns: 300 });
  });

  it('round-trips long pathological runs (whitespace, newlines, digits, punctuation, CJK, emoji)', () => {
    const runs = [' '.repeat(100_000) + 'x', '\n'.repeat(100_000), '7'.repeat(100_000), '!?'.repeat(50_000), '生活'.repeat(50_000), '😂'.repeat(50_000)];
    const t0 = performance.now();
    for (const s of runs) expect(opt.decode(opt.encode(s, { addSpecial: 'none' }))).toBe(s);
    console.log(`[tokenizer] 6 pathological 100k-char runs: ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it('handles a 200k-character word without spaces in near-linear time', () => {
    const s = 'ab'.repeat(100_000);
    const t0 = performance.now();
    const ids = opt.encode(s, { addSpecial: 'none' });
    console.log(`[tokenizer] one 200k-char word: ${(performance.now() - t0).toFixed(0)} ms, ${ids.length} ids`);
    expect(opt.decode(ids)).toBe(s);
  });
});

describe('tokenizer.json', () => {
  const vocabObj = JSON.parse(optVocab.toString('utf8')) as Record<string, number>;
  const mergeLines = optMerges.toString('utf8').split('\n').slice(1).filter((l) => l !== '');
  const text = 'The quick brown fox <mask> jumps.\n\nOver the lazy dog</s>, 1999 — naïve 😂';

  it('accepts "a b" and [a, b] merges and gives the same ids as vocab.json + merges.txt', () => {
    const strJson = JSON.stringify({ model: { type: 'BPE', vocab: vocabObj, merges: mergeLines }, added_tokens: [] });
    const pairJson = { model: { vocab: vocabObj, merges: mergeLines.map((l) => l.split(' ')) }, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false } };
    const a = Tokenizer.fromTokenizerJson(strJson);
    const b = Tokenizer.fromTokenizerJson(new TextEncoder().encode(JSON.stringify(pairJson)));
    expect(a.encode(text)).toEqual(opt.encode(text));
    expect(b.encode(text)).toEqual(opt.encode(text));
    expect(a.encode('hello world')).toEqual([2, 42891, 232]);
  });

  it('matches added_tokens whole, with lstrip, and decodes added tokens beyond the vocab', () => {
    const json = {
      model: { type: 'BPE', vocab: vocabObj, merges: mergeLines },
      added_tokens: [
        { id: 50264, content: '<mask>', special: true, lstrip: true, rstrip: false },
        { id: 50265, content: '⟨turn⟩', special: false, lstrip: false, rstrip: false },
        { id: 50266, content: '<|sep|>', special: true, lstrip: false, rstrip: true },
      ],
    };
    const tok = Tokenizer.fromTokenizerJson(json, { addSpecial: 'roberta' });
    expect(tok.vocabSize).toBe(50267);
    // RobertaTokenizer: "Hello <mask>!" → [0, 31414, 50264, 328, 2] (<mask> eats the space before it)
    expect(tok.encode('Hello <mask>!')).toEqual([0, 31414, 50264, 328, 2]);
    const ids = tok.encode('a⟨turn⟩b<|sep|>  c', { addSpecial: 'none' });
    expect(ids).toEqual([102, 50265, 428, 50266, 438]);
    expect(tok.decode(ids)).toBe('a⟨turn⟩b<|sep|>c');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('a⟨turn⟩bc');
    expect(tok.idToToken(50265)).toBe('⟨turn⟩');
    expect(tok.tokenToId('⟨turn⟩')).toBe(50265);
  });

  it('honours add_prefix_space from a ByteLevel pre_tokenizer', () => {
    const tok = Tokenizer.fromTokenizerJson({ model: { vocab: vocabObj, merges: mergeLines }, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true } });
    expect(tok.encode('hello', { addSpecial: 'none' })).toEqual([20760]);
    expect(tok.encode('<s>hello</s>', { addSpecial: 'none' })).toEqual([0, 20760, 2]); // per segment, as HF's ByteLevel
    expect(tok.idToToken(20760)).toBe('Ġhello');
  });
});
