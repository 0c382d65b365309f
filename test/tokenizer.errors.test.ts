// Tokenizer bad input: malformed files and bad ids raise LowbitError with a stable code naming the file, line or id.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LowbitError } from '../src/errors.js';
import { Tokenizer, bytesToUnicode } from '../src/tokenizer/index.js';
import { expectLowbit } from './helpers.js';


/** Runs `f`; anything it throws must be a LowbitError. */
function onlyLowbit(f: () => unknown): void {
  try { f(); } catch (e) {
    if (!(e instanceof LowbitError)) throw new Error(`not a LowbitError: ${String(e)}`);
  }
}

// A tiny byte-level vocab: the 256 byte characters (ids 0..255), then "ab" = 256, "abc" = 257, "<s>" = 258.
const b2u = bytesToUnicode();
const tinyVocab: Record<string, number> = Object.fromEntries(b2u.map((ch, b) => [ch, b]));
Object.assign(tinyVocab, { ab: 256, abc: 257, '<s>': 258 });
const tinyJson = JSON.stringify(tinyVocab);
const tinyMerges = '#version: 0.2\na b\nab c\n';

describe('tiny vocab sanity', () => {
  it('builds and merges', () => {
    const tok = Tokenizer.fromFiles(tinyJson, tinyMerges);
    expect(tok.encode('abcab')).toEqual([257, 256]);
    expect(tok.vocabSize).toBe(259);
    expect(tok.addSpecial).toBe('none');
  });
});

describe('malformed files', () => {
  it('vocab.json: malformed JSON, wrong shape, bad ids, duplicate ids, invalid UTF-8', () => {
    expectLowbit(() => Tokenizer.fromFiles('{"a": 1', tinyMerges), 'E_FORMAT', 'vocab.json', 'malformed JSON');
    expectLowbit(() => Tokenizer.fromFiles('[1, 2]', tinyMerges), 'E_FORMAT', 'vocab.json');
    expectLowbit(() => Tokenizer.fromFiles('null', tinyMerges), 'E_FORMAT', 'vocab.json');
    expectLowbit(() => Tokenizer.fromFiles(JSON.stringify({ ...tinyVocab, xy: 1.5 }), tinyMerges), 'E_FORMAT', 'vocab.json', '"xy"', '1.5');
    expectLowbit(() => Tokenizer.fromFiles(JSON.stringify({ ...tinyVocab, xy: '7' }), tinyMerges), 'E_FORMAT', '"xy"');
    expectLowbit(() => Tokenizer.fromFiles(JSON.stringify({ ...tinyVocab, xy: -1 }), tinyMerges), 'E_FORMAT', '"xy"');
    expectLowbit(() => Tokenizer.fromFiles(JSON.stringify({ ...tinyVocab, xy: 1e12 }), tinyMerges), 'E_FORMAT', '"xy"');
    expectLowbit(() => Tokenizer.fromFiles(JSON.stringify({ ...tinyVocab, xy: 256 }), tinyMerges), 'E_FORMAT', 'id 256', '"ab"', '"xy"');
    expectLowbit(() => Tokenizer.fromFiles(new Uint8Array([0x7b, 0xff, 0x7d]), tinyMerges), 'E_FORMAT', 'vocab.json', 'UTF-8');
    const noSpace = { ...tinyVocab };
    delete noSpace['Ġ'];
    expectLowbit(() => Tokenizer.fromFiles(JSON.stringify(noSpace), ''), 'E_FORMAT', 'vocab.json', 'byte 0x20');
    expectLowbit(() => Tokenizer.fromFiles(42 as unknown as string, tinyMerges), 'E_ARG', 'vocab.json');
  });

  it('merges.txt: bad lines and merges that cannot work name the line', () => {
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, '#version: 0.2\na b\nq zz\n'), 'E_FORMAT', 'merges.txt line 3', '"zz"');
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, 'a b\nb c\n'), 'E_FORMAT', 'merges.txt line 2', '"bc"'); // result not in vocab
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, 'a b\na b c\n'), 'E_FORMAT', 'merges.txt line 2', '"a b c"');
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, 'a b\nab\n'), 'E_FORMAT', 'line 2');
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, 'a  b\n'), 'E_FORMAT', 'line 1');
    expect(Tokenizer.fromFiles(tinyJson, 'a b\r\nab c\r\n').encode('abc')).toEqual([257]); // CRLF is fine
  });

  it('tokenizer.json: wrong model, bad merges, bad added_tokens, unsupported pipeline parts', () => {
    const model = { type: 'BPE', vocab: tinyVocab, merges: ['a b', 'ab c'] };
    expect(Tokenizer.fromTokenizerJson({ model }).encode('abc')).toEqual([257]);
    expectLowbit(() => Tokenizer.fromTokenizerJson('{"model": '), 'E_FORMAT', 'tokenizer.json', 'malformed JSON');
    expectLowbit(() => Tokenizer.fromTokenizerJson({}), 'E_FORMAT', 'tokenizer.json', 'model');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model: { ...model, type: 'WordPiece' } }), 'E_UNSUPPORTED', 'WordPiece');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model: { ...model, merges: ['a b', [1, 2]] } }), 'E_FORMAT', 'model.merges[1]');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model: { ...model, merges: ['a b', ['q', 'zz']] } }), 'E_FORMAT', 'model.merges entry 1', '"zz"');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model: { ...model, merges: 'a b' } }), 'E_FORMAT', 'model.merges');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model: { ...model, vocab: { ...tinyVocab, z: 2.5 } } }), 'E_FORMAT', 'model.vocab', '"z"');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model, added_tokens: [{ id: 'x', content: '<x>' }] }), 'E_FORMAT', 'added_tokens[0]');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model, added_tokens: [{ id: 5, content: '<s>' }] }), 'E_FORMAT', 'added_tokens[0]', '258');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model, added_tokens: {} }), 'E_FORMAT', 'added_tokens');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model, added_tokens: [{ id: 256, content: '<x>' }] }), 'E_FORMAT', 'id 256', '"ab"', '"<x>"');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model, normalizer: { type: 'NFC' } }), 'E_UNSUPPORTED', 'NFC');
    expectLowbit(() => Tokenizer.fromTokenizerJson({ model, pre_tokenizer: { type: 'Metaspace' } }), 'E_UNSUPPORTED', 'Metaspace');
  });

  it('bad options', () => {
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, tinyMerges, { addSpecial: 'bert' as 'none' }), 'E_ARG', 'bert');
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, tinyMerges, { bosId: 9999 }), 'E_RANGE', 'bosId 9999');
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, tinyMerges).encode('x', { addSpecial: 'opt' }), 'E_ARG', 'bosId');
    expectLowbit(() => Tokenizer.fromFiles(tinyJson, tinyMerges).encode(7 as unknown as string), 'E_ARG', 'string');
  });

  it('arbitrary JSON and text as files only ever raise LowbitError', () => {
    fc.assert(fc.property(fc.oneof(fc.json(), fc.string()), fc.string(), (v, m) => {
      onlyLowbit(() => Tokenizer.fromFiles(v, m));
      onlyLowbit(() => Tokenizer.fromFiles(tinyJson, m));
      onlyLowbit(() => Tokenizer.fromTokenizerJson(v));
    }), { numRuns: 300 });
    fc.assert(fc.property(fc.anything(), (x) => {
      onlyLowbit(() => Tokenizer.fromTokenizerJson({ model: x }));
      onlyLowbit(() => Tokenizer.fromTokenizerJson({ model: { vocab: tinyVocab, merges: x } }));
      onlyLowbit(() => Tokenizer.fromTokenizerJson({ model: { vocab: tinyVocab }, added_tokens: [x] }));
      onlyLowbit(() => Tokenizer.fromTokenizerJson(x as object));
    }), { numRuns: 300 });
  });
});

describe('bad ids', () => {
  const opt = Tokenizer.fromFiles(
    readFileSync(new URL('../../shared/data/tokenizers/opt/vocab.json', import.meta.url)),
    readFileSync(new URL('../../shared/data/tokenizers/opt/merges.txt', import.meta.url)),
  );

  it('decode / idToToken reject out-of-range, negative, non-integer and gap ids, naming the id', () => {
    expectLowbit(() => opt.decode([2, 50265]), 'E_RANGE', 'token id 50265', 'index 1', '50265)');
    expectLowbit(() => opt.decode([50272]), 'E_RANGE', '50272');
    expectLowbit(() => opt.decode([-1]), 'E_RANGE', 'token id -1');
    expectLowbit(() => opt.decode([1.5]), 'E_ARG', 'token id 1.5');
    expectLowbit(() => opt.decode([NaN]), 'E_ARG', 'NaN');
    expectLowbit(() => opt.decode(['3' as unknown as number]), 'E_ARG', 'token id 3');
    expectLowbit(() => opt.decode([50261]), 'E_RANGE', 'token id 50261', 'no token'); // gap in roberta-base's ids
    expectLowbit(() => opt.decode(null as unknown as number[]), 'E_ARG', 'decode');
    expectLowbit(() => opt.idToToken(-3), 'E_RANGE', '-3');
    expectLowbit(() => opt.idToToken(1e9), 'E_RANGE', '1000000000');
    expect(opt.decode(new Int32Array([42891, 232]))).toBe('hello world');
  });

  it('any integer id either decodes or raises LowbitError', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.integer({ min: -5, max: 50300 }), fc.double(), fc.constant(-0))), (ids) => {
      onlyLowbit(() => opt.decode(ids));
    }), { numRuns: 300 });
  });
});
